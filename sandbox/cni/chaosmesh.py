"""Chaos Mesh's decisions, as pure functions: which pods, which faults, when, and the status.

The NetworkChaos / DNSChaos controller only reads, calls these, and writes; what
these decide is what Chaos Mesh decides (chaos-mesh 608b61e7, files cited per
function). The pod network realizes the returned `TrafficFault`s and `DnsFault`s
(`faults.py`). Durations, percentages and rates are parsed here, privately, as
Chaos Mesh's Go parses them (`time.ParseDuration`, `strconv.ParseFloat`, tc units).

Worked example: a NetworkChaos `delay` of 100 ms from the session-state pods to
Redis,

    spec: {action: delay, mode: all, direction: to, duration: 30s,
           selector: {namespaces: [harmonyflow], labelSelectors: {app: session-state}},
           delay: {latency: 100ms, jitter: 0ms, correlation: "0"},
           externalTargets: [127.0.3.10]}

selects the three running pods (`select_pods`), gives one `TrafficFault` per pod
(`network_faults`: netem, delay 0.1 s, path pod -> 127.0.3.10), expires 30 s after
its creation (`expires_at`), and its status, once all three are injected, is
(`chaos_status`): conditions Selected/AllInjected True, AllRecovered/Paused False,
`experiment.desiredPhase: Run`, three `containerRecords` `{id: harmonyflow/<pod>,
selectorKey: ".", phase: Injected, injectedCount: 1, recoveredCount: 0, events:
[{type: Succeeded, operation: Apply, timestamp}]}`.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sandbox.cni.faults import DnsFault, NetemParams, PacketPath, PodEndpoint, TrafficFault
from sandbox.cni.netem import NetemSpecError, parse_percent, parse_rate
from sandbox.kube.clock import parse_time, rfc3339
from sandbox.kube.goduration import DurationError, parse_go_duration
from sandbox.kube.selectors import Requirement, selector_from_match

Pod = Mapping[str, Any]
Phase = str  # "Not Injected", "Injected", or Chaos Mesh's "Not Injected/Wait", "Injected/Wait"
NOT_INJECTED = "Not Injected"
INJECTED = "Injected"
RUN, STOP = "Run", "Stop"
PAUSE_ANNOTATION = "experiment.chaos-mesh.org/pause"
INJECT_ANNOTATION = "chaos-mesh.org/inject"
MAX_EVENTS = 100  # pkg/config/controller.go MaxEvents default
MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")


class NoPodSelected(LookupError):
    """Nothing matches the selector: Chaos Mesh's `ErrNoPodSelected`, an event, no records."""


class SelectorError(ValueError):
    """The selector cannot be evaluated (a named node that does not exist, a bad phase)."""


class UnsupportedChaos(ValueError):
    """A fault Chaos Mesh would inject but the sandbox does not emulate; the message says which."""


class InvalidChaos(ValueError):
    """A spec Chaos Mesh itself fails to apply (its message is Chaos Mesh's)."""


# ---- selection: pkg/selector/pod/selector.go, pkg/selector/generic/mode.go ----


def select_pods(
    selector: Mapping[str, Any],
    mode: str,
    value: str | None,
    pods: Sequence[Pod],
    namespaces: Sequence[Mapping[str, Any]],
    rng: random.Random,
    *,
    nodes: Sequence[Mapping[str, Any]] = (),
    enable_filter_namespace: bool = False,
) -> list[Pod]:
    """The pods a PodSelector picks, as `SelectAndFilterPods` picks them.

    Every matching pod counts, whatever its phase or deletion: Chaos Mesh filters
    nothing else (only `podPhaseSelectors` look at the phase). `selector.pods`, when
    given, replaces every other selector. Candidates are in the API's list order
    (per `selector.namespaces` entry, by name), then `mode` picks among them in the
    order its random draws give. `namespaces` (Namespace objects) matter only with
    `enable_filter_namespace` (the controller's `--enable-filter-namespace`, off by
    default): then only namespaces annotated `chaos-mesh.org/inject: enabled` count.

    >>> pods = [_example_pod("a", app="web"), _example_pod("b", app="web"), _example_pod("c")]
    >>> [p["metadata"]["name"] for p in select_pods(
    ...     {"namespaces": ["default"], "labelSelectors": {"app": "web"}},
    ...     "all", None, pods, [], random.Random(1))]
    ['a', 'b']
    """
    allowed = _allowed_namespaces(namespaces) if enable_filter_namespace else None
    if selector.get("pods"):
        candidates = _specified_pods(selector["pods"], pods, allowed)
    else:
        candidates = _matching_pods(selector, pods, nodes, allowed)
    if not candidates:
        raise NoPodSelected("no pod is selected")
    return [candidates[index] for index in filter_indexes(mode, value, len(candidates), rng)]


def filter_indexes(mode: str, value: str | None, count: int, rng: random.Random) -> list[int]:
    """`FilterObjectsByMode`: which of `count` candidates, in draw order.

    fixed-percent takes ceil(count * value / 100); random-max-percent draws a percentage
    in [0, value] first, so it may take none.

    >>> filter_indexes("fixed-percent", "50", 3, random.Random(0)).__len__()
    2
    >>> filter_indexes("all", None, 3, random.Random(0))
    [0, 1, 2]
    """
    if count == 0:
        raise SelectorError("cannot generate objects from empty list")
    text = value or ""
    if mode == "one":
        return [rng.randrange(count)]
    if mode == "all":
        return list(range(count))
    if mode not in MODES:
        raise SelectorError(f"mode {mode} not supported")
    number = _atoi(text)
    if number == 0 or (mode == "fixed" and number < 0):
        raise SelectorError("cannot select any object as value below or equal 0")
    if mode == "fixed":
        return _random_fixed_indexes(count, min(number, count), rng)
    if not 0 < number <= 100:
        raise SelectorError(f"fixed percentage value of {number} is invalid, Must be (0,100]")
    percentage = number if mode == "fixed-percent" else rng.randrange(number + 1)
    return _random_fixed_indexes(count, math.ceil(count * percentage / 100), rng)


def _random_fixed_indexes(count: int, wanted: int, rng: random.Random) -> list[int]:
    """`RandomFixedIndexes(0, count, wanted)`: distinct draws, all in order when wanted > count."""
    if wanted > count:
        return list(range(count))
    chosen: list[int] = []
    while len(chosen) < wanted:
        index = rng.randrange(count)
        if index not in chosen:
            chosen.append(index)
    return chosen


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise SelectorError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _allowed_namespaces(namespaces: Sequence[Mapping[str, Any]]) -> set[str]:
    return {
        ns["metadata"]["name"]
        for ns in namespaces
        if (ns["metadata"].get("annotations") or {}).get(INJECT_ANNOTATION) == "enabled"
    }


def _specified_pods(
    wanted: Mapping[str, Sequence[str]], pods: Sequence[Pod], allowed: set[str] | None
) -> list[Pod]:
    """`selectSpecifiedPods`: the named pods that exist, by namespace (sorted), then as listed."""
    by_key = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p for p in pods}
    found = []
    for namespace in sorted(wanted):
        if allowed is not None and namespace not in allowed:
            continue
        for name in wanted[namespace]:
            pod = by_key.get((namespace, name))
            if pod is not None:
                found.append(pod)
    return found


def _matching_pods(
    selector: Mapping[str, Any],
    pods: Sequence[Pod],
    nodes: Sequence[Mapping[str, Any]],
    allowed: set[str] | None,
) -> list[Pod]:
    """`listPods` + the selector chain (label, namespace, field, annotation, node, phase)."""
    ordered = sorted(pods, key=_list_order)
    wanted_namespaces = list(selector.get("namespaces") or [])
    if wanted_namespaces:
        listed = [
            pod
            for namespace in wanted_namespaces
            if allowed is None or namespace in allowed
            for pod in ordered
            if pod["metadata"].get("namespace") == namespace
        ]
    else:
        listed = list(ordered)
    labels = selector_from_match(
        {
            "matchLabels": selector.get("labelSelectors") or {},
            "matchExpressions": selector.get("expressionSelectors") or [],
        }
    )
    annotations = selector.get("annotationSelectors") or {}
    fields = selector.get("fieldSelectors") or {}
    node_names = _node_names(selector, nodes)
    include, exclude = _phase_requirements(selector.get("podPhaseSelectors") or [])

    def matches(pod: Pod) -> bool:
        metadata = pod["metadata"]
        pod_annotations = metadata.get("annotations") or {}
        phase = (pod.get("status") or {}).get("phase", "")
        return (
            (labels is None or labels.matches(metadata.get("labels")))
            and all(pod_annotations.get(k) == v for k, v in annotations.items())
            and all(_pod_field(pod, k) == v for k, v in fields.items())
            and (node_names is None or (pod.get("spec") or {}).get("nodeName") in node_names)
            and (not include or any(r.matches({phase: ""}) for r in include))
            and all(r.matches({phase: ""}) for r in exclude)
        )

    return [pod for pod in listed if matches(pod)]


def _list_order(pod: Pod) -> tuple[str, str]:
    return pod["metadata"].get("namespace", ""), pod["metadata"]["name"]


def _node_names(selector: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> set[str] | None:
    """`newNodeSelector`: named nodes (each must exist) plus nodes matching nodeSelectors."""
    named, labelled = selector.get("nodes") or [], selector.get("nodeSelectors") or {}
    if not named and not labelled:
        return None
    known = {node["metadata"]["name"]: node for node in nodes}
    names: set[str] = set()
    for name in named:
        if name not in known:
            raise SelectorError(f'nodes "{name}" not found')
        names.add(name)
    for name, node in known.items():
        node_labels = node["metadata"].get("labels") or {}
        if labelled and all(node_labels.get(k) == v for k, v in labelled.items()):
            names.add(name)
    return names


def _phase_requirements(
    phases: Sequence[str],
) -> tuple[list[Requirement], list[Requirement]]:
    """`newPhaseSelector`: "Running" includes, "!Failed" excludes; nothing else parses."""
    include, exclude = [], []
    for entry in phases:
        text = entry.strip()
        if re.fullmatch(r"![A-Za-z]+", text):
            exclude.append(Requirement(text[1:], "!"))
        elif re.fullmatch(r"[A-Za-z]+", text):
            include.append(Requirement(text, "exists"))
        else:
            raise SelectorError(f"unsupported pod phase selector: {entry}")
    return include, exclude


def _pod_field(pod: Pod, key: str) -> str:
    """`toPodSelectableFields` of pkg/selector/generic/field/selector.go."""
    spec, status, metadata = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    pod_ips = status.get("podIPs") or []
    values = {
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.schedulerName": spec.get("schedulerName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.phase": status.get("phase", ""),
        "status.podIP": pod_ips[0].get("ip", "") if pod_ips else "",
        "status.nominatedNodeName": status.get("nominatedNodeName", ""),
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
    }
    return str(values.get(key, ""))


def pod_record_id(pod: Pod) -> str:
    """A pod's record id, `types.NamespacedName.String()`: "<namespace>/<name>"."""
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def container_record_ids(pod: Pod, container_names: Sequence[str] = ()) -> list[str]:
    """DNSChaos selects containers (pkg/selector/container): "<ns>/<pod>/<container>",
    the first container when no names are given."""
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    chosen = [n for n in containers if n in container_names] if container_names else containers[:1]
    return [f"{pod_record_id(pod)}/{name}" for name in chosen]


# ---- faults: controllers/chaosimpl/networkchaos/{trafficcontrol,partition}/impl.go ----


def network_faults(
    chaos: Mapping[str, Any],
    selected: Sequence[PodEndpoint],
    targets: Sequence[PodEndpoint],
    external: Sequence[str],
) -> list[TrafficFault]:
    """One `TrafficFault` per selected pod (its record), on the packets Chaos Mesh touches.

    `targets` are the pods `spec.target` selects; `external` is `spec.externalTargets`
    resolved to addresses by the caller. Direction `to` is the pod's packets toward
    the targets; `from` the packets the targets send to the pod (Chaos Mesh puts that
    tc on the target pods' egress, or the partition's drop on the pod's INPUT);
    `both` both. No target and no external target means every peer.

    >>> pod = PodEndpoint("ns", "p", "127.0.2.5", "unified/x/podu", 2)
    >>> chaos = {"metadata": {"namespace": "ns", "name": "c", "uid": "u"},
    ...          "spec": {"action": "partition", "direction": "both"}}
    >>> [(f.key, [p.towards_source for p in f.paths]) for f in network_faults(chaos, [pod], [], [])]
    [('ns/c/u/ns/p', [False, True])]
    """
    spec = chaos.get("spec") or {}
    action = spec.get("action")
    direction = spec.get("direction") or "to"
    peers = tuple(target.ip for target in targets) + tuple(external)
    if action == "partition":
        kind: Literal["partition", "netem"] = "partition"
        params = NetemParams()
    elif action in ("netem", "delay", "loss", "duplicate", "corrupt"):
        kind, params = "netem", _netem_params(spec)
    elif action == "bandwidth":
        kind, params = "netem", _bandwidth_params(spec)
    else:
        raise InvalidChaos(f"unknown action: action: {action}")
    faults = []
    for pod in selected:
        paths = []
        if direction in ("to", "both"):
            paths.append(PacketPath(pod, peers))
        if direction in ("from", "both"):
            paths.append(PacketPath(pod, peers, towards_source=True))
        key = f"{_chaos_key(chaos)}/{pod.namespace}/{pod.name}"
        faults.append(TrafficFault(key, kind, tuple(paths), params))
    return faults


def _netem_params(spec: Mapping[str, Any]) -> NetemParams:
    """`mergeNetem` (controllers/podnetworkchaos/controller.go): every netem spec present
    merges into one qdisc, whatever the action's name."""
    for name in ("duplicate", "corrupt"):
        if spec.get(name):
            raise UnsupportedChaos(f"NetworkChaos {name} is not emulated by the sandbox")
    delay, loss, rate = spec.get("delay"), spec.get("loss"), spec.get("rate")
    if delay and delay.get("reorder"):
        raise UnsupportedChaos("NetworkChaos delay.reorder is not emulated by the sandbox")
    if not (delay or loss or rate):
        raise InvalidChaos(
            "invalid spec for netem action, at least one is required from delay, loss, "
            "duplicate, corrupt"
        )
    params = NetemParams()
    if delay:
        params = replace(
            params,
            delay_seconds=_duration(delay.get("latency", "")),
            jitter_seconds=_duration(delay.get("jitter") or "0ms"),
            delay_correlation=_percent(delay.get("correlation") or "0"),
        )
    if loss:
        params = replace(
            params,
            loss=_percent(loss.get("loss", "")),
            loss_correlation=_percent(loss.get("correlation") or "0"),
        )
    if rate:
        params = replace(params, rate_bytes_per_second=_rate(rate.get("rate", "")))
    return params


def _bandwidth_params(spec: Mapping[str, Any]) -> NetemParams:
    """`FromBandwidth`: tbf rate, limit and buffer (peakrate/minburst are not emulated)."""
    bandwidth = spec.get("bandwidth")
    if not bandwidth:
        raise InvalidChaos("bandwidth action needs spec.bandwidth")
    if bandwidth.get("peakrate") and bandwidth.get("minburst"):
        raise UnsupportedChaos("NetworkChaos bandwidth.peakrate is not emulated by the sandbox")
    return NetemParams(
        rate_bytes_per_second=_rate(bandwidth.get("rate", "")),
        buffer_bytes=int(bandwidth.get("buffer", 0)),
        limit_bytes=int(bandwidth.get("limit", 0)),
    )


def dns_faults(chaos: Mapping[str, Any], selected: Sequence[PodEndpoint]) -> list[DnsFault]:
    """One `DnsFault` for a DNSChaos: its action and patterns for the selected pods' IPs.

    >>> pod = PodEndpoint("ns", "p", "127.0.2.5", "unified/x/podu", 2)
    >>> chaos = {"metadata": {"namespace": "ns", "name": "d", "uid": "u"},
    ...          "spec": {"action": "error", "patterns": ["postgres.*"]}}
    >>> dns_faults(chaos, [pod])[0].client_ips
    ('127.0.2.5',)
    """
    spec = chaos.get("spec") or {}
    action = spec.get("action")
    if action not in ("error", "random"):
        raise InvalidChaos(f"unknown action: {action}")
    if not selected:
        return []
    return [
        DnsFault(
            _chaos_key(chaos),
            action,
            tuple(pod.ip for pod in selected),
            tuple(spec.get("patterns") or ()),
        )
    ]


def _chaos_key(chaos: Mapping[str, Any]) -> str:
    metadata = chaos.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}/{metadata.get('uid', '')}"


def _duration(text: str) -> float:
    try:
        return parse_go_duration(text)
    except DurationError as error:
        raise InvalidChaos(str(error)) from error


def _percent(text: str) -> float:
    try:
        return parse_percent(text)
    except NetemSpecError as error:
        raise InvalidChaos(str(error)) from error


def _rate(text: str) -> float:
    """A NetworkChaos rate: Chaos Mesh's daemon hands the string to tc (`tbf rate 1mbps`,
    pkg/chaosdaemon/tc_server.go), so tc's units: "1mbps" is 10^6 bytes per second."""
    try:
        return parse_rate(text)
    except NetemSpecError as error:
        raise InvalidChaos(str(error)) from error


# ---- time: zz_generated.chaosmesh.go DurationExceeded, controllers/common/desiredphase ----


def expires_at(chaos: Mapping[str, Any], started_at: datetime) -> datetime | None:
    """When `spec.duration` runs out, counted from `started_at` (Chaos Mesh: creation time).

    >>> start = parse_time("2026-01-01T00:00:00Z")
    >>> rfc3339(expires_at({"spec": {"duration": "90s"}}, start))
    '2026-01-01T00:01:30Z'
    >>> expires_at({"spec": {}}, start) is None
    True
    """
    duration = (chaos.get("spec") or {}).get("duration")
    if not duration:
        return None
    return started_at + timedelta(seconds=_duration(str(duration)))


def desired_phase(chaos: Mapping[str, Any], now: datetime) -> str:
    """`CalcDesiredPhase`: Stop once deleted, expired or paused; else Run.

    Expired means creation + duration is strictly before `now` (`stopTime.Before(now)`).
    """
    metadata = chaos.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return STOP
    created = metadata.get("creationTimestamp")
    stop = expires_at(chaos, parse_time(created)) if created else None
    if stop is not None and stop < now:
        return STOP
    if is_paused(chaos):
        return STOP
    return RUN


def is_paused(chaos: Mapping[str, Any]) -> bool:
    annotations = (chaos.get("metadata") or {}).get("annotations") or {}
    return annotations.get(PAUSE_ANNOTATION) == "true"


# ---- status: controllers/common/records, controllers/common/condition ----


@dataclass(frozen=True)
class RecordEvent:
    type: Literal["Succeeded", "Failed"]
    operation: Literal["Apply", "Recover"]
    timestamp: datetime
    message: str = ""


@dataclass(frozen=True)
class Record:
    """One `status.experiment.containerRecords[]` entry."""

    id: str
    selector_key: str = "."
    phase: Phase = NOT_INJECTED
    injected_count: int = 0
    recovered_count: int = 0
    events: tuple[RecordEvent, ...] = ()


def record_operation(record: Record, desired: str) -> Literal["apply", "recover", ""]:
    """The records controller's cycle: Not Injected -> Injected -> Not Injected.

    A phase "X/..." (Chaos Mesh's wait phases) must go on before it goes back.
    """
    if desired == RUN and record.phase != INJECTED:
        return "apply" if record.phase.startswith(NOT_INJECTED) else "recover"
    if desired == STOP and record.phase != NOT_INJECTED:
        return "apply" if record.phase.startswith(NOT_INJECTED) else "recover"
    return ""


def record_result(
    record: Record,
    operation: Literal["apply", "recover"],
    phase: Phase,
    now: datetime,
    error: str = "",
) -> Record:
    """The record after Apply/Recover returned `phase` (and `error`), as the records
    controller counts it: a success event and count when it reached Injected (apply) or
    Not Injected (recover); a Failed event on error; at most MAX_EVENTS kept."""
    name: Literal["Apply", "Recover"] = "Apply" if operation == "apply" else "Recover"
    if error:
        event: RecordEvent | None = RecordEvent("Failed", name, now, error)
    elif phase == (INJECTED if operation == "apply" else NOT_INJECTED):
        event = RecordEvent("Succeeded", name, now)
    else:
        event = None
    counted = event is not None and not error
    events = record.events if event is None else (*record.events, event)[-MAX_EVENTS:]
    return replace(
        record,
        phase=phase,
        injected_count=record.injected_count + (counted and operation == "apply"),
        recovered_count=record.recovered_count + (counted and operation == "recover"),
        events=events,
    )


def conditions(records: Sequence[Record] | None, paused: bool) -> list[dict[str, str]]:
    """`diffConditions`: Selected once records exist; All* over every record; Paused.

    (Upstream iterates a Go map, so its order varies; this order is fixed.)

    >>> [c["status"] for c in conditions([Record("ns/p", phase=INJECTED)], paused=False)]
    ['True', 'True', 'False', 'False']
    """
    have = records is not None
    every_injected = have and all(r.phase == INJECTED for r in records or ())
    every_recovered = have and all(r.phase == NOT_INJECTED for r in records or ())
    flags = (
        ("Selected", have),
        ("AllInjected", every_injected),
        ("AllRecovered", every_recovered),
        ("Paused", paused),
    )
    return [{"type": kind, "status": "True" if value else "False"} for kind, value in flags]


def chaos_status(
    records: Sequence[Record] | None,
    desired: str,
    paused: bool,
    instances: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The `status` Chaos Mesh's controllers leave on the object.

    `records` None means nothing was selected yet (no `containerRecords`, Selected
    False). `instances` is NetworkChaos's `status.instances` (record id -> the
    PodNetworkChaos generation it waits for); the sandbox has no PodNetworkChaos, so
    the controller passes 1 per injected pod, or None for DNSChaos.

    >>> at = parse_time("2026-01-01T00:00:00Z")
    >>> rec = Record("ns/p", ".", INJECTED, 1, 0, (RecordEvent("Succeeded", "Apply", at),))
    >>> chaos_status([rec], RUN, False)["experiment"]["containerRecords"][0]["events"]
    [{'type': 'Succeeded', 'operation': 'Apply', 'timestamp': '2026-01-01T00:00:00Z'}]
    """
    experiment: dict[str, Any] = {"desiredPhase": desired}
    if records:
        experiment["containerRecords"] = [_record_json(record) for record in records]
    status: dict[str, Any] = {"conditions": conditions(records, paused), "experiment": experiment}
    if instances:
        status["instances"] = dict(instances)
    return status


def _record_json(record: Record) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "selectorKey": record.selector_key,
        "phase": record.phase,
        "injectedCount": record.injected_count,
        "recoveredCount": record.recovered_count,
    }
    if record.events:
        body["events"] = [
            {
                "type": event.type,
                "operation": event.operation,
                **({"message": event.message} if event.message else {}),
                "timestamp": rfc3339(event.timestamp),
            }
            for event in record.events
        ]
    return body


def records_from_status(status: Mapping[str, Any] | None) -> list[Record] | None:
    """The records an object's status carries (None: not selected yet)."""
    raw = ((status or {}).get("experiment") or {}).get("containerRecords")
    if raw is None:
        return None
    return [
        Record(
            entry["id"],
            entry.get("selectorKey", "."),
            entry.get("phase", NOT_INJECTED),
            int(entry.get("injectedCount", 0)),
            int(entry.get("recoveredCount", 0)),
            tuple(
                RecordEvent(
                    event["type"],
                    event["operation"],
                    parse_time(event["timestamp"]),
                    event.get("message", ""),
                )
                for event in entry.get("events") or []
            ),
        )
        for entry in raw
    ]


def _example_pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}
