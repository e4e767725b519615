"""The ingress-nginx controller of the sandbox: Ingresses, Services, EndpointSlices -> nginx.

As ingress-nginx did before its Lua balancer: every change of an Ingress, a
Service or an EndpointSlice re-renders nginx.conf (`nginx_config.render_config`
over `store.snapshot`), and nginx is reloaded only when the text changed.
Reloads are rate-limited like ingress-nginx's sync queue (a token bucket of one,
refilled at `--sync-rate-limit`, upstream's 0.3 per second by default): a change after a
quiet spell is applied at once, and changes arriving within the interval (3.3 s) of the
last reload are coalesced into one reload at its end. So a pod that stops serving the
moment it is told to terminate still gets traffic for up to that long, as on EKS.

Once nginx serves an Ingress, its `status.loadBalancer.ingress` becomes
`[{"ip": <nginx's listen address>}]` (status subresource); each added or changed
nginx-class Ingress gets the event `Sync` "Scheduled for sync", as upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from sandbox.infra.nginx_config import is_nginx_ingress, render_config
from sandbox.infra.nginx_process import NginxError, NginxProcess
from sandbox.kube.clock import Clock
from sandbox.kube.errors import ApiError
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

log = logging.getLogger(__name__)

INGRESSES = "networking.k8s.io/ingresses"
SLICES = "discovery.k8s.io/endpointslices"
WATCHED = frozenset({INGRESSES, "services", SLICES})
SYNC_KEY = "nginx.conf"  # one key: the whole config is rendered at once
COMPONENT = "nginx-ingress-controller"
MIN_RELOAD_INTERVAL_SECONDS = 0.1
RELOAD_POLL_SECONDS = 0.01  # how often a reconcile looks whether a reload has finished
NOT_RUNNING_RETRY_SECONDS = 1.0
FAILED_RELOAD_BACKOFF_SECONDS = 1.0

IngressKey = tuple[str, str]


# ---- pure decisions ----


def load_balancer_status(ip: str) -> dict[str, Any]:
    """`status.loadBalancer` of an Ingress nginx serves.

    >>> load_balancer_status("127.0.0.1")
    {'ingress': [{'ip': '127.0.0.1'}]}
    """
    return {"ingress": [{"ip": ip}]}


def ingresses_needing_status(ingresses: Iterable[Mapping[str, Any]], ip: str) -> list[IngressKey]:
    """nginx-class Ingresses whose load-balancer status is not yet nginx's address, sorted.

    >>> ours = {"metadata": {"namespace": "hf", "name": "web"},
    ...         "spec": {"ingressClassName": "nginx"}}
    >>> done = {**ours, "metadata": {"namespace": "hf", "name": "done"},
    ...         "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}
    >>> ingresses_needing_status([ours, done], "127.0.0.1")
    [('hf', 'web')]
    """
    wanted = load_balancer_status(ip)
    return sorted(
        _key(ingress)
        for ingress in ingresses
        if is_nginx_ingress(ingress)
        and ((ingress.get("status") or {}).get("loadBalancer") or {}) != wanted
    )


def ingresses_to_announce(
    ingresses: Iterable[Mapping[str, Any]], announced: Mapping[IngressKey, tuple[str, int]]
) -> dict[IngressKey, tuple[str, int]]:
    """nginx-class Ingresses added or changed (uid, generation) since last announced.

    >>> ing = {"metadata": {"namespace": "hf", "name": "web", "uid": "u", "generation": 2},
    ...        "spec": {"ingressClassName": "nginx"}}
    >>> ingresses_to_announce([ing], {("hf", "web"): ("u", 1)})
    {('hf', 'web'): ('u', 2)}
    >>> ingresses_to_announce([ing], {("hf", "web"): ("u", 2)})
    {}
    """
    fresh = {}
    for ingress in ingresses:
        if not is_nginx_ingress(ingress):
            continue
        metadata = ingress.get("metadata") or {}
        version = (str(metadata.get("uid", "")), int(metadata.get("generation", 1)))
        if announced.get(_key(ingress)) != version:
            fresh[_key(ingress)] = version
    return dict(sorted(fresh.items()))


def reload_delay(last_reload_at: float | None, now: float, min_interval: float) -> float:
    """Seconds to wait before the next reload: none after a quiet spell.

    >>> reload_delay(None, 5.0, 0.1), reload_delay(4.0, 5.0, 0.1)
    (0.0, 0.0)
    >>> round(reload_delay(4.96, 5.0, 0.1), 3)
    0.06
    """
    if last_reload_at is None:
        return 0.0
    return max(0.0, last_reload_at + min_interval - now)


def sync_interval(sync_rate_limit: float) -> float:
    """Seconds between two syncs at ingress-nginx's `--sync-rate-limit` (syncs per second);
    never below MIN_RELOAD_INTERVAL_SECONDS, which keeps reloads from piling up.

    >>> round(sync_interval(0.3), 3), sync_interval(100.0)
    (3.333, 0.1)
    """
    return max(MIN_RELOAD_INTERVAL_SECONDS, 1.0 / sync_rate_limit)


def _key(obj: Mapping[str, Any]) -> IngressKey:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace", "")), str(metadata.get("name", "")))


# ---- the controller ----


class IngressController:
    """Keeps nginx's config in line with the store; `reloads` counts applied reloads."""

    name = "ingress-nginx"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: ControlPlaneSettings,
        nginx: NginxProcess,
        *,
        min_reload_interval: float | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.nginx = nginx
        self.min_reload_interval = (
            sync_interval(settings.ingress_sync_rate_limit)
            if min_reload_interval is None
            else min_reload_interval
        )
        self.reloads = 0
        self.failed_reloads = 0
        self._rejected: str | None = None  # the last text nginx refused: not retried
        self._last_reload_at: float | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._announced: dict[IngressKey, tuple[str, int]] = {}

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        return [SYNC_KEY] if change.resource in WATCHED else []

    def all_keys(self) -> Iterable[Hashable]:
        return [SYNC_KEY]

    def render(self) -> str:
        """nginx.conf for what the store holds now."""
        return render_config(
            self.store.snapshot(INGRESSES),
            self.store.snapshot("services"),
            self.store.snapshot(SLICES),
            self.nginx.listen_host,
            self.nginx.port,
            self.nginx.paths,
            worker_user=self.nginx.worker_user,
            upstream_bind=self.nginx.upstream_bind,
        )

    def reconcile(self, key: Hashable) -> float | None:
        if self._reloading is not None and not self._reloading.done():
            return RELOAD_POLL_SECONDS  # changes during a reload: look again once it is done
        ingresses = self.store.snapshot(INGRESSES)
        self._announce(ingresses)
        if not self.nginx.running:
            log.warning("%s: nginx is not running; config sync postponed", self.name)
            return NOT_RUNNING_RETRY_SECONDS
        text = self.render()
        if text == self.nginx.config_text:
            self._publish_status(ingresses)
            return None
        if text == self._rejected:
            return None
        wait = reload_delay(self._last_reload_at, self.clock.monotonic(), self.min_reload_interval)
        if wait > 0:
            return wait
        self._last_reload_at = self.clock.monotonic()
        self._reloading = asyncio.get_running_loop().create_task(self._apply(text))
        return RELOAD_POLL_SECONDS  # then publish the status, or apply what changed meanwhile

    async def wait_idle(self) -> None:
        """Until the reload in flight (if any) is done."""
        if self._reloading is not None:
            await asyncio.shield(self._reloading)

    async def _apply(self, text: str) -> None:
        try:
            applied = await self.nginx.reload(text)
        except NginxError as error:
            self.failed_reloads += 1
            log.error("%s: reloading nginx failed: %s", self.name, error)
            # try the same text again, but no sooner than FAILED_RELOAD_BACKOFF_SECONDS from now
            self._last_reload_at = (
                self.clock.monotonic() + FAILED_RELOAD_BACKOFF_SECONDS - self.min_reload_interval
            )
            return
        if not applied:
            self.failed_reloads += 1
            self._rejected = text
            return
        self.reloads += 1
        self._rejected = None

    def _announce(self, ingresses: Sequence[Mapping[str, Any]]) -> None:
        fresh = ingresses_to_announce(ingresses, self._announced)
        by_key = {_key(ingress): ingress for ingress in ingresses}
        for key, version in fresh.items():
            self.store.record_event(
                dict(by_key[key]), "Sync", "Scheduled for sync", component=COMPONENT
            )
            self._announced[key] = version
        for gone in set(self._announced) - set(by_key):
            del self._announced[gone]

    def _publish_status(self, ingresses: Sequence[Mapping[str, Any]]) -> None:
        wanted = load_balancer_status(self.nginx.listen_host)

        def set_status(ingress: dict[str, Any]) -> None:
            ingress.setdefault("status", {})["loadBalancer"] = wanted

        for namespace, name in ingresses_needing_status(ingresses, self.nginx.listen_host):
            try:
                self.store.mutate(INGRESSES, namespace, name, set_status, subresource="status")
            except ApiError as error:  # deleted meanwhile: its DELETED change brings us back
                log.debug("%s: status of %s/%s: %s", self.name, namespace, name, error)
