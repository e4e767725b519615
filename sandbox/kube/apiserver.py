"""The HTTP side: Kubernetes REST on loopback, for kubectl, the Python client and Chaos Toolkit.

Every answer is JSON with `Content-Type: application/json` (kubectl refuses
anything else); every client mistake is a `Status` with the real reason and
code; nothing a client sends can crash the server (the middleware turns any
bug into a 500 Status and keeps serving).

HTTPS only, as upstream serves it (client-go sends tokens over TLS alone): the
serving certificate (`servingcert.py`) names the listen address and the `kubernetes`
Service's names and ClusterIP, the Service pods reach the API server by.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from sandbox.kube import (
    deletion,
    discovery,
    eventsview,
    fieldvalidation,
    patching,
    podlogs,
    servingcert,
    statemetrics,
    tables,
)
from sandbox.kube.auth.guard import Guard, install_bootstrap_policy
from sandbox.kube.auth.tokens import TokenIssuer
from sandbox.kube.auth.user import UserInfo
from sandbox.kube.clock import rfc3339
from sandbox.kube.errors import (
    ApiError,
    bad_request,
    internal,
    method_not_allowed,
    not_found,
    unsupported_media_type,
)
from sandbox.kube.kubeconfig import ApiAccess
from sandbox.kube.metrics import MetricsStore, format_cpu, format_memory
from sandbox.kube.protobuf import body as protobuf_body
from sandbox.kube.requestinfo import RequestInfo, parse_path
from sandbox.kube.resources import EVENTS_V1_KEY, ResourceType
from sandbox.kube.selectors import parse_field_selector, parse_label_selector, selector_from_match
from sandbox.kube.store import ADDED, Store, Watch, WatchEvent
from sandbox.kube.streaming import handler as streaming
from sandbox.kube.streaming.targets import ProcessLookup

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
JSON = "application/json"
EvictFunction = Callable[[str, str, KubeObject], KubeObject]
# Standby server ("host:port") -> seconds behind its primary; only the known ones. The
# function answers {} rather than raise when a server cannot be asked.
ReplicationLagFunction = Callable[[], Awaitable[dict[str, float]]]
METRICS_LAG_TIMEOUT_SECONDS = 2.0
REVIEW_GROUPS = ("authentication.k8s.io", "authorization.k8s.io")
USER = web.RequestKey("user", UserInfo)  # who the request acts as (after impersonation)


@dataclass
class ApiServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    log_root: Path = Path(".sandbox")
    # Upstream ends watches after --min-request-timeout (1800 s) randomised up to 2x.
    watch_timeout_seconds: float = 1800.0
    bookmark_interval_seconds: float = 60.0
    max_body_bytes: int = 3 * 1024 * 1024
    streaming: streaming.StreamingLimits = field(default_factory=streaming.StreamingLimits)
    # Addresses the serving certificate names besides `host`: the `kubernetes` Service's
    # ClusterIP, which pods dial (kubeadm's certlist.go names it too).
    service_addresses: tuple[str, ...] = ()


class ApiServer:
    def __init__(
        self,
        store: Store,
        metrics: MetricsStore,
        config: ApiServerConfig,
        evict: EvictFunction | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.config = config
        self.evict = evict
        # Set by the control plane when it runs the RDS pair (pg_replication_lag_seconds).
        self.replication_lag: ReplicationLagFunction | None = None
        # Set by the control plane: which process a pod's container runs (exec needs it).
        self.container_process: ProcessLookup | None = None
        self.requests: dict[tuple[str, str, str], int] = {}
        # ServiceAccount tokens (one key per run) and the authn/authz filter chain
        self.tokens = TokenIssuer(store.find, store.clock)
        self.guard = Guard(store, self.tokens)
        # HTTPS only, as upstream (and client-go sends tokens over TLS alone); issued at
        # start, once the control plane has claimed the `kubernetes` Service's ClusterIP
        self.certificate = servingcert.ServingCertificate(b"", b"", b"")
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0

    # ---- lifecycle ----

    @property
    def admin_token(self) -> str:
        """The bearer token of the sandbox's kubeconfig user (kubernetes-admin)."""
        return self.guard.admin_token

    @property
    def access(self) -> ApiAccess:
        """URL, admin token and CA: what a kubeconfig (or a raw HTTPS client) needs."""
        return ApiAccess(self.url, self.admin_token, self.certificate.ca_pem)

    async def start(self) -> str:
        install_bootstrap_policy(self.store)  # the rbac/bootstrap-roles post-start hook
        app = web.Application(
            middlewares=[self._errors], client_max_size=self.config.max_body_bytes
        )
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        hosts = [self.config.host, *self.config.service_addresses]
        self.certificate = servingcert.issue(hosts, self.store.clock.now())
        tls = servingcert.server_context(self.certificate, self.config.log_root)
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"https://{self.config.host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- plumbing ----

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await self._answer(request, handler)
        key = (*_request_labels(request), str(response.status))
        self.requests[key] = self.requests.get(key, 0) + 1
        return response

    async def _answer(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _status_response(error)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(
                ApiError(413, "RequestEntityTooLarge", "request entity too large")
            )
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as error:
            log.exception("internal error on %s %s", request.method, request.path)
            return _status_response(internal(f"internal error: {type(error).__name__}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        headers = {name: request.headers.getall(name) for name in request.headers}
        request[USER] = self.guard.admit(request.method, request.path, request.query, headers)
        path = request.path.rstrip("/") or "/"
        if path in ("/openid/v1/jwks", "/.well-known/openid-configuration"):
            return self._issuer_discovery(request, path)
        if path == "/metrics":
            if request.method != "GET":
                raise method_not_allowed(f"the server does not allow this method on {path}")
            return await self._state_metrics()
        fixed = self._fixed_routes(path)
        if fixed is not None:
            if request.method != "GET":
                raise method_not_allowed(f"the server does not allow this method on {path}")
            return _json(fixed)
        info = parse_path(path)
        if info.resource is None:
            document = discovery.resource_list(info.group, info.version)
            if document is None or request.method != "GET":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(document)
        return await self._resource(request, info, info.resource)

    def _fixed_routes(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            return discovery.SERVER_VERSION
        if path == "/api":
            return discovery.api_versions(self.url.removeprefix("https://"))
        if path == "/apis":
            return discovery.api_group_list()
        if path.startswith("/apis/") and path.count("/") == 2:
            return discovery.api_group(path.split("/")[2])
        if path in ("/healthz", "/livez", "/readyz"):
            return {"status": "ok"}
        if path == "/openapi/v3":
            return discovery.openapi_v3_root()
        if path.startswith("/openapi/v3/"):
            document = discovery.openapi_v3_document(path.removeprefix("/openapi/v3/"))
            if document is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return document
        return None

    def _issuer_discovery(self, request: web.Request, path: str) -> web.Response:
        """ServiceAccountIssuerDiscovery (pkg/serviceaccount/openidmetadata.go)."""
        if request.method != "GET":
            raise method_not_allowed(f"the server does not allow this method on {path}")
        if path == "/openid/v1/jwks":
            body = orjson.dumps(self.tokens.jwks())
            return web.Response(body=body, content_type="application/jwk-set+json")
        return _json(self.tokens.openid_configuration(f"{self.url}/openid/v1/jwks"))

    async def _state_metrics(self) -> web.Response:
        """kube-state-metrics' series and the API server's counters, from the store now."""
        lag: dict[str, float] = {}
        if self.replication_lag is not None:
            try:
                lag = await asyncio.wait_for(self.replication_lag(), METRICS_LAG_TIMEOUT_SECONDS)
            except TimeoutError:  # unknown lag: the series is left out, the scrape works
                log.debug("replication lag unknown: no answer within the scrape's budget")
        state = statemetrics.snapshot_state(self.store, self.requests, lag)
        return web.Response(
            text=statemetrics.render(state),
            headers={"Content-Type": statemetrics.CONTENT_TYPE},
        )

    # ---- resources ----

    async def _resource(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.StreamResponse:
        method = request.method
        if rt.group == "metrics.k8s.io":
            return self._metrics(request, info, rt)
        if rt.group in REVIEW_GROUPS or info.subresource == "token":
            return await self._review(request, info, rt)
        if info.subresource == "log":
            return await self._pod_log(request, info)
        if info.subresource == "eviction":
            return await self._eviction(request, info, rt)
        if info.subresource in streaming.SUBRESOURCES:
            return await streaming.serve(
                request,
                self.store,
                info.namespace or "default",
                _name(info),
                info.subresource,
                self.container_process,
                self.config.streaming,
            )
        if info.subresource == "scale":
            return await self._scale(request, info, rt)
        if info.subresource is None and _verb(request, info) not in rt.verbs:
            # A read-only resource (customresourcedefinitions here) refuses writes.
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        if info.name is None:
            return await self._collection(request, info, rt)
        if method == "GET":
            return self._get(request, info, rt)
        if method == "PUT":
            return await self._update(request, info, rt)
        if method == "PATCH":
            return await self._patch(request, info, rt)
        if method == "DELETE" and info.subresource is None:
            return await self._delete(request, info, rt)
        raise method_not_allowed("the server does not allow this method on the requested resource")

    async def _review(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        """The review APIs and TokenRequest: create-only, answered, never stored."""
        if request.method != "POST" or (info.name is not None and info.subresource is None):
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        body = await _read_body(request, _body_kind(rt, info))
        if info.subresource == "token":
            namespace = info.namespace or "default"
            return _json(self.guard.token_request(namespace, _name(info), body), 201)
        return _json(self.guard.review(rt.plural, info.namespace, body, request[USER]), 201)

    async def _collection(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.StreamResponse:
        if request.method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return await self._watch(request, info, rt)
            return self._list(request, info, rt)
        if request.method == "POST":
            return await self._create(request, info, rt)
        if request.method == "DELETE":
            return await self._delete_collection(request, info, rt)
        raise method_not_allowed("the server does not allow this method on the requested resource")

    def _key(self, rt: ResourceType) -> str:
        return "events" if rt.key == EVENTS_V1_KEY else rt.key

    def _out(self, rt: ResourceType, obj: KubeObject) -> KubeObject:
        return eventsview.to_events_v1(obj) if rt.key == EVENTS_V1_KEY else obj

    def _in(self, rt: ResourceType, obj: KubeObject) -> KubeObject:
        return eventsview.to_core(obj) if rt.key == EVENTS_V1_KEY else obj

    def _list(self, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
        query = request.query
        field_key = EVENTS_V1_KEY if rt.key == EVENTS_V1_KEY else rt.key
        fields = parse_field_selector(query.get("fieldSelector"), field_key)
        # Serialised straight from the store's objects: nothing below changes them.
        stored = self.store.snapshot(self._key(rt), info.namespace, query.get("labelSelector"))
        stored.sort(key=_sort_key)
        items = [obj for obj in (self._out(rt, o) for o in stored) if fields.matches(obj)]
        version = str(self.store.resource_version)
        items, next_token, version = _page(items, query, version)
        if _wants_table(request):
            return _json(
                tables.table(
                    rt.key,
                    items,
                    self.store.clock.now(),
                    version,
                    query.get("includeObject", "Metadata"),
                )
            )
        metadata: KubeObject = {"resourceVersion": version}
        if next_token:
            metadata["continue"] = next_token
            metadata["remainingItemCount"] = None
        return _json(
            {
                "kind": rt.list_kind_name,
                "apiVersion": rt.api_version,
                "metadata": {k: v for k, v in metadata.items() if v is not None},
                "items": [_without_type(item) for item in items],
            }
        )

    def _get(self, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
        obj = self._out(rt, self.store.get(self._key(rt), info.namespace or "", _name(info)))
        if _wants_table(request) and info.subresource is None:
            return _json(
                tables.table(
                    rt.key, [obj], self.store.clock.now(), obj["metadata"]["resourceVersion"]
                )
            )
        return _json(obj)

    async def _create(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        body = _object_body(await _read_body(request, _body_kind(rt, info)), rt)
        unknown = _strict_body(request, rt, body, "CreateOptions")
        _check_namespace(body, info, rt)
        if _dry_run(request):
            return _warned(_json(body, 201), unknown)
        created = self.store.create(self._key(rt), self._in(rt, body))
        return _warned(_json(self._out(rt, created), 201), unknown)

    async def _update(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        body = _object_body(await _read_body(request, _body_kind(rt, info)), rt)
        unknown = _strict_body(request, rt, body, "UpdateOptions")
        _check_namespace(body, info, rt)
        if body.get("metadata", {}).get("name") != info.name:
            raise bad_request("the name of the object does not match the name on the URL")
        if _dry_run(request):
            return _warned(_json(body), unknown)
        updated = self.store.update(self._key(rt), self._in(rt, body), subresource=info.subresource)
        return _warned(_json(self._out(rt, updated)), unknown)

    async def _patch(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        patch_type = _content_type(request)
        if patch_type not in patching.PATCH_TYPES:
            raise unsupported_media_type(patch_type)
        body = await _read_body(request)
        validation = fieldvalidation.directive(request.query.get("fieldValidation"), "PatchOptions")
        namespace, name = info.namespace or "", _name(info)
        current = self.store.find(self._key(rt), namespace, name)
        if current is None:
            if patch_type == patching.APPLY_PATCH and isinstance(body, dict):
                body.setdefault("metadata", {}).setdefault("namespace", info.namespace)
                return _json(
                    self._out(rt, self.store.create(self._key(rt), self._in(rt, body))), 201
                )
            raise not_found(rt.plural, name, rt.group)
        original = self._out(rt, current)
        effective = patching.MERGE_PATCH if patch_type == patching.APPLY_PATCH else patch_type
        patched = patching.apply_patch(original, body, effective)
        precondition = _patch_resource_version(body)
        patched.setdefault("metadata", {})["resourceVersion"] = (
            precondition or current["metadata"]["resourceVersion"]
        )
        if patched["metadata"].get("name") != name:
            raise bad_request("the name of the object may not be changed by a patch")
        unknown = _strict_patch(validation, rt, body, patched, patch_type)
        if _dry_run(request):
            return _warned(_json(patched), unknown)
        updated = self.store.update(
            self._key(rt), self._in(rt, patched), subresource=info.subresource
        )
        return _warned(_json(self._out(rt, updated)), unknown)

    async def _delete(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        """The object or a Status, 200 or 202, as `deletion.delete_answer` decides."""
        options = await _delete_options(request)
        preconditions = options.get("preconditions") or {}
        namespace, name = info.namespace or "", _name(info)
        result = self.store.delete(
            self._key(rt),
            namespace,
            name,
            grace_period_seconds=options.get("gracePeriodSeconds"),
            uid=preconditions.get("uid"),
            resource_version=preconditions.get("resourceVersion"),
        )
        # Nothing awaits between the two calls, so no other writer can recreate the name.
        removed = self.store.find(self._key(rt), namespace, name) is None
        answer = deletion.delete_answer(
            rt,
            self._out(rt, result),
            removed=removed,
            orphan_dependents=options.get("orphanDependents"),
        )
        return _json(answer.body, answer.code)

    async def _delete_collection(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        """The List of the matching objects as they were listed, then each one deleted.

        Upstream `Store.DeleteCollection` (k8s.io/apiserver
        pkg/registry/generic/registry/store.go) answers the list it deleted from, with
        that list's resourceVersion; an object already gone is skipped (NotFound).
        """
        options = await _delete_options(request)
        version = str(self.store.resource_version)
        items = self.store.list(
            self._key(rt),
            info.namespace,
            request.query.get("labelSelector"),
            request.query.get("fieldSelector"),
        )
        for item in items:
            with contextlib.suppress(ApiError):
                self.store.delete(
                    self._key(rt),
                    item["metadata"].get("namespace", ""),
                    item["metadata"]["name"],
                    grace_period_seconds=options.get("gracePeriodSeconds"),
                )
        return _json(
            {
                "kind": rt.list_kind_name,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": version},
                "items": [_without_type(self._out(rt, item)) for item in items],
            }
        )

    # ---- watch ----

    async def _watch(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.StreamResponse:
        query = request.query
        timeout = _float(query.get("timeoutSeconds"), self.config.watch_timeout_seconds)
        timeout = min(timeout, self.config.watch_timeout_seconds)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        table = _wants_table(request)
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            store_fields = None if rt.key == EVENTS_V1_KEY else query.get("fieldSelector")
            watch = self.store.watch(
                self._key(rt),
                info.namespace,
                query.get("labelSelector"),
                store_fields,
                query.get("resourceVersion"),
            )
        except ApiError as error:
            if error.code != 410:
                raise
            await response.prepare(request)
            await response.write(_line({"type": "ERROR", "object": error.to_status()}))
            return response
        fields = _view_filter(query.get("fieldSelector"), rt)
        await response.prepare(request)
        try:
            await self._stream(request, response, watch, rt, fields, timeout, bookmarks, table)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.stop_watch(watch)
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        watch: Watch,
        rt: ResourceType,
        fields: Callable[[KubeObject], bool],
        timeout: float,
        bookmarks: bool,
        table: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + self.config.bookmark_interval_seconds
        while True:
            now = loop.time()
            if now >= deadline or request.transport is None or request.transport.is_closing():
                return
            wait = min(deadline, next_bookmark, now + 1.0) - now
            try:
                event: WatchEvent | None = await asyncio.wait_for(
                    watch.queue.get(), max(wait, 0.01)
                )
            except TimeoutError:
                event = None
            if event is None:
                if bookmarks and loop.time() >= next_bookmark:
                    next_bookmark = loop.time() + self.config.bookmark_interval_seconds
                    await response.write(
                        _line(
                            {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": rt.kind,
                                    "apiVersion": rt.api_version,
                                    "metadata": {
                                        "resourceVersion": str(self.store.resource_version)
                                    },
                                },
                            }
                        )
                    )
                continue
            obj = self._out(rt, event.object)
            if not fields(obj):
                continue
            event_type = event.type
            payload: KubeObject = obj
            if table:
                payload = tables.table(
                    rt.key, [obj], self.store.clock.now(), obj["metadata"]["resourceVersion"]
                )
            await response.write(_line({"type": event_type, "object": payload}))

    # ---- subresources ----

    async def _scale(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        namespace, name = info.namespace or "", _name(info)
        target = self.store.get(rt.key, namespace, name)
        scale = _scale_of(target)
        if request.method == "GET":
            return _json(scale)
        body = await _read_body(request, _body_kind(rt, info) if request.method == "PUT" else None)
        if request.method == "PUT":
            wanted = _object_body(body, None)
        elif request.method == "PATCH":
            patch_type = _content_type(request)
            effective = patching.MERGE_PATCH if patch_type == patching.APPLY_PATCH else patch_type
            wanted = patching.apply_patch(scale, body, effective)
        else:
            raise method_not_allowed("the server does not allow this method on scale")
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise bad_request("spec.replicas must be an integer")
        version = (wanted.get("metadata") or {}).get("resourceVersion")
        target["spec"]["replicas"] = replicas
        if version:
            target["metadata"]["resourceVersion"] = version
        updated = self.store.update(rt.key, target)
        return _json(_scale_of(updated))

    async def _eviction(
        self, request: web.Request, info: RequestInfo, rt: ResourceType
    ) -> web.Response:
        if request.method != "POST":
            raise method_not_allowed("eviction only supports create")
        body = await _read_body(request, _body_kind(rt, info))
        if not isinstance(body, dict):
            raise bad_request("the body of an eviction must be an Eviction object")
        if self.evict is None:
            raise ApiError(503, "ServiceUnavailable", "the eviction API is not available")
        status = self.evict(info.namespace or "default", _name(info), body)
        return _json(status, int(status.get("code", 201)))

    async def _pod_log(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        namespace, name = info.namespace or "default", _name(info)
        pod = self.store.get("pods", namespace, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        uid = pod["metadata"]["uid"]
        root = self.config.log_root
        restarts = podlogs.restarts_on_disk(root, namespace, name, uid, container)
        previous = request.query.get("previous") in ("true", "1")
        if previous and len(restarts) < 2:
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        if not restarts:
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        path = podlogs.log_file(
            root, namespace, name, uid, container, restarts[-2] if previous else restarts[-1]
        )
        timestamps = request.query.get("timestamps") in ("true", "1")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        tail = request.query.get("tailLines")
        if tail is not None and tail.lstrip("-").isdigit() and int(tail) >= 0:
            lines = lines[-int(tail) :] if int(tail) else []
        text = podlogs.render_records(lines, timestamps)
        if request.query.get("follow") not in ("true", "1"):
            return web.Response(text=text, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(text.encode())
        offset = path.stat().st_size
        deadline = asyncio.get_running_loop().time() + self.config.watch_timeout_seconds
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                if self.store.find("pods", namespace, name) is None:
                    break
                if path.stat().st_size > offset:
                    with path.open(encoding="utf-8", errors="replace") as handle:
                        handle.seek(offset)
                        chunk = handle.read()
                        offset = handle.tell()
                    await response.write(
                        podlogs.render_records(chunk.splitlines(True), timestamps).encode()
                    )
        return response

    def _metrics(self, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
        if request.method != "GET":
            raise method_not_allowed("metrics are read-only")
        if rt.plural == "pods":
            samples = [
                s
                for s in self.metrics.pods.values()
                if info.namespace is None or s.namespace == info.namespace
            ]
            items = []
            labels = selector_or_none(request.query.get("labelSelector"))
            for sample in samples:
                pod = self.store.find("pods", sample.namespace, sample.name)
                if pod is None or (labels and not labels.matches(pod["metadata"].get("labels"))):
                    continue
                items.append(_pod_metrics(sample, pod))
            if info.name is not None:
                match = [i for i in items if i["metadata"]["name"] == info.name]
                if not match:
                    raise not_found("pods", info.name, "metrics.k8s.io")
                return _json(match[0])
            return _json(
                {
                    "kind": "PodMetricsList",
                    "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {},
                    "items": items,
                }
            )
        nodes = [_node_metrics(s) for s in self.metrics.nodes.values()]
        if info.name is not None:
            match = [n for n in nodes if n["metadata"]["name"] == info.name]
            if not match:
                raise not_found("nodes", info.name, "metrics.k8s.io")
            return _json(match[0])
        return _json(
            {
                "kind": "NodeMetricsList",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {},
                "items": nodes,
            }
        )


# ---- helpers ----


def selector_or_none(text: str | None) -> Any:
    return parse_label_selector(text) if text else None


def _pod_metrics(sample: Any, pod: KubeObject) -> KubeObject:
    return {
        "metadata": {
            "name": sample.name,
            "namespace": sample.namespace,
            "creationTimestamp": rfc3339(sample.timestamp),
            "labels": pod["metadata"].get("labels", {}),
        },
        "timestamp": rfc3339(sample.timestamp),
        "window": f"{int(sample.window_seconds)}s",
        "containers": [
            {
                "name": c.name,
                "usage": {
                    "cpu": format_cpu(c.cpu_millicores),
                    "memory": format_memory(c.memory_bytes),
                },
            }
            for c in sample.containers
        ],
    }


def _node_metrics(sample: Any) -> KubeObject:
    return {
        "metadata": {"name": sample.name, "creationTimestamp": rfc3339(sample.timestamp)},
        "timestamp": rfc3339(sample.timestamp),
        "window": f"{int(sample.window_seconds)}s",
        "usage": {
            "cpu": format_cpu(sample.cpu_millicores),
            "memory": format_memory(sample.memory_bytes),
        },
    }


def _scale_of(target: KubeObject) -> KubeObject:
    raw = target["spec"].get("selector") or {}
    if target.get("kind") == "ReplicationController":  # a plain label map
        raw = {"matchLabels": raw}
    selector = selector_from_match(raw)
    match = raw.get("matchLabels") or {}
    text = ",".join(f"{k}={v}" for k, v in match.items()) if selector is not None else ""
    # autoscaling/v1 ScaleStatus.replicas has no omitempty: always present.
    status: KubeObject = {
        "replicas": (target.get("status") or {}).get("replicas", 0),
        "selector": text,
    }
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: target["metadata"][key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in target["metadata"]
        },
        "spec": {"replicas": target["spec"].get("replicas", 0)},
        "status": status,
    }


def _view_filter(text: str | None, rt: ResourceType) -> Callable[[KubeObject], bool]:
    """Field selectors on a converted view (events.k8s.io) apply after conversion."""
    if rt.key != EVENTS_V1_KEY:
        parse_field_selector(text, rt.key)  # a bad selector is a 400 before streaming starts
        return lambda _obj: True
    return parse_field_selector(text, rt.key).matches


def _request_labels(request: web.Request) -> tuple[str, str]:
    """(verb, resource) as apiserver_request_total counts them: LIST and WATCH for
    collections, GET for one object, DELETECOLLECTION; resource '' off the REST tree."""
    method = request.method
    try:
        info = parse_path(request.path.rstrip("/") or "/")
    except ApiError:
        return method, ""
    if info.resource is None:
        return method, ""
    verb = method
    if method == "GET" and info.name is None:
        verb = "WATCH" if request.query.get("watch") in ("true", "1") else "LIST"
    elif method == "DELETE" and info.name is None:
        verb = "DELETECOLLECTION"
    return verb, info.resource.plural


def _page(items: list[KubeObject], query: Any, version: str) -> tuple[list[KubeObject], str, str]:
    token = query.get("continue")
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            start, version = str(state["start"]), str(state["rv"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("continue key is not valid") from None
        items = [i for i in items if _sort_key(i) > start]
    limit = query.get("limit")
    if limit and limit.isdigit() and 0 < int(limit) < len(items):
        page = items[: int(limit)]
        state = {"rv": version, "start": _sort_key(page[-1])}
        return page, base64.urlsafe_b64encode(json.dumps(state).encode()).decode(), version
    return items, "", version


def _without_type(obj: KubeObject) -> KubeObject:
    """List items carry no kind/apiVersion, as upstream serialises them."""
    return {key: value for key, value in obj.items() if key not in ("kind", "apiVersion")}


def _sort_key(obj: KubeObject) -> str:
    metadata = obj.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _name(info: RequestInfo) -> str:
    assert info.name is not None
    return info.name


def _verb(request: web.Request, info: RequestInfo) -> str:
    """The RBAC verb of a request, as the API server's RequestInfoFactory names it."""
    watching = request.query.get("watch") in ("true", "1")
    collection = info.name is None
    verbs = {
        "GET": "watch" if watching else ("list" if collection else "get"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }
    return verbs.get(request.method, request.method.lower())


def _json(body: Any, status: int = 200) -> web.Response:
    # orjson: a list of a thousand pods serialises in a few ms instead of tens.
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def _line(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)


def _strict_body(
    request: web.Request, rt: ResourceType, body: KubeObject, options_kind: str
) -> list[str]:
    """Unknown fields of a create or update body: 400 under `Strict`, else returned for
    `Warn` to put in Warning headers (handlers/create.go, update.go)."""
    validation = fieldvalidation.directive(request.query.get("fieldValidation"), options_kind)
    if validation == "Ignore":
        return []
    unknown = fieldvalidation.unknown_fields_of_kind(
        discovery.SCHEMA_RELEASE, rt.group, rt.version, rt.kind, body
    )
    if unknown and validation == "Strict":
        raise fieldvalidation.body_error(rt.kind, rt.version, unknown)
    return unknown


def _strict_patch(
    validation: str, rt: ResourceType, patch: Any, patched: KubeObject, patch_type: str
) -> list[str]:
    """Unknown fields of a patched object: 422 under `Strict` (handlers/patch.go)."""
    if validation == "Ignore" or patch_type == patching.APPLY_PATCH:
        return []
    unknown = fieldvalidation.unknown_fields_of_kind(
        discovery.SCHEMA_RELEASE, rt.group, rt.version, rt.kind, patched
    )
    if unknown and validation == "Strict":
        shown = (
            fieldvalidation.go_value(patch)
            if patch_type == patching.STRATEGIC_MERGE_PATCH
            else json.dumps(patched, separators=(",", ":"))
        )
        raise fieldvalidation.patch_error(shown, unknown)
    return unknown


def _warned(response: web.Response, unknown: list[str]) -> web.Response:
    for message in fieldvalidation.warnings(unknown):
        response.headers.add("Warning", fieldvalidation.warning_header(message))
    return response


def _status_response(error: ApiError) -> web.Response:
    response = _json(error.to_status(), error.code)
    if error.retry_after_seconds:
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def _content_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()


def _body_kind(rt: ResourceType, info: RequestInfo) -> tuple[str, str]:
    """The apiVersion and kind a request body on this endpoint holds (a subresource's
    own, as pods/eviction's policy/v1 Eviction), which a protobuf body may leave out."""
    for sub in rt.subresources:
        if sub.name == info.subresource:
            return (f"{sub.group}/{sub.version}" if sub.group else rt.api_version), sub.kind
    return rt.api_version, rt.kind


async def _read_body(request: web.Request, kind: tuple[str, str] | None = None) -> Any:
    """The body as JSON: from JSON, YAML or, for the built-in kinds (`kind` is what the
    endpoint takes), protobuf. Other endpoints do not offer protobuf (415), as custom
    resources' do not upstream; an undecodable body is a 400 (create.go
    `transformDecodeError`)."""
    raw = await request.read()
    if not raw:
        raise bad_request("the request body is empty")
    content_type = _content_type(request)
    if content_type == protobuf_body.CONTENT_TYPE and kind is not None:
        if not protobuf_body.serves(*kind):
            raise unsupported_media_type(content_type)
        try:
            return protobuf_body.decode(raw, *kind)
        except protobuf_body.DecodeError as error:
            raise bad_request(_undecodable(error, kind[1])) from None
    if "protobuf" in content_type:
        raise unsupported_media_type(content_type)
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw.decode("utf-8"))
        return json.loads(raw)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise bad_request(f"couldn't decode the request body: {error}") from None


def _undecodable(error: protobuf_body.DecodeError, expected_kind: str) -> str:
    if error.kind:
        return (
            f'{error.kind} in version "{error.version}" cannot be handled as a '
            f"{expected_kind}: {error}"
        )
    return f"the object provided is unrecognized (must be of type {expected_kind}): {error}"


async def _delete_options(request: web.Request) -> KubeObject:
    """DeleteOptions from the body, with the query parameters clients send instead
    (the Python client puts grace_period_seconds and orphan_dependents in the query).
    A protobuf body (kubectl drain's typed DELETE) is read as the meta.k8s.io/v1 kind
    upstream's delete handler defaults to."""
    options: KubeObject = {}
    raw = await request.read()
    if raw and _content_type(request) == protobuf_body.CONTENT_TYPE:
        options = await _read_body(request, ("meta.k8s.io/v1", "DeleteOptions"))
    elif raw and "protobuf" not in _content_type(request):
        try:
            parsed = json.loads(raw)
        except ValueError as error:
            raise bad_request(f"couldn't decode DeleteOptions: {error}") from None
        if isinstance(parsed, dict):
            options = parsed
    grace = request.query.get("gracePeriodSeconds")
    if grace is not None:
        try:
            options["gracePeriodSeconds"] = int(grace)
        except ValueError:
            raise bad_request(f"gracePeriodSeconds: invalid integer {grace!r}") from None
    value = options.get("gracePeriodSeconds")
    if value is not None and not isinstance(value, int):
        raise bad_request("gracePeriodSeconds must be an integer")
    orphan = request.query.get("orphanDependents")
    if orphan is not None:
        # Go's strconv.ParseBool, which decodes the query parameter upstream.
        if orphan not in _GO_BOOLS:
            raise bad_request(f"orphanDependents: invalid boolean {orphan!r}")
        options["orphanDependents"] = _GO_BOOLS[orphan]
    orphan_value = options.get("orphanDependents")
    if orphan_value is not None and not isinstance(orphan_value, bool):
        raise bad_request("orphanDependents must be a boolean")
    return options


_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def _object_body(body: Any, rt: ResourceType | None) -> KubeObject:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    if rt is not None:
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind in the body ({kind}) does not match {rt.kind}")
        if api_version and api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
    if not isinstance(body.get("metadata", {}), dict):
        raise bad_request("metadata must be an object")
    return body


def _check_namespace(body: KubeObject, info: RequestInfo, rt: ResourceType) -> None:
    metadata = body.setdefault("metadata", {})
    if not rt.namespaced:
        return
    given = metadata.get("namespace")
    if given and info.namespace and given != info.namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if info.namespace:
        metadata["namespace"] = info.namespace


def _patch_resource_version(body: Any) -> str | None:
    if isinstance(body, dict):
        version = (body.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None
    return None


def _dry_run(request: web.Request) -> bool:
    return bool(request.query.get("dryRun"))


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        raise bad_request(f"invalid number {text!r}") from None


__all__ = ["ADDED", "ApiServer", "ApiServerConfig"]
