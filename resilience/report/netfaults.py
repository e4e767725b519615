"""Network and DNS faults of a step, read from its chaos journal, and what the load saw (pure).

A Chaos Mesh fault is not its action: `inject_network_fault` only creates the object,
and the traffic changes once Chaos Mesh reports `AllInjected`; it changes back once the
object is deleted (`remove_chaos`, in the method or a rollback, records when each object
was gone) or its `duration` runs out, whichever comes first. So a network fault's band
runs from the end of the `chaos_mesh_condition_seconds` probe that saw it AllInjected
(the create's end when no probe waited) until then. Its label names the action and its
parameters as the object has them ("delay 50ms ±5ms to harmonyflow-db.example").

What the load saw is the day's own per-window statistics (`resilience.load.requests.
window_stats`, the band as the fault mark) against the step's baseline: p50 and p95 of
successful REST requests and the error ratio (`report.windows.errors_per_window`).

    >>> fault = NetworkFault("delay-db", "NetworkChaos", "d", "delay", "delay 50ms to db",
    ...                      10.0, 40.0, latency_ms=50.0)
    >>> before = WindowLoad(200, 0, 12.0, 30.0)
    >>> band_summary(fault, BandLoad(before, WindowLoad(180, 0, 63.0, 95.0), 0)).split(", ")
    ['delay 50ms to db (30 s): p50 12 → 63 ms (+51 ms; 50 ms injected)', 'p95 30 → 95 ms', \
'errors 0.00% → 0.00% (0 of 180)']
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import InvalidActivity

from resilience.chaos.chaosmesh_spec import go_duration_seconds
from resilience.report.windows import errors_per_window
from resilience.slo.objectives import RequestSelector, Window, WindowStats, percentile, select

INJECTS = frozenset({"inject_network_fault", "inject_dns_fault"})
REMOVE = "remove_chaos"
CONDITION_PROBE = "chaos_mesh_condition_seconds"
# the requests whose latency is compared: the REST calls the latency SLOs judge
# (loadtests/profiles/release.yaml's rest-latency-p95)
REST = RequestSelector(types=frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}))
RECONNECTS = RequestSelector(types=frozenset({"WSRECONN"}))


@dataclass(frozen=True)
class NetworkFault:
    """One Chaos Mesh object of a step, as a band: when its fault was in place."""

    activity: str  # the experiment's action that created it
    kind: str  # NetworkChaos | DNSChaos
    name: str  # the object's
    action: str  # delay, loss, partition, bandwidth; error, random
    label: str
    start: float  # AllInjected
    end: float  # deleted, or its duration over
    latency_ms: float | None = None  # delay: the injected latency
    jitter_ms: float | None = None
    loss_percent: float | None = None


@dataclass(frozen=True)
class WindowLoad:
    """The load in one window: REST latency of successes, errors over every request."""

    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def error_ratio(self) -> float | None:
        return self.failures / self.requests if self.requests else None


@dataclass(frozen=True)
class BandLoad:
    baseline: WindowLoad | None  # the step's baseline window, before its fault
    during: WindowLoad | None  # the band
    reconnects: int = 0  # WebSocket reconnects during the band: the load's only retries


# ---- the bands, from the journal ----


def network_faults(journal: Mapping[str, Any], until: float) -> list[NetworkFault]:
    """Every Chaos Mesh object the journal's method created, with its fault window; an
    object never deleted nor expired lasts `until` (the step's end)."""
    entries = [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]
    faults = []
    for index, entry in enumerate(entries):
        output = entry.get("output")
        if _func(entry) not in INJECTS or entry.get("status") != "succeeded":
            continue
        if not isinstance(output, Mapping) or not isinstance(output.get("spec"), Mapping):
            continue
        created = journal_time(entry.get("end"))
        if created is None:
            continue
        fault = _fault(entry, output, created, entries[index + 1 :], until)
        if fault is not None:
            faults.append(fault)
    return faults


def _fault(
    entry: Mapping[str, Any],
    output: Mapping[str, Any],
    created: float,
    later: Sequence[Mapping[str, Any]],
    until: float,
) -> NetworkFault | None:
    kind, name, spec = str(output.get("kind")), str(output.get("name")), output["spec"]
    injected = _injected_at(name, later) or created
    end = _deleted_at(kind, name, later)
    end = until if end is None else end
    if spec.get("duration"):
        with contextlib.suppress(InvalidActivity):  # the CRD's schema refuses a bad one
            end = min(end, created + go_duration_seconds(str(spec["duration"])))
    delay = spec.get("delay") or {}
    return NetworkFault(
        activity=str((entry.get("activity") or {}).get("name")),
        kind=kind,
        name=name,
        action=str(spec.get("action")),
        label=fault_label(kind, spec),
        start=min(injected, end),
        end=end,
        latency_ms=_ms(delay.get("latency")) if spec.get("action") == "delay" else None,
        jitter_ms=_ms(delay.get("jitter") or "0") if spec.get("action") == "delay" else None,
        loss_percent=_number((spec.get("loss") or {}).get("loss"))
        if spec.get("action") == "loss"
        else None,
    )


def _injected_at(name: str, later: Sequence[Mapping[str, Any]]) -> float | None:
    """The end of the first probe that saw the object AllInjected (its arguments may be
    `${...}` templates: the journal keeps them unsubstituted, so those match too)."""
    for entry in later:
        if _func(entry) != CONDITION_PROBE or entry.get("status") != "succeeded":
            continue
        arguments = _arguments(entry)
        condition = str(arguments.get("condition_type", "AllInjected"))
        if _names(arguments.get("name"), name) and _names(condition, "AllInjected"):
            return journal_time(entry.get("end"))
    return None


def _deleted_at(kind: str, name: str, later: Sequence[Mapping[str, Any]]) -> float | None:
    for entry in later:
        if _func(entry) != REMOVE or entry.get("status") != "succeeded":
            continue
        output = entry.get("output")
        for gone in (output.get("deleted") or []) if isinstance(output, Mapping) else []:
            if gone.get("kind") == kind and gone.get("name") == name:
                return float(gone["gone_at"])
    return None


def fault_label(kind: str, spec: Mapping[str, Any]) -> str:
    """The fault in a few words, as the object's spec says it.

    >>> fault_label("NetworkChaos", {"action": "delay", "direction": "to",
    ...   "delay": {"latency": "50ms", "jitter": "5ms"}, "externalTargets": ["db.example"]})
    'delay 50ms ±5ms to db.example'
    >>> fault_label("DNSChaos", {"action": "error", "patterns": ["db.example"]})
    'DNS error for db.example'
    """
    action = str(spec.get("action"))
    if kind == "DNSChaos":
        return f"DNS {action} for {', '.join(str(p) for p in spec.get('patterns') or [])}"
    what = action
    if action == "delay":
        delay = spec.get("delay") or {}
        what = f"delay {delay.get('latency')}"
        if str(delay.get("jitter") or "0") not in ("0", "0ms", "0s"):
            what += f" ±{delay['jitter']}"
        if str(delay.get("correlation") or "0") != "0":
            what += f" (correlation {delay['correlation']}%)"
    elif action == "loss":
        what = f"loss {(spec.get('loss') or {}).get('loss')}%"
    elif action == "bandwidth":
        what = f"bandwidth {(spec.get('bandwidth') or {}).get('rate')}"
    return f"{what} {_towards(spec)}"


def _towards(spec: Mapping[str, Any]) -> str:
    peers = [str(t) for t in spec.get("externalTargets") or []]
    target = spec.get("target")
    if isinstance(target, Mapping):
        labels = ((target.get("selector") or {}).get("labelSelectors")) or {}
        peers.append(" ".join(["pods", ",".join(f"{k}={v}" for k, v in labels.items())]).strip())
    if not peers:
        return "on all traffic"
    preposition = {"to": "to", "from": "from", "both": "to and from"}.get(
        str(spec.get("direction") or "to"), "to"
    )
    return f"{preposition} {', '.join(peers)}"


# ---- what the load saw ----


def window_load(stats: WindowStats | None) -> WindowLoad | None:
    """One window's load: errors as the step's error table counts them (LEDGER checks
    left out), latency percentiles of the successful REST requests."""
    if stats is None:
        return None
    errors = errors_per_window({Window.FAULT: stats})["fault"]
    histogram = select(stats, REST).latency_ms
    return WindowLoad(
        errors.requests, errors.failures, percentile(histogram, 50), percentile(histogram, 95)
    )


def band_load(baseline: WindowStats | None, during: WindowStats | None) -> BandLoad:
    reconnects = select(during, RECONNECTS).requests if during is not None else 0
    return BandLoad(window_load(baseline), window_load(during), reconnects)


def band_summary(fault: NetworkFault, load: BandLoad) -> str:
    """What the load saw during the band against the baseline, in one line: p50 and p95
    of successful REST requests and the error ratio; for a delay the p50's increase next
    to the injected latency, for a loss the WebSocket reconnects (the load's retries)."""
    head = f"{fault.label} ({fault.end - fault.start:.0f} s)"
    during = load.during
    if during is None or not during.requests:
        return f"{head}: no request during the band"
    before = load.baseline or WindowLoad(0, 0, None, None)
    p50 = f"p50 {_ms_text(before.p50_ms)} → {_ms_text(during.p50_ms)} ms"
    if fault.latency_ms is not None and before.p50_ms is not None and during.p50_ms is not None:
        p50 += f" ({during.p50_ms - before.p50_ms:+.0f} ms; {fault.latency_ms:g} ms injected)"
    p95 = f"p95 {_ms_text(before.p95_ms)} → {_ms_text(during.p95_ms)} ms"
    errors = (
        f"errors {_percent(before.error_ratio)} → {_percent(during.error_ratio)}"
        f" ({during.failures} of {during.requests})"
    )
    parts = [p50, p95, errors]
    if fault.action in ("loss", "partition"):
        parts.append(f"{load.reconnects} WebSocket reconnects")
    return f"{head}: {', '.join(parts)}"


# ---- helpers ----


def _func(entry: Mapping[str, Any]) -> Any:
    return ((entry.get("activity") or {}).get("provider") or {}).get("func")


def _arguments(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    arguments = ((entry.get("activity") or {}).get("provider") or {}).get("arguments")
    return arguments if isinstance(arguments, Mapping) else {}


def _names(argument: Any, expected: str) -> bool:
    """An argument names `expected`, or is a template the journal kept unsubstituted."""
    text = str(argument)
    return text == expected or text.startswith("${")


def journal_time(text: Any) -> float | None:
    """A journal's ISO 8601 time in Unix seconds (UTC when it names no zone); None if not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _ms(text: Any) -> float | None:
    try:
        return round(1000 * go_duration_seconds(str(text)), 3)
    except InvalidActivity:
        return None


def _number(value: Any) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def _ms_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:.2f}%"
