"""nginx.conf for the sandbox's ingress, rendered from Ingresses, Services and EndpointSlices.

What ingress-nginx did before its Lua balancer, kept to what the sandbox routes:

- Only Ingresses with `spec.ingressClassName: nginx` (or the legacy
  `kubernetes.io/ingress.class: nginx` annotation) count; one being deleted does not.
- One `upstream` per referenced Service port, listing only the **ready** endpoints
  of the Service's EndpointSlices (`conditions.ready` true or absent, as the API
  documents, and never `terminating`), with `keepalive` to the pods. A backend with
  no ready endpoint answers 503 `{"error":{"code":503,"message":"no ready endpoints"}}`.
- One `server` per rule host, plus a default server (`server_name _`) serving the
  host-less rules and the routes of the first Ingress rule's host, so that
  `curl http://127.0.0.1:PORT/api/...` works without a Host header.
- Path semantics of `networking.k8s.io/v1`: `Exact` is `location = /p`; `Prefix`
  matches whole path elements, so `/api` is `location = /api` plus `location /api/`
  (the trick ingress-nginx uses), and `/apix` falls through to the 404 JSON location.
  On the same path Exact beats Prefix, and the oldest Ingress wins a tie.
- WebSocket upgrade everywhere (`proxy_http_version 1.1`, Upgrade and Connection
  headers), retries of idempotent requests on connection errors and timeouts
  (`proxy_next_upstream error timeout`, 3 tries), `client_max_body_size 1m`, and the
  ingress-nginx annotations `proxy-read-timeout`, `proxy-send-timeout`,
  `proxy-connect-timeout` (seconds) and `proxy-body-size`.
- A JSON access-log line per request with the upstream address and status.
- Workers, connections, descriptors and the listen backlog sized for the sandbox's
  10,000 WebSocket sessions within 20,000 descriptors a process, and `reuseport` so the
  kernel spreads connections over the workers (sandbox/infra/socket_capacity.py).
- Connections to the pods leave from the ingress controller's pod address
  (`proxy_bind INGRESS_POD_ADDRESS`), not from the node's 127.0.0.1: NetworkPolicy
  then sees the ingress-nginx controller pod, as on EKS, where the node's traffic
  would be allowed whatever the policies say (sandbox/infra/pod_identities.py).

Everything is sorted, so unchanged input renders byte-identical text: the ingress
controller reloads nginx only when the text changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from sandbox.infra.socket_capacity import IngressSizing, ingress_sizing
from sandbox.kube.podutil import ip_order

INGRESS_CLASS = "nginx"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

DEFAULT_SERVER_NAME = "_"
NO_ENDPOINTS_BODY = '{"error":{"code":503,"message":"no ready endpoints"}}'
NOT_FOUND_BODY = '{"error":{"code":404,"message":"not found"}}'
TOO_LARGE_BODY = '{"error":{"code":413,"message":"request body too large"}}'
BAD_GATEWAY_BODY = '{"error":{"code":502,"message":"bad gateway"}}'
GATEWAY_TIMEOUT_BODY = '{"error":{"code":504,"message":"gateway timeout"}}'

# ingress-nginx defaults (docs/user-guide/nginx-configuration/configmap.md)
DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_READ_TIMEOUT = 60
DEFAULT_SEND_TIMEOUT = 60
DEFAULT_BODY_SIZE = "1m"
NEXT_UPSTREAM_TRIES = 3
UPSTREAM_KEEPALIVE_CONNECTIONS = 320
UPSTREAM_KEEPALIVE_TIMEOUT = 60
UPSTREAM_KEEPALIVE_REQUESTS = 10000
WORKER_SHUTDOWN_TIMEOUT = 240
SIZING: IngressSizing = ingress_sizing()  # the design load: see socket_capacity

# Where nginx's connections to the pods come from: the ingress-nginx controller pod's
# address, in the infrastructure range 127.0.3.0/24 and used by nothing else there
# (PostgreSQL .11-.12, Redis .20-.25, RabbitMQ .30-.32, Prometheus .40-.41, DNS .53).
INGRESS_POD_ADDRESS = "127.0.3.60"

# ingress-nginx's strict path validation; anything else would need quoting in nginx.conf
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9\-._~/]*$")
_DNS_SUBDOMAIN = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class NginxPaths:
    """Where one nginx instance keeps its files: all under `prefix` (its `-p`)."""

    prefix: Path

    @classmethod
    def under(cls, state_dir: Path) -> NginxPaths:
        """The ingress's files in the sandbox state directory: `<state_dir>/nginx/`."""
        return cls(state_dir / "nginx")

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def logs(self) -> Path:
        return self.prefix / "logs"

    @property
    def error_log(self) -> Path:
        return self.logs / "error.log"

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"

    @property
    def temp(self) -> Path:
        return self.prefix / "temp"

    def directories(self) -> tuple[Path, ...]:
        """What must exist before nginx (or `nginx -t`) runs."""
        return (self.prefix, self.logs, self.temp)


class PathType(Enum):
    EXACT = "Exact"
    PREFIX = "Prefix"


@dataclass(frozen=True)
class ProxySettings:
    """Per-Ingress proxy settings from its `nginx.ingress.kubernetes.io/*` annotations."""

    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    read_timeout: int = DEFAULT_READ_TIMEOUT
    send_timeout: int = DEFAULT_SEND_TIMEOUT
    body_size: str = DEFAULT_BODY_SIZE


@dataclass(frozen=True)
class Backend:
    """A Service port an Ingress path sends to, and the upstream that holds its endpoints."""

    namespace: str
    ingress: str
    service: str
    port: str  # the Service port as the Ingress names it: a number or a name
    upstream: str | None  # None: no ready endpoint, answered with 503


@dataclass(frozen=True)
class Upstream:
    name: str
    servers: tuple[str, ...]  # "ip:port", sorted


@dataclass(frozen=True)
class Location:
    match: str  # the nginx location arguments: "= /api" or "/api/"
    backend: Backend
    proxy: ProxySettings


@dataclass(frozen=True)
class Server:
    names: tuple[str, ...]
    default: bool
    locations: tuple[Location, ...]
    comment: str = ""


@dataclass(frozen=True)
class Plan:
    """What nginx should do, before it is written down as nginx.conf."""

    upstreams: tuple[Upstream, ...]
    servers: tuple[Server, ...]
    skipped: tuple[str, ...]  # paths and hosts left out, with the reason


# ---- pure decisions ----


def is_nginx_ingress(ingress: Mapping[str, Any]) -> bool:
    """The Ingress is ours: class `nginx` and not being deleted.

    >>> is_nginx_ingress({"metadata": {}, "spec": {"ingressClassName": "nginx"}})
    True
    >>> is_nginx_ingress({"metadata": {}, "spec": {"ingressClassName": "alb"}})
    False
    """
    metadata = ingress.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    class_name = (ingress.get("spec") or {}).get("ingressClassName")
    if class_name is None:
        class_name = (metadata.get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    return class_name == INGRESS_CLASS


def endpoint_is_ready(endpoint: Mapping[str, Any]) -> bool:
    """Ready, and not terminating; an absent `ready` means ready (EndpointConditions doc).

    >>> endpoint_is_ready({"conditions": {"ready": True, "serving": True}})
    True
    >>> endpoint_is_ready({"conditions": {"ready": False, "serving": True, "terminating": True}})
    False
    >>> endpoint_is_ready({"conditions": {"ready": True, "terminating": True}})
    False
    """
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready", True) is True and conditions.get("terminating") is not True


def service_port(service: Mapping[str, Any], wanted: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Service port an Ingress backend names by `number` or by `name`.

    >>> svc = {"spec": {"ports": [{"name": "http", "port": 8080}, {"name": "ws", "port": 8443}]}}
    >>> service_port(svc, {"number": 8443})["name"], service_port(svc, {"name": "http"})["port"]
    ('ws', 8080)
    """
    for port in (service.get("spec") or {}).get("ports") or []:
        if "number" in wanted and port.get("port") == wanted["number"]:
            return dict(port)
        if "name" in wanted and port.get("name") == wanted["name"]:
            return dict(port)
    return None


def ready_servers(slices: Iterable[Mapping[str, Any]], port: Mapping[str, Any]) -> tuple[str, ...]:
    """`ip:port` of every ready endpoint serving the Service port, sorted by address.

    A slice's ports carry the Service port's name and the pod's (target) port number.

    >>> piece = {"ports": [{"name": "http", "port": 8080}], "endpoints": [
    ...     {"addresses": ["127.0.2.9"], "conditions": {"ready": True}},
    ...     {"addresses": ["127.0.2.10"], "conditions": {"ready": True}},
    ...     {"addresses": ["127.0.2.3"], "conditions": {"ready": False, "terminating": True}}]}
    >>> ready_servers([piece], {"name": "http", "port": 80})
    ('127.0.2.9:8080', '127.0.2.10:8080')
    """
    found: set[tuple[tuple[int, ...], str, int]] = set()
    for piece in slices:
        if piece.get("addressType", "IPv4") != "IPv4":
            continue
        numbers = [
            int(p["port"])
            for p in piece.get("ports") or []
            if p.get("name", "") == port.get("name", "") and p.get("port") is not None
        ]
        for endpoint in piece.get("endpoints") or []:
            if not endpoint_is_ready(endpoint):
                continue
            for address in endpoint.get("addresses") or []:
                for number in numbers:
                    found.add((ip_order(address), address, number))
    return tuple(f"{address}:{number}" for _, address, number in sorted(found))


def proxy_settings(annotations: Mapping[str, str]) -> ProxySettings:
    """ingress-nginx's proxy annotations; a malformed value keeps the default, as there.

    >>> proxy_settings({"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    ...                 "nginx.ingress.kubernetes.io/proxy-send-timeout": "soon"})
    ProxySettings(connect_timeout=5, read_timeout=3600, send_timeout=60, body_size='1m')
    """

    def seconds(name: str, default: int) -> int:
        value = str(annotations.get(ANNOTATION_PREFIX + name, "")).strip()
        return int(value) if value.isdigit() and int(value) > 0 else default

    body_size = str(annotations.get(ANNOTATION_PREFIX + "proxy-body-size", "")).strip()
    return ProxySettings(
        connect_timeout=seconds("proxy-connect-timeout", DEFAULT_CONNECT_TIMEOUT),
        read_timeout=seconds("proxy-read-timeout", DEFAULT_READ_TIMEOUT),
        send_timeout=seconds("proxy-send-timeout", DEFAULT_SEND_TIMEOUT),
        body_size=body_size if _SIZE.match(body_size) else DEFAULT_BODY_SIZE,
    )


def location_matches(path: str, path_type: PathType) -> tuple[str, ...]:
    """nginx location arguments for one Ingress path.

    >>> location_matches("/api", PathType.PREFIX)
    ('= /api', '/api/')
    >>> location_matches("/api/", PathType.PREFIX), location_matches("/", PathType.PREFIX)
    (('= /api', '/api/'), ('/',))
    >>> location_matches("/health", PathType.EXACT)
    ('= /health',)
    """
    if path_type is PathType.EXACT:
        return (f"= {path}",)
    trimmed = path.rstrip("/")
    if not trimmed:
        return ("/",)
    return (f"= {trimmed}", f"{trimmed}/")


def upstream_name(namespace: str, service: str, port: str) -> str:
    """ingress-nginx's `<namespace>-<service>-<port>`."""
    return f"{namespace}-{service}-{port}"


@dataclass(frozen=True)
class _Candidate:
    order: tuple[int, int, int, int]  # (Prefix after Exact, ingress, rule, path)
    host: str
    match: str
    backend: Backend
    proxy: ProxySettings


@dataclass
class _Cluster:
    """What backends are resolved against; collects the upstreams they use."""

    services: dict[tuple[str, str], Mapping[str, Any]]
    slices: dict[tuple[str, str], list[Mapping[str, Any]]]
    upstreams: dict[str, Upstream]

    @classmethod
    def of(
        cls, services: Iterable[Mapping[str, Any]], endpoint_slices: Iterable[Mapping[str, Any]]
    ) -> _Cluster:
        slices: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for piece in endpoint_slices:
            metadata = piece.get("metadata") or {}
            owner = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                slices.setdefault((metadata.get("namespace", ""), owner), []).append(piece)
        return cls({_key(service): service for service in services}, slices, {})

    def backend(self, namespace: str, ingress: str, wanted: Mapping[str, Any]) -> Backend:
        """The Service port's upstream of ready endpoints, or none (503)."""
        service_name = str(wanted["name"])
        port_ref = wanted.get("port") or {}
        port_label = str(port_ref.get("number", port_ref.get("name", "")))
        service = self.services.get((namespace, service_name))
        port = service_port(service, port_ref) if service is not None else None
        pieces = self.slices.get((namespace, service_name), [])
        servers = ready_servers(pieces, port) if port is not None else ()
        name = upstream_name(namespace, service_name, port_label) if servers else None
        if name is not None:
            self.upstreams[name] = Upstream(name, servers)
        return Backend(namespace, ingress, service_name, port_label, name)


def plan_ingresses(
    ingresses: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    endpoint_slices: Sequence[Mapping[str, Any]],
) -> Plan:
    """Servers, locations and upstreams for the nginx-class Ingresses.

    Worked example: deploy/base/ingress.yaml (hosts api. and ws.api.harmonyflow.io,
    paths /api and /health to port 8080, /ws to 8443) with one ready and one
    terminating pod gives two upstreams, `harmonyflow-session-state-service-8080`
    and `-8443`, each with the ready pod only; three servers (`_` default, and one
    per host), each with `= /api`, `/api/`, `= /health`, `/health/`, `= /ws`, `/ws/`.
    """
    cluster = _Cluster.of(services, endpoint_slices)
    ours = sorted((i for i in ingresses if is_nginx_ingress(i)), key=_ingress_order)
    candidates: list[_Candidate] = []
    skipped: list[str] = []
    for index, ingress in enumerate(ours):
        candidates += _ingress_candidates(index, ingress, cluster, skipped)
    by_host: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        by_host.setdefault(candidate.host, []).append(candidate)
    hosts = sorted(host for host in by_host if host != DEFAULT_SERVER_NAME)
    first_host = min(hosts, key=lambda h: min(c.order[1:] for c in by_host[h]), default=None)
    default_routes = by_host.get(DEFAULT_SERVER_NAME, []) + by_host.get(first_host or "", [])
    default = Server(
        names=(DEFAULT_SERVER_NAME,),
        default=True,
        locations=_choose(default_routes),
        comment=f"default server: the routes of {first_host}, the first Ingress rule's host"
        if first_host
        else "default server",
    )
    servers = [default] + [
        Server(names=(host,), default=False, locations=_choose(by_host[host])) for host in hosts
    ]
    return Plan(
        upstreams=tuple(cluster.upstreams[name] for name in sorted(cluster.upstreams)),
        servers=tuple(servers),
        skipped=tuple(skipped),
    )


def _ingress_candidates(
    index: int, ingress: Mapping[str, Any], cluster: _Cluster, skipped: list[str]
) -> list[_Candidate]:
    """Every nginx location one Ingress asks for; what cannot be served goes to `skipped`."""
    metadata = ingress.get("metadata") or {}
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    if not (_NAME.match(namespace) and _NAME.match(name)):
        skipped.append(f"invalid Ingress name {namespace!r}/{name!r}")
        return []
    proxy = proxy_settings(metadata.get("annotations") or {})
    found = []
    for rule_index, rule in enumerate((ingress.get("spec") or {}).get("rules") or []):
        host = rule.get("host") or DEFAULT_SERVER_NAME
        if host != DEFAULT_SERVER_NAME and not _DNS_SUBDOMAIN.match(host):
            skipped.append(f"{namespace}/{name}: invalid host {host!r}")
            continue
        for path_index, http_path in enumerate((rule.get("http") or {}).get("paths") or []):
            path = http_path.get("path") or "/"
            wanted = (http_path.get("backend") or {}).get("service") or {}
            problem = _unsupported(path, wanted)
            if problem:
                skipped.append(f"{namespace}/{name}: path {path!r}: {problem}")
                continue
            backend = cluster.backend(namespace, name, wanted)
            path_type = PathType.EXACT if http_path.get("pathType") == "Exact" else PathType.PREFIX
            order = (int(path_type is PathType.PREFIX), index, rule_index, path_index)
            found += [
                _Candidate(order, host, match, backend, proxy)
                for match in location_matches(path, path_type)
            ]
    return found


def _unsupported(path: str, wanted: Mapping[str, Any]) -> str | None:
    """Why nginx.conf cannot hold this path and backend, or None."""
    if not _SAFE_PATH.match(path):
        return "unsupported characters"
    if not _NAME.match(str(wanted.get("name", ""))):
        return "no service backend"
    port = wanted.get("port") or {}
    if not isinstance(port.get("number"), int) and not _PORT_NAME.match(str(port.get("name"))):
        return "no service port"
    return None


def _choose(candidates: Iterable[_Candidate]) -> tuple[Location, ...]:
    """First candidate per nginx location wins (Exact before Prefix, then oldest Ingress)."""
    chosen: dict[str, Location] = {}
    for candidate in sorted(candidates, key=lambda c: c.order):
        chosen.setdefault(
            candidate.match, Location(candidate.match, candidate.backend, candidate.proxy)
        )
    return tuple(chosen[match] for match in sorted(chosen, key=_location_order))


def _location_order(match: str) -> tuple[str, bool]:
    """By path, the exact location before its prefix sibling."""
    path = match.removeprefix("= ")
    return (path.rstrip("/") or "/", not match.startswith("= "))


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace", ""), metadata.get("name", ""))


def _ingress_order(ingress: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = ingress.get("metadata") or {}
    return (
        str(metadata.get("creationTimestamp", "")),
        metadata.get("namespace", ""),
        metadata.get("name", ""),
    )


# ---- rendering ----


_LOG_FORMAT = (
    '{"time":"$time_iso8601","msec":$msec,"remote_addr":"$remote_addr","request_id":"$request_id",'
    '"host":"$host","method":"$request_method","uri":"$request_uri","status":$status,'
    '"bytes_sent":$bytes_sent,"request_time":$request_time,"upstream":"$upstream_addr",'
    '"upstream_status":"$upstream_status","upstream_response_time":"$upstream_response_time",'
    '"namespace":"$namespace","ingress":"$ingress_name","service":"$service_name",'
    '"service_port":"$service_port"}'
)


def render_config(
    ingresses: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    endpoint_slices: Sequence[Mapping[str, Any]],
    listen_host: str,
    listen_port: int,
    paths: NginxPaths,
    *,
    worker_user: str | None = "root",
    upstream_bind: str | None = None,
) -> str:
    """The complete nginx.conf; `worker_user` None leaves the workers as the master's user,
    `upstream_bind` None lets the kernel choose the source of connections to the pods."""
    plan = plan_ingresses(ingresses, services, endpoint_slices)
    return render_plan(
        plan, listen_host, listen_port, paths, worker_user=worker_user, upstream_bind=upstream_bind
    )


def render_plan(
    plan: Plan,
    listen_host: str,
    listen_port: int,
    paths: NginxPaths,
    *,
    worker_user: str | None = "root",
    upstream_bind: str | None = None,
) -> str:
    lines = [
        "# Rendered by sandbox.infra.nginx_config from the nginx-class Ingresses;",
        "# the ingress controller rewrites it on every change.",
    ]
    lines += [f"# skipped: {reason}" for reason in plan.skipped]
    if worker_user is not None:
        lines.append(f"user {worker_user};")
    lines += [
        "daemon off;",
        f"worker_processes {SIZING.worker_processes};",
        f"worker_rlimit_nofile {SIZING.worker_rlimit_nofile};",
        f"worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT}s;",
        f"pid {paths.pid};",
        f"error_log {paths.error_log} notice;",
        "",
        "events {",
        f"    worker_connections {SIZING.worker_connections};",
        "}",
        "",
        "http {",
        *_indent(_http_settings(paths, upstream_bind)),
    ]
    for upstream in plan.upstreams:
        lines += ["", *_indent(_render_upstream(upstream))]
    for server in plan.servers:
        lines += ["", *_indent(_render_server(server, listen_host, listen_port))]
    lines += ["}", ""]
    return "\n".join(lines)


def _http_settings(paths: NginxPaths, upstream_bind: str | None) -> list[str]:
    temp = paths.temp
    bind = (
        [
            "# connections to the pods leave from the ingress controller's pod address",
            f"proxy_bind {upstream_bind};",
        ]
        if upstream_bind is not None
        else []
    )
    return [
        f"client_body_temp_path {temp / 'client_body'};",
        f"proxy_temp_path {temp / 'proxy'};",
        f"fastcgi_temp_path {temp / 'fastcgi'};",
        f"uwsgi_temp_path {temp / 'uwsgi'};",
        f"scgi_temp_path {temp / 'scgi'};",
        "",
        f"log_format upstreaminfo escape=json '{_LOG_FORMAT}';",
        f"access_log {paths.access_log} upstreaminfo;",
        "",
        "default_type application/octet-stream;",
        "server_tokens off;",
        "keepalive_timeout 75s;",
        "keepalive_requests 1000;",
        f"client_max_body_size {DEFAULT_BODY_SIZE};",
        "large_client_header_buffers 4 8k;",
        "server_names_hash_bucket_size 128;",
        "",
        "# WebSocket upgrade on every location; keep-alive to the pods otherwise",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        "    '' '';",
        "}",
        "map $http_host $best_http_host {",
        "    default $http_host;",
        "    '' $host;",
        "}",
        "",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Host $best_http_host;",
        "proxy_set_header X-Request-ID $request_id;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Host $best_http_host;",
        "proxy_set_header X-Forwarded-Port $server_port;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Original-URI $request_uri;",
        'proxy_set_header Proxy "";',
        "proxy_buffering off;",
        "proxy_request_buffering on;",
        "# retry idempotent requests on the next endpoint when one cannot be reached",
        "proxy_next_upstream error timeout;",
        f"proxy_next_upstream_tries {NEXT_UPSTREAM_TRIES};",
        "proxy_next_upstream_timeout 0;",
        *bind,
    ]


def _render_upstream(upstream: Upstream) -> list[str]:
    return [
        f"upstream {upstream.name} {{",
        *(f"    server {server} max_fails=0;" for server in upstream.servers),
        f"    keepalive {UPSTREAM_KEEPALIVE_CONNECTIONS};",
        f"    keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT}s;",
        f"    keepalive_requests {UPSTREAM_KEEPALIVE_REQUESTS};",
        "}",
    ]


def _render_server(server: Server, listen_host: str, listen_port: int) -> list[str]:
    # reuseport and backlog are options of the address, given once: on the default server
    options = f" default_server reuseport backlog={SIZING.listen_backlog}"
    listen = f"{listen_host}:{listen_port}" + (options if server.default else "")
    lines = [f"# {server.comment}"] if server.comment else []
    lines += [
        "server {",
        f"    listen {listen};",
        f"    server_name {' '.join(_server_name(name) for name in server.names)};",
        '    set $namespace "";',
        '    set $ingress_name "";',
        '    set $service_name "";',
        '    set $service_port "";',
        "    error_page 413 @error_413;",
        "    error_page 502 @error_502;",
        "    error_page 504 @error_504;",
    ]
    for location in server.locations:
        lines += ["", *_indent(_render_location(location))]
    if "/" not in {location.match for location in server.locations}:
        lines += ["", *_indent(_json_location("/", 404, NOT_FOUND_BODY))]
    lines += ["", *_indent(_json_location("@error_413", 413, TOO_LARGE_BODY))]
    lines += ["", *_indent(_json_location("@error_502", 502, BAD_GATEWAY_BODY))]
    lines += ["", *_indent(_json_location("@error_504", 504, GATEWAY_TIMEOUT_BODY)), "}"]
    return lines


def _server_name(host: str) -> str:
    """A Kubernetes wildcard covers exactly one label; nginx's `*.` would cover more."""
    if host.startswith("*."):
        return "~^[^.]+" + re.escape(host[1:]).replace("\\-", "-") + "$"
    return host


def _render_location(location: Location) -> list[str]:
    backend, proxy = location.backend, location.proxy
    lines = [
        f"location {location.match} {{",
        f'    set $namespace "{backend.namespace}";',
        f'    set $ingress_name "{backend.ingress}";',
        f'    set $service_name "{backend.service}";',
        f'    set $service_port "{backend.port}";',
    ]
    if backend.upstream is None:
        lines += [
            "    default_type application/json;",
            f"    return 503 '{NO_ENDPOINTS_BODY}';",
            "}",
        ]
        return lines
    lines += [
        f"    client_max_body_size {proxy.body_size};",
        f"    proxy_connect_timeout {proxy.connect_timeout}s;",
        f"    proxy_read_timeout {proxy.read_timeout}s;",
        f"    proxy_send_timeout {proxy.send_timeout}s;",
        f"    proxy_pass http://{backend.upstream};",
        "}",
    ]
    return lines


def _json_location(match: str, status: int, body: str) -> list[str]:
    return [
        f"location {match} {{",
        "    default_type application/json;",
        f"    return {status} '{body}';",
        "}",
    ]


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"    {line}" if line else "" for line in lines]
