"""`locustio/locust:*`: the real Locust of the sandbox's venv, run as the image runs it.

The image's ENTRYPOINT is `["locust"]` and its WORKDIR `/home/locust`, with
`PYTHONUNBUFFERED=1` (locustio/locust's Dockerfile), so a pod's `args` are
Locust's options and a `command` replaces the entrypoint. Here the process is
`<venv python> -s -P -m locust <options>`, the Locust the project's lock file pins
(`-s -P`: no user site, no working directory on sys.path, as the console script
runs). Any tag runs that one version. Only Locust itself can be the command
(`locust`, `/usr/local/bin/locust`, `/opt/venv/bin/locust`); anything else fails
to start as a missing executable would: the sandbox has no shell to run it with.
Like every real-process container it runs in a root of its own whose entries are the
host's, bound back (`sandbox/kube/kubelet/mounts.py`): its WORKDIR is made there, and
files it writes outside its volumes (`--csv /tmp/locust` without an emptyDir at /tmp)
land on the host's filesystem.

**Loopback only.** Locust binds its web UI (`--web-host`, default `*`) and, as a
master, its worker port (`--master-bind-host`, default `*`) to every interface,
0.0.0.0, which the sandbox never does. So both are bound to the pod's IP
(`POD_IP`, 127.0.2.x), which is where the pod's Service, port-forward and the
workers reach them, as on a cluster: the flags are added after the pod's own
options, where they win (on the command line Locust takes the last of a flag,
and the command line over `LOCUST_*` variables and config files). A pod that asks
for a loopback address itself (`--web-host 127.0.0.1`, or `LOCUST_WEB_HOST`) keeps
it; any other address (`0.0.0.0`, `*`, a 10.x) is replaced by the pod's IP.

    >>> launch(["locust", "--master", "--web-host", "0.0.0.0"], {"POD_IP": "127.0.2.7"})[-6:]
    ['--web-host', '0.0.0.0', '--web-host', '127.0.2.7', '--master-bind-host', '127.0.2.7']
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping, Sequence

ENTRYPOINT = ("locust",)
WORKDIR = "/home/locust"
EXECUTABLES = frozenset({"locust", "/usr/local/bin/locust", "/opt/venv/bin/locust"})
# flag -> the variable Locust reads it from (argument_parser.py `env_var`)
BIND_FLAGS = (
    ("--web-host", "LOCUST_WEB_HOST"),
    ("--master-bind-host", "LOCUST_MASTER_BIND_HOST"),
)


class LocustCommandError(FileNotFoundError):
    """The container's command is not Locust: there is nothing else in this image to run."""

    def __init__(self, executable: str) -> None:
        super().__init__(
            f'exec: "{executable}": executable file not found in $PATH (the sandbox\'s '
            "locustio/locust runs only locust itself)"
        )


def launch(words: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The process for the container's argv (`registry.container_argv`) and environment."""
    if not words or words[0] not in EXECUTABLES:
        raise LocustCommandError(words[0] if words else "")
    return [sys.executable, "-s", "-P", "-m", "locust", *bound_to_pod_ip(words[1:], env)]


def bound_to_pod_ip(options: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """`options` with the web UI and the master port bound to the pod's IP (or to the
    loopback address the pod asked for), ahead of a `--` that ends Locust's options.

    >>> bound_to_pod_ip(["--web-host=127.0.0.1", "--", "MyUser"], {"POD_IP": "127.0.2.7"})[1:]
    ['--web-host', '127.0.0.1', '--master-bind-host', '127.0.2.7', '--', 'MyUser']
    """
    pod_ip = env.get("POD_IP", "")
    if not _is_loopback(pod_ip):  # an OSError: the container fails to start, the kubelet goes on
        raise OSError(f"a locust pod needs its loopback POD_IP, got {pod_ip!r}")
    end = options.index("--") if "--" in options else len(options)
    added: list[str] = []
    for flag, variable in BIND_FLAGS:
        asked = _last_value(options[:end], flag)
        if asked is None:
            asked = env.get(variable)
        added += [flag, asked if asked is not None and _is_loopback(asked) else pod_ip]
    return [*options[:end], *added, *options[end:]]


def _last_value(options: Sequence[str], flag: str) -> str | None:
    value = None
    for index, word in enumerate(options):
        if word == flag and index + 1 < len(options):
            value = options[index + 1]
        elif word.startswith(flag + "="):
            value = word.split("=", 1)[1]
    return value


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False
