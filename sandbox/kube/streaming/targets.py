"""Which container process an exec or port-forward reaches, or upstream's error why not.

Pure: the pod object and what the kubelet knows about the container's process
in, the container name out (or an `ApiError`). Exec runs a real command on the
host as the sandbox's user (root in the dev container), so it is allowed only
into a container that has a real process of a sandbox image; a virtual
(kwok-style) container has none, and says so rather than run on the host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox.kube.errors import bad_request

KubeObject = dict[str, Any]
COMPLETED = ("Succeeded", "Failed")


class Attachable(Protocol):
    """The runtime's stdio of a running container (`sandbox.kube.kubelet.runtime.Attachments`)."""

    stdin: asyncio.StreamWriter | None

    def listen(self, listener: Callable[[str, bytes | None], None]) -> Callable[[], None]: ...

    def close_stdin(self) -> None: ...


@dataclass(frozen=True)
class ContainerProcess:
    """What the node knows about one container now: its PID 1, or that it runs nothing."""

    pid: int | None  # None: not running (waiting, back-off, exited)
    virtual: bool = False
    attachments: Attachable | None = None  # set while a real process runs


# (namespace, pod uid, container name) -> the container's process, None: not on any node
ProcessLookup = Callable[[str, str, str], ContainerProcess | None]


def container_names(pod: KubeObject) -> list[str]:
    return [str(c["name"]) for c in (pod.get("spec") or {}).get("containers") or []]


def choose_container(pod: KubeObject, requested: str | None, verb: str = "exec") -> str:
    """The container named in the query, or the only one; upstream's 400s otherwise.

    pkg/registry/core/pod/strategy.go (ExecLocation, streamLocation).
    """
    name = pod["metadata"]["name"]
    phase = (pod.get("status") or {}).get("phase")
    if phase in COMPLETED:
        raise bad_request(
            f"cannot {verb} into a container in a completed pod; current phase is {phase}"
        )
    names = container_names(pod)
    if not requested:
        if len(names) == 1:
            return names[0]
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
    if requested not in names:
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


_NOTHING_TO = {
    "exec": "exec into (only pods of the sandbox's real images can be exec'd into)",
    "attach": "attach to (only pods of the sandbox's real images can be attached to)",
}


def running_pid(
    pod: KubeObject, container: str, process: ContainerProcess | None, verb: str = "exec"
) -> int:
    """The PID to exec beside; the kubelet's error when there is none."""
    if process is not None and process.virtual:
        raise bad_request(
            f'container "{container}" of pod "{pod["metadata"]["name"]}" is virtual: it runs '
            f"no process in the sandbox, so there is nothing to {_NOTHING_TO[verb]}"
        )
    if process is None or process.pid is None:
        raise bad_request(f'container not found ("{container}")')
    return process.pid


def container_spec(pod: KubeObject, container: str) -> KubeObject:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            return dict(spec)
    return {}


def attachable(pod: KubeObject, container: str, process: ContainerProcess | None) -> Attachable:
    """The running container's stdio; the kubelet's error when it has none
    (pkg/kubelet/kubelet_pods.go GetAttach: `container not found`)."""
    running_pid(pod, container, process, "attach")
    if process is None or process.attachments is None:
        raise bad_request(f'container not found ("{container}")')
    return process.attachments


def pod_ip(pod: KubeObject) -> str:
    """Where port-forward connects: the pod's IP on loopback (127.0.2.0/24)."""
    phase = (pod.get("status") or {}).get("phase")
    ip = (pod.get("status") or {}).get("podIP")
    if phase != "Running" or not ip:
        raise bad_request(
            f"unable to forward port because pod is not running. Current status={phase}"
        )
    return str(ip)
