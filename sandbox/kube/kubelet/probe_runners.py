"""Probe handlers: httpGet, tcpSocket and exec, apart from the worker (`pkg/probe/*`).

Each returns a `ProbeOutcome`; the message is what upstream puts in the
`Unhealthy` event, e.g. `HTTP probe failed with statuscode: 503`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.kube.kubelet.probes import Result

USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024


@dataclass(frozen=True)
class ProbeOutcome:
    result: Result
    output: str = ""


@dataclass(frozen=True)
class ProbeTarget:
    """Where the probed container listens and what its ports are called."""

    pod_ip: str
    ports: Mapping[str, int]  # containerPort by name


def resolve_port(port: Any, target: ProbeTarget) -> int | None:
    """An int port, a numeric string, or a named container port."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    return target.ports.get(text)


async def run_probe(probe: Mapping[str, Any], target: ProbeTarget, timeout: float) -> ProbeOutcome:
    if "httpGet" in probe:
        return await http_get(probe["httpGet"], target, timeout)
    if "tcpSocket" in probe:
        return await tcp_socket(probe["tcpSocket"], target, timeout)
    if "exec" in probe:
        return await exec_command(list(probe["exec"].get("command") or []), timeout)
    return ProbeOutcome(Result.UNKNOWN, "unsupported probe handler")


def http_request(path: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host}"]
    sent = {name.lower() for name in headers}
    if "user-agent" not in sent:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in sent:
        lines.append("Accept: */*")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_outcome(status_line: bytes) -> ProbeOutcome:
    """200 <= code < 400 is success (3xx is upstream's Warning, which counts as success)."""
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return ProbeOutcome(Result.FAILURE, f"malformed HTTP response: {status_line!r}")
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeOutcome(Result.SUCCESS)
    return ProbeOutcome(Result.FAILURE, f"HTTP probe failed with statuscode: {code}")


async def http_get(action: Mapping[str, Any], target: ProbeTarget, timeout: float) -> ProbeOutcome:
    port = resolve_port(action.get("port"), target)
    host = action.get("host") or target.pod_ip
    scheme = str(action.get("scheme", "HTTP")).lower()
    url = f"{scheme}://{host}:{port}{action.get('path', '/')}"
    if port is None:
        return ProbeOutcome(Result.FAILURE, f"unknown port {action.get('port')!r}")
    headers = {h["name"]: h.get("value", "") for h in action.get("httpHeaders") or []}
    request = http_request(str(action.get("path", "/")), f"{host}:{port}", headers)
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(host, port, scheme == "https", request)
    except TimeoutError:
        return ProbeOutcome(
            Result.FAILURE,
            f'Get "{url}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)",
        )
    except OSError as error:
        return ProbeOutcome(Result.FAILURE, f'Get "{url}": dial tcp {host}:{port}: {_why(error)}')


async def _exchange(host: str, port: int, tls: bool, request: bytes) -> ProbeOutcome:
    context = _insecure_tls() if tls else None
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    return http_outcome(status_line)


def _insecure_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates
    return context


async def tcp_socket(
    action: Mapping[str, Any], target: ProbeTarget, timeout: float
) -> ProbeOutcome:
    port = resolve_port(action.get("port"), target)
    host = action.get("host") or target.pod_ip
    if port is None:
        return ProbeOutcome(Result.FAILURE, f"unknown port {action.get('port')!r}")
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        return ProbeOutcome(Result.SUCCESS)
    except TimeoutError:
        return ProbeOutcome(Result.FAILURE, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as error:
        return ProbeOutcome(Result.FAILURE, f"dial tcp {host}:{port}: {_why(error)}")


async def exec_command(command: list[str], timeout: float) -> ProbeOutcome:
    """Exit code 0 is success; the process group is killed on timeout or cancellation."""
    if not command:
        return ProbeOutcome(Result.UNKNOWN, "exec probe without a command")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        return ProbeOutcome(Result.FAILURE, f"exec failed: {error}")
    try:
        async with asyncio.timeout(timeout):
            output, _ = await process.communicate()
    except TimeoutError:
        return ProbeOutcome(Result.FAILURE, f"command {command!r} timed out")
    finally:
        await _kill_and_reap(process)
    text = output[:MAX_OUTPUT].decode(errors="replace")
    return ProbeOutcome(Result.SUCCESS if process.returncode == 0 else Result.FAILURE, text)


async def _kill_and_reap(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the command's own children too
    await asyncio.shield(process.wait())


def _why(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(error, ConnectionResetError):
        return "read: connection reset by peer"
    return f"connect: {error.strerror or error}"
