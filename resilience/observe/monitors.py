"""Start, mark and stop the watches of one namespace as a unit.

    monitors = Monitors(api_client, MonitorScope.for_policy(policy)).start()
    with monitors.mark("kill-pod"):
        ...                                  # the fault
    monitors.stop()
    result = check_rollout_limits(monitors.timeline.states(), policy)

Every thread is bounded: `start()` waits at most `sync_timeout` for the first
LIST of every watch, `stop()` joins all of them within one deadline and says
which one did not end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kubernetes import client

from resilience.errors import ResilienceError
from resilience.observe.codec import export_jsonl
from resilience.observe.records import ResourceKind
from resilience.observe.timeline import Mark, Timeline
from resilience.observe.watchers import ResourceWatcher, WatchFailure, WatchSpec, WatchTimeouts
from resilience.policy import IntendedPolicy


class MonitorError(ResilienceError):
    """The monitors could not start or stop cleanly (the message names the watch)."""


@dataclass(frozen=True)
class MonitorScope:
    """What to watch: one namespace, optionally narrowed to one Deployment's objects."""

    namespace: str
    deployment: str | None = None  # narrows the Deployment watch (field selector)
    pod_selector: str | None = None  # narrows the Pod watch (label selector)
    nodes: bool = True  # cluster-wide; needed for pod zones and node readiness
    disruption_budgets: bool = True
    events: bool = False  # core/v1 Events: useful in reports, noisy in timelines

    @classmethod
    def for_policy(
        cls, policy: IntendedPolicy, namespace: str | None = None, events: bool = False
    ) -> MonitorScope:
        return cls(
            namespace=namespace or policy.namespace,
            deployment=policy.deployment,
            pod_selector=policy.label_selector or None,
            events=events,
        )


def watched_kinds(scope: MonitorScope) -> tuple[ResourceKind, ...]:
    """What `scope` watches (and so what the preflight asks to list and watch)."""
    kinds = [
        ResourceKind.POD,
        ResourceKind.REPLICASET,
        ResourceKind.DEPLOYMENT,
        ResourceKind.ENDPOINTSLICE,
        ResourceKind.HPA,
    ]
    if scope.disruption_budgets:
        kinds.append(ResourceKind.PDB)
    if scope.nodes:
        kinds.append(ResourceKind.NODE)
    if scope.events:
        kinds.append(ResourceKind.EVENT)
    return tuple(kinds)


def watch_specs(api_client: client.ApiClient, scope: MonitorScope) -> tuple[WatchSpec, ...]:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    namespace = scope.namespace
    name_selector = f"metadata.name={scope.deployment}" if scope.deployment else None
    specs = {
        ResourceKind.POD: WatchSpec(
            ResourceKind.POD, core.list_namespaced_pod, namespace, scope.pod_selector
        ),
        ResourceKind.REPLICASET: WatchSpec(
            ResourceKind.REPLICASET, apps.list_namespaced_replica_set, namespace
        ),
        ResourceKind.DEPLOYMENT: WatchSpec(
            ResourceKind.DEPLOYMENT,
            apps.list_namespaced_deployment,
            namespace,
            field_selector=name_selector,
        ),
        ResourceKind.ENDPOINTSLICE: WatchSpec(
            ResourceKind.ENDPOINTSLICE,
            client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice,
            namespace,
        ),
        ResourceKind.HPA: WatchSpec(
            ResourceKind.HPA,
            client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler,
            namespace,
        ),
        ResourceKind.PDB: WatchSpec(
            ResourceKind.PDB,
            client.PolicyV1Api(api_client).list_namespaced_pod_disruption_budget,
            namespace,
        ),
        ResourceKind.NODE: WatchSpec(ResourceKind.NODE, core.list_node),
        ResourceKind.EVENT: WatchSpec(ResourceKind.EVENT, core.list_namespaced_event, namespace),
    }
    return tuple(specs[kind] for kind in watched_kinds(scope))


@dataclass(frozen=True)
class WatchStatus:
    description: str
    synced: bool
    alive: bool
    relists: int
    reconnects: int
    failures: tuple[WatchFailure, ...]


RELIST_MARK = "watch-relist"
DEFAULT_TIMEOUTS = WatchTimeouts()


class Monitors:
    """The watches of one scope, recording into one timeline."""

    def __init__(
        self,
        api_client: client.ApiClient,
        scope: MonitorScope,
        *,
        timeline: Timeline | None = None,
        timeouts: WatchTimeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        self.scope = scope
        self.timeline = timeline or Timeline()
        self._watchers = [
            ResourceWatcher(spec, self.timeline, timeouts, on_relist=self._relisted)
            for spec in watch_specs(api_client, scope)
        ]
        self._started = False

    # ---- lifecycle ----

    def start(self, sync_timeout: float = 15.0) -> Monitors:
        """Start every watch and wait (bounded) until each has listed once."""
        if self._started:
            raise MonitorError("monitors already started")
        self._started = True
        for watcher in self._watchers:
            watcher.start()
        deadline = time.monotonic() + sync_timeout
        for watcher in self._watchers:
            if not watcher.synced.wait(max(0.0, deadline - time.monotonic())):
                last = watcher.failures[-1].message if watcher.failures else "no answer"
                self.stop()
                raise MonitorError(
                    f"watch of {watcher.spec.describe()} did not list within "
                    f"{sync_timeout:g}s: {last}"
                )
        self.timeline.set_synced()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every watch; raises MonitorError naming any thread still running after `timeout`."""
        deadline = time.monotonic() + timeout
        for watcher in self._watchers:
            watcher.stop(timeout=0)
        stuck = [
            watcher.spec.describe()
            for watcher in self._watchers
            if not watcher.stop(max(0.0, deadline - time.monotonic()))
        ]
        if stuck:
            raise MonitorError(f"watches still running {timeout:g}s after stop: {', '.join(stuck)}")

    def __enter__(self) -> Monitors:
        return self if self._started else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- marks ----

    def mark(self, name: str, detail: str = "") -> contextlib.AbstractContextManager[Mark]:
        """`with monitors.mark("drain-az-a"): ...` -- start and end on the timeline."""
        return self.timeline.mark(name, detail)

    def begin_mark(self, name: str, detail: str = "") -> Mark:
        return self.timeline.begin_mark(name, detail)

    def end_mark(self, mark: Mark) -> Mark:
        return self.timeline.end_mark(mark)

    # ---- reading ----

    @property
    def status(self) -> tuple[WatchStatus, ...]:
        return tuple(
            WatchStatus(
                description=w.spec.describe(),
                synced=w.synced.is_set(),
                alive=w.alive,
                relists=w.relists,
                reconnects=w.reconnects,
                failures=tuple(w.failures),
            )
            for w in self._watchers
        )

    @property
    def failures(self) -> tuple[WatchFailure, ...]:
        return tuple(f for w in self._watchers for f in w.failures)

    def export_jsonl(self, path: Path | str) -> Path:
        return export_jsonl(self.timeline, path)

    def _relisted(self, spec: WatchSpec) -> None:
        with self.timeline.mark(RELIST_MARK, f"{spec.describe()}: events may have been missed"):
            pass


@contextlib.contextmanager
def monitoring(
    api_client: client.ApiClient, scope: MonitorScope, sync_timeout: float = 15.0
) -> Iterator[Monitors]:
    """`with monitoring(api, scope) as monitors: ...` -- started, and stopped on the way out."""
    monitors = Monitors(api_client, scope).start(sync_timeout)
    try:
        yield monitors
    finally:
        monitors.stop()
