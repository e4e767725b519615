"""HorizontalPodAutoscaler (autoscaling/v2) controller: the thin loop.

Every `hpa_sync_period_seconds` per HPA (and at once when an HPA is created or
its spec changes) it reads the scale target's `spec.replicas` and selector, lists
the target's pods, reads their usage from the `MetricsStore`, and lets
`horizontal.decide` choose. It writes `spec.replicas` on the target when that
changes (what the `/scale` subresource does), then the HPA status, and records
the events upstream records. Recommendations and scale events live in memory,
per HPA, as in kube-controller-manager.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from sandbox.kube.clock import Clock
from sandbox.kube.controllers.hpa.conversion import (
    autoscaler_spec,
    autoscaler_status,
    params_from_settings,
    pod_snapshot,
    pod_usage,
    status_json,
)
from sandbox.kube.controllers.hpa.horizontal import decide, finish, scale_unavailable
from sandbox.kube.controllers.hpa.model import (
    AutoscalerStatus,
    History,
    HpaEvent,
    PodUsage,
    ScaleView,
)
from sandbox.kube.errors import ApiError
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.resources import RESOURCES, ResourceType
from sandbox.kube.selectors import LabelSelector, selector_from_match
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, KubeObject, Store

HPA_RESOURCE = "autoscaling/horizontalpodautoscalers"
COMPONENT = "horizontal-pod-autoscaler"


class ScaleUnavailable(Exception):
    """The target's /scale cannot be read; the message is what upstream reports."""


class HorizontalPodAutoscalerController:
    """Syncs each HPA every `hpa_sync_period_seconds`; keys are (namespace, name)."""

    name = "horizontalpodautoscaler"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: ControlPlaneSettings,
        metrics: MetricsStore,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.metrics = metrics
        self.params = params_from_settings(settings)
        self._histories: dict[Hashable, History] = {}
        self._due: dict[Hashable, float] = {}
        self._synced_generation: dict[Hashable, int] = {}

    # ---- Controller protocol ----

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource != HPA_RESOURCE:
            return ()
        metadata = change.object.get("metadata") or {}
        return ((metadata.get("namespace", ""), metadata.get("name", "")),)

    def all_keys(self) -> Iterable[Hashable]:
        return [
            (hpa["metadata"].get("namespace", ""), hpa["metadata"]["name"])
            for hpa in self.store.list(HPA_RESOURCE)
        ]

    def reconcile(self, key: Hashable) -> float | None:
        """Sync when due (or at once for a new HPA or a spec change); otherwise
        answer how long until the next sync."""
        assert isinstance(key, tuple)
        namespace, name = key
        hpa = self.store.find(HPA_RESOURCE, namespace, name)
        if hpa is None:
            self._forget(key)
            return None
        period = self.settings.hpa_sync_period_seconds
        generation = int(hpa["metadata"].get("generation", 0))
        due = self._due.get(key)
        if due is not None and self._synced_generation.get(key) == generation:
            remaining = due - self.clock.monotonic()
            if remaining > 0:
                return remaining
        self._sync(key, hpa)
        self._due[key] = self.clock.monotonic() + period
        self._synced_generation[key] = generation
        return period

    # ---- one sync: read, call, write ----

    def _sync(self, key: Hashable, hpa: KubeObject) -> None:
        now = self.clock.now()
        namespace = hpa["metadata"].get("namespace", "")
        previous = autoscaler_status(hpa)
        spec = autoscaler_spec(hpa)
        history = self._histories.get(key, History())
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        try:
            resource, target = self._scale_target(namespace, ref)
        except ScaleUnavailable as error:
            status, event = scale_unavailable(previous, str(error), now)
            self._record(hpa, (event,))
            self._write_status(hpa, status, keep_metrics=True)
            return
        selector = selector_from_match((target.get("spec") or {}).get("selector"))
        has_selector = selector is not None and not selector.empty
        pods = self._pods(namespace, selector) if has_selector else []
        scale = ScaleView(int((target.get("spec") or {}).get("replicas", 1)), has_selector)
        decision = decide(
            spec,
            scale,
            [pod_snapshot(p) for p in pods],
            self._usages(namespace, pods),
            history,
            previous,
            self.params,
            now,
        )
        update_error = None
        if decision.rescale:
            update_error = self._write_replicas(
                resource, namespace, target["metadata"]["name"], decision.desired_replicas
            )
        outcome = finish(decision, previous, spec.behavior, history, now, update_error)
        self._histories[key] = outcome.history
        self._record(hpa, outcome.events)
        self._write_status(hpa, outcome.status)

    def _scale_target(self, namespace: str, ref: Mapping[str, Any]) -> tuple[str, KubeObject]:
        """The scale target's resource key and object, or ScaleUnavailable."""
        api_version = str(ref.get("apiVersion", ""))
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        kind = str(ref.get("kind", ""))
        resource = _scalable_resource(group, kind)
        if resource is None:
            raise ScaleUnavailable(f'no matches for kind "{kind}" in group "{group}"')
        if resource.subresource("scale") is None:
            raise ScaleUnavailable("the server could not find the requested resource")
        try:
            return resource.key, self.store.get(resource.key, namespace, str(ref.get("name", "")))
        except ApiError as error:
            raise ScaleUnavailable(error.message) from None

    def _pods(self, namespace: str, selector: LabelSelector | None) -> list[KubeObject]:
        return self.store.snapshot("pods", namespace, labels=selector)

    def _usages(self, namespace: str, pods: Iterable[KubeObject]) -> dict[str, PodUsage]:
        usages: dict[str, PodUsage] = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            sample = self.metrics.pod(namespace, name)
            if sample is not None:
                usages[name] = pod_usage(sample)
        return usages

    def _write_replicas(
        self, resource: str, namespace: str, name: str, replicas: int
    ) -> str | None:
        """Set spec.replicas as the /scale subresource does; the error text, if any."""

        def set_replicas(obj: KubeObject) -> None:
            obj.setdefault("spec", {})["replicas"] = replicas

        try:
            self.store.mutate(resource, namespace, name, set_replicas)
        except ApiError as error:
            return error.message
        return None

    def _write_status(
        self, hpa: KubeObject, status: AutoscalerStatus, keep_metrics: bool = False
    ) -> None:
        """Write status unless unchanged; `keep_metrics` leaves currentMetrics as stored
        (a sync that could not read the scale does not touch them upstream)."""
        body = status_json(status)
        if keep_metrics:
            body["currentMetrics"] = (hpa.get("status") or {}).get("currentMetrics")
        if body == hpa.get("status"):
            return
        updated = dict(hpa)
        updated["status"] = body
        self.store.update(HPA_RESOURCE, updated, subresource="status")

    def _record(self, hpa: KubeObject, events: Iterable[HpaEvent]) -> None:
        for event in events:
            self.store.record_event(
                hpa, event.reason, event.message, event_type=event.type, component=COMPONENT
            )

    def _forget(self, key: Hashable) -> None:
        self._histories.pop(key, None)
        self._due.pop(key, None)
        self._synced_generation.pop(key, None)


def _scalable_resource(group: str, kind: str) -> ResourceType | None:
    """The RESTMapper step: any served version of the group and kind."""
    for resource in RESOURCES:
        if resource.group == group and resource.kind == kind and resource.stored:
            return resource
    return None
