"""The HTTP entry of `pods/exec`, `pods/attach` and `pods/portforward`.

Everything that can be refused is refused before the upgrade, as a `Status`
with upstream's code and message, so that kubectl shows it whichever dialect it
tried (after a failed WebSocket upgrade it retries with SPDY, which the sandbox
does not serve: that answer repeats the same checks, so the first error is the
one the user sees). SPDY upgrades themselves are answered 400 with a message
saying the sandbox speaks WebSockets, kubectl's default since 1.31.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sandbox.kube.errors import bad_request, method_not_allowed
from sandbox.kube.store import Store
from sandbox.kube.streaming import attach as attach_stream
from sandbox.kube.streaming import exec as exec_stream
from sandbox.kube.streaming import portforward, targets, wsframes
from sandbox.kube.streaming.options import Query, parse_attach, parse_exec, parse_port_forward

SUBRESOURCES = ("exec", "attach", "portforward")


@dataclass(frozen=True)
class StreamingLimits:
    exec: exec_stream.ExecLimits = field(default_factory=exec_stream.ExecLimits)
    portforward: portforward.PortForwardLimits = field(
        default_factory=portforward.PortForwardLimits
    )


def upgrade_kind(headers: dict[str, str]) -> str:
    """'websocket', 'spdy' or '' (no upgrade asked), from the request's headers.

    >>> upgrade_kind({"connection": "Upgrade", "upgrade": "SPDY/3.1"})
    'spdy'
    """
    connection = headers.get("connection", "").lower()
    upgrade = headers.get("upgrade", "").lower()
    if "upgrade" not in connection:
        return ""
    if upgrade == "websocket":
        return "websocket"
    if upgrade.startswith("spdy/"):
        return "spdy"
    return ""


def check_upgrade(kind: str, offered: list[str], supported: tuple[str, ...]) -> None:
    """Refuse what cannot become a stream, with the reason a user can act on."""
    if kind == "spdy":
        raise bad_request(
            "the sandbox API server serves exec and port-forward over WebSockets only "
            f"({', '.join(supported)}), not SPDY: use kubectl >= 1.31 without "
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false / KUBECTL_PORT_FORWARD_WEBSOCKETS=false"
        )
    if kind != "websocket":
        raise bad_request("Upgrade request required")
    if wsframes.choose_protocol(offered, supported) is None:
        raise bad_request(
            f"requested protocol(s) are not supported: {offered}; supports {list(supported)}"
        )


def _query(request: web.Request) -> Query:
    return {key: request.query.getall(key) for key in set(request.query.keys())}


async def serve(
    request: web.Request,
    store: Store,
    namespace: str,
    name: str,
    subresource: str,
    lookup: targets.ProcessLookup | None,
    limits: StreamingLimits,
) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise method_not_allowed(f"{subresource} supports only GET and POST")
    pod = store.get("pods", namespace, name)
    headers = {k.lower(): v for k, v in request.headers.items()}
    kind = upgrade_kind(headers)
    offered = wsframes.offered_protocols(headers.get("sec-websocket-protocol"))
    query = _query(request)
    uid = pod["metadata"]["uid"]
    if subresource == "attach":
        attach_options = parse_attach(query)
        container = targets.choose_container(pod, attach_options.container, "attach")
        process = lookup(namespace, uid, container) if lookup is not None else None
        stdio = targets.attachable(pod, container, process)
        check_upgrade(kind, offered, attach_stream.PROTOCOLS)
        spec = targets.container_spec(pod, container)
        return await attach_stream.serve(
            request, attach_options, spec, stdio, limits.exec.max_seconds
        )
    if subresource == "exec":
        options = parse_exec(query)
        container = targets.choose_container(pod, options.container)
        process = lookup(namespace, uid, container) if lookup is not None else None
        pid = targets.running_pid(pod, container, process)
        check_upgrade(kind, offered, exec_stream.PROTOCOLS)
        return await exec_stream.serve(request, options, pid, limits.exec)
    ip = targets.pod_ip(pod)
    names = targets.container_names(pod)
    found = [lookup(namespace, uid, c) for c in names] if lookup is not None else []
    if found and all(p is not None and p.virtual for p in found):
        raise bad_request(
            f'pod "{name}" is virtual: its containers run no process in the sandbox, so '
            "nothing listens on its ports"
        )
    ports = parse_port_forward(query).ports
    check_upgrade(kind, offered, portforward.PROTOCOLS)
    if not ports and wsframes.choose_protocol(offered, portforward.PROTOCOLS) == wsframes.V4:
        raise bad_request('query parameter "port" is required')
    return await portforward.serve(request, name, ip, ports, limits.portforward)
