"""One Chaos Mesh object, planned: what it selects, what it injects now, what its status says.

Chaos Mesh's controllers select pods once, when an experiment starts, and keep the
choice in `status.experiment.containerRecords`; every later reconcile works from
those records (a pod chosen by `mode: one` stays the one). Target pods
(`spec.target`) are chosen again at each apply, as `PodNetworkChaos` is rebuilt;
here with a random source seeded by the object's uid, so a reconcile that changes
nothing chooses the same. A record whose pod is gone is recovered: nothing of it
is left in the kernel, and Chaos Mesh's recover of a missing pod succeeds too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.cni import chaosmesh
from sandbox.cni.chaosmesh import INJECTED, NOT_INJECTED, RUN, Record
from sandbox.cni.faults import DnsFault, PodEndpoint, TrafficFault
from sandbox.kube.clock import parse_time

NETWORKCHAOS = "chaos-mesh.org/networkchaos"
DNSCHAOS = "chaos-mesh.org/dnschaos"
FINALIZER = "chaos-mesh/records"
ResolveTargets = Callable[[Sequence[str]], tuple[tuple[str, ...], list[str]]]


@dataclass(frozen=True)
class ChaosPlan:
    resource: str
    chaos: Mapping[str, Any]
    desired: str  # RUN or STOP
    records: tuple[Record, ...] | None  # None: nothing selected (yet)
    live: frozenset[str] = frozenset()  # record ids whose pod is in the network now
    faults: tuple[TrafficFault, ...] = ()
    dns_faults: tuple[DnsFault, ...] = ()
    error: str = ""  # why nothing (or not everything) could be injected
    recheck_seconds: float | None = None  # until the duration ends

    @property
    def key(self) -> str:
        metadata = self.chaos.get("metadata") or {}
        return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"

    def status(self, applied: bool, apply_error: str, now: datetime) -> dict[str, Any]:
        """The status once the kernel holds the plan (`applied`) or failed to (`apply_error`)."""
        records = None
        if self.records is not None:
            records = [self._next(r, applied, apply_error, now) for r in self.records]
        instances = None
        if self.resource == NETWORKCHAOS and records:
            instances = {r.id: 1 for r in records if r.phase == INJECTED}
        return chaosmesh.chaos_status(
            records, self.desired, chaosmesh.is_paused(self.chaos), instances or None
        )

    def _next(self, record: Record, applied: bool, apply_error: str, now: datetime) -> Record:
        if pod_of(self.resource, record.id) not in self.live:
            # not in the network (gone, or not running yet): nothing of it is in the kernel
            if record.phase == INJECTED:
                return chaosmesh.record_result(record, "recover", NOT_INJECTED, now)
            return record
        operation = chaosmesh.record_operation(record, self.desired)
        if not operation or not applied:
            return record
        error = apply_error or (self.error if operation == "apply" else "")
        if error:
            if _failed_last(record, error):
                return record
            return chaosmesh.record_result(record, operation, record.phase, now, error)
        phase = INJECTED if operation == "apply" else NOT_INJECTED
        return chaosmesh.record_result(record, operation, phase, now)


def pod_of(resource: str, record_id: str) -> str:
    """The "<namespace>/<pod>" of a record (DNSChaos records name a container too)."""
    return record_id.rsplit("/", 1)[0] if resource == DNSCHAOS else record_id


def _failed_last(record: Record, error: str) -> bool:
    """Whether the last event already says this failure (no event per reconcile)."""
    return (
        bool(record.events)
        and record.events[-1].type == "Failed"
        and (error in record.events[-1].message)
    )


@dataclass
class PlanInputs:
    pods: Sequence[Mapping[str, Any]]
    namespaces: Sequence[Mapping[str, Any]]
    endpoints: Mapping[str, PodEndpoint]  # by pod uid
    resolve_targets: ResolveTargets
    nodes: Sequence[Mapping[str, Any]] = field(default_factory=list)


def plan(resource: str, chaos: Mapping[str, Any], inputs: PlanInputs, now: datetime) -> ChaosPlan:
    """What `chaos` asks for at `now`, given the cluster in `inputs`."""
    spec = chaos.get("spec") or {}
    metadata = chaos.get("metadata") or {}
    desired = chaosmesh.desired_phase(chaos, now)
    records = chaosmesh.records_from_status(chaos.get("status"))
    error = ""
    if records is None and desired == RUN:
        try:
            selected = chaosmesh.select_pods(
                _selector(spec),
                str(spec.get("mode", "")),
                spec.get("value"),
                inputs.pods,
                inputs.namespaces,
                random.Random(str(metadata.get("uid", ""))),
                nodes=inputs.nodes,
            )
        except (chaosmesh.NoPodSelected, chaosmesh.SelectorError) as failure:
            return ChaosPlan(resource, chaos, desired, None, error=str(failure))
        if resource == DNSCHAOS:
            ids = [i for pod in selected for i in chaosmesh.container_record_ids(pod)]
        else:
            ids = [chaosmesh.pod_record_id(pod) for pod in selected]
        records = [Record(i) for i in ids]
    by_name = {f"{e.namespace}/{e.name}": e for e in inputs.endpoints.values()}
    pod_ids = {pod_of(resource, r.id) for r in records or ()}
    chosen = [by_name[i] for i in sorted(pod_ids) if i in by_name]
    live = frozenset(e for e in pod_ids if e in by_name)
    faults: tuple[TrafficFault, ...] = ()
    dns: tuple[DnsFault, ...] = ()
    if desired == RUN and chosen:
        try:
            if resource == DNSCHAOS:
                dns = tuple(chaosmesh.dns_faults(chaos, chosen))
            else:
                targets = _targets(spec, inputs, str(metadata.get("uid", "")))
                external, unresolved = inputs.resolve_targets(spec.get("externalTargets") or ())
                if unresolved:
                    error = f"externalTargets not resolved: {', '.join(unresolved)}"
                else:
                    faults = tuple(chaosmesh.network_faults(chaos, chosen, targets, external))
        except (chaosmesh.UnsupportedChaos, chaosmesh.InvalidChaos, chaosmesh.SelectorError) as e:
            error = str(e)
    return ChaosPlan(
        resource,
        chaos,
        desired,
        tuple(records) if records is not None else None,
        live,
        faults,
        dns,
        error,
        _until_expiry(chaos, now) if desired == RUN else None,
    )


def _selector(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    return spec.get("selector") or {}


def _targets(spec: Mapping[str, Any], inputs: PlanInputs, uid: str) -> list[PodEndpoint]:
    target = spec.get("target")
    if not target:
        return []
    try:
        pods = chaosmesh.select_pods(
            target.get("selector") or {},
            str(target.get("mode", "")),
            target.get("value"),
            inputs.pods,
            inputs.namespaces,
            random.Random(f"{uid}/target"),
            nodes=inputs.nodes,
        )
    except chaosmesh.NoPodSelected:
        return []
    by_name = {f"{e.namespace}/{e.name}": e for e in inputs.endpoints.values()}
    return [by_name[i] for i in map(chaosmesh.pod_record_id, pods) if i in by_name]


def _until_expiry(chaos: Mapping[str, Any], now: datetime) -> float | None:
    created = (chaos.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return None
    ends = chaosmesh.expires_at(chaos, parse_time(created))
    if ends is None:
        return None
    # desired_phase says Stop once the end is strictly before now: look just after it
    return max(0.0, (ends - now).total_seconds()) + 0.01
