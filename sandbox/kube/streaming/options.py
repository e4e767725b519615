"""The query of `pods/exec`, `pods/attach` and `pods/portforward`, checked as upstream does.

Pure: a multi-dict of the query in, an options dataclass out, or an `ApiError`
with upstream's message. kubectl repeats `command=` once per argument and sends
booleans as `true`; the Python client does the same. Port-forward takes `ports`
(comma-separated or repeated), as the API server's PodPortForwardOptions.

    >>> parse_exec({"command": ["echo", "hi"], "stdout": ["true"]}).command
    ('echo', 'hi')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.kube.errors import bad_request

Query = Mapping[str, Sequence[str]]
_TRUE = ("1", "t", "T", "TRUE", "true", "True")


@dataclass(frozen=True)
class ExecOptions:
    command: tuple[str, ...]
    container: str | None = None
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False


@dataclass(frozen=True)
class AttachOptions:
    container: str | None = None
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False


@dataclass(frozen=True)
class PortForwardOptions:
    ports: tuple[int, ...]


def _flag(query: Query, name: str) -> bool:
    values = query.get(name) or []
    return bool(values) and values[-1] in _TRUE


def parse_exec(query: Query) -> ExecOptions:
    command = tuple(query.get("command") or [])
    if not command:
        raise bad_request("you must specify a command")  # kubelet: "you must specify a command"
    containers = query.get("container") or []
    container = containers[-1] if containers and containers[-1] else None
    options = ExecOptions(
        command,
        container,
        stdin=_flag(query, "stdin"),
        stdout=_flag(query, "stdout"),
        stderr=_flag(query, "stderr"),
        tty=_flag(query, "tty"),
    )
    if not (options.stdin or options.stdout or options.stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if options.tty and options.stderr:
        # upstream: a tty has no separate stderr; kubectl never asks for both
        options = ExecOptions(command, container, options.stdin, options.stdout, False, True)
    return options


def parse_attach(query: Query) -> AttachOptions:
    """PodAttachOptions: the streams wanted and the container; no command."""
    containers = query.get("container") or []
    stdin, stdout, stderr = _flag(query, "stdin"), _flag(query, "stdout"), _flag(query, "stderr")
    if not (stdin or stdout or stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    tty = _flag(query, "tty")
    container = containers[-1] if containers and containers[-1] else None
    return AttachOptions(container, stdin, stdout, stderr and not tty, tty)


def parse_port_forward(query: Query) -> PortForwardOptions:
    ports: list[int] = []
    for value in [*(query.get("ports") or []), *(query.get("port") or [])]:
        for item in value.split(","):
            text = item.strip()
            if not text:
                continue
            try:
                port = int(text)
            except ValueError:
                raise bad_request(f'unable to parse "{text}" as a port: invalid syntax') from None
            if not 0 < port < 65536:
                raise bad_request(f"port {port} must be > 0 and < 65536")
            ports.append(port)
    return PortForwardOptions(tuple(ports))
