"""The HTTP entry of `pods/exec`, `pods/attach` and `pods/portforward`.

Everything that can be refused is refused before the upgrade, as a `Status`
with upstream's code and message, so that kubectl shows it whichever dialect it
tried (after a failed WebSocket upgrade it retries with SPDY: that answer repeats
the same checks, so the first error is the one the user sees). Both dialects are
served: WebSockets (kubectl's default since 1.31 for port-forward, 1.30 for exec
and attach) and a plain SPDY/3.1 upgrade (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`,
`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, older clients).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sandbox.kube.errors import ApiError, bad_request, method_not_allowed
from sandbox.kube.store import Store
from sandbox.kube.streaming import attach as attach_stream
from sandbox.kube.streaming import exec as exec_stream
from sandbox.kube.streaming import portforward, spdystreams, targets, upgraded, wsframes
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
    """Refuse a WebSocket that cannot become a stream, with the reason a user can act on."""
    if kind != "websocket":
        raise bad_request("Upgrade request required")
    if wsframes.choose_protocol(offered, supported) is None:
        raise bad_request(
            f"requested protocol(s) are not supported: {offered}; supports {list(supported)}"
        )


def spdy_protocol(offered: list[str], supported: tuple[str, ...]) -> str:
    """The protocol a SPDY upgrade negotiates (`X-Stream-Protocol-Version`), or the
    kubelet's refusal (httpstream.Handshake: 400 without offers, 403 without a match)."""
    if not offered:
        raise bad_request(
            f"unable to upgrade: header {upgraded.PROTOCOL_HEADER} does not exist in request"
        )
    chosen = upgraded.negotiate(offered, supported)
    if chosen is None:
        raise ApiError(
            403,
            "Forbidden",
            f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
            f"server accepts {list(supported)}",
        )
    return chosen


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
    spdy_offers = request.headers.getall(upgraded.PROTOCOL_HEADER, [])
    if subresource == "attach":
        attach_options = parse_attach(query)
        container = targets.choose_container(pod, attach_options.container, "attach")
        process = lookup(namespace, uid, container) if lookup is not None else None
        stdio = targets.attachable(pod, container, process)
        spec = targets.container_spec(pod, container)
        if kind == "spdy":
            protocol = spdy_protocol(spdy_offers, spdystreams.PROTOCOLS)
            return await attach_stream.serve_spdy(
                request, attach_options, spec, stdio, limits.exec.max_seconds, protocol
            )
        check_upgrade(kind, offered, attach_stream.PROTOCOLS)
        return await attach_stream.serve(
            request, attach_options, spec, stdio, limits.exec.max_seconds
        )
    if subresource == "exec":
        options = parse_exec(query)
        container = targets.choose_container(pod, options.container)
        process = lookup(namespace, uid, container) if lookup is not None else None
        pid = targets.running_pid(pod, container, process)
        if kind == "spdy":
            protocol = spdy_protocol(spdy_offers, spdystreams.PROTOCOLS)
            return await exec_stream.serve_spdy(request, options, pid, limits.exec, protocol)
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
    if kind == "spdy":
        protocol = spdy_protocol(spdy_offers, portforward.SPDY_PROTOCOLS)
        return await portforward.serve_spdy(request, name, ip, protocol, limits.portforward)
    check_upgrade(kind, offered, portforward.PROTOCOLS)
    if not ports and wsframes.choose_protocol(offered, portforward.PROTOCOLS) == wsframes.V4:
        raise bad_request('query parameter "port" is required')
    return await portforward.serve(request, name, ip, ports, limits.portforward)
