"""Locust under an experiment: started as a background process, stopped and judged at the end.

`start_load` launches the profile's users against the ingress in their own process
(never imported here: Locust's gevent patching would break the Kubernetes and AWS
clients). The `load` control marks every method action as a fault window in the
load's timeline, so errors land in the baseline, fault or recovery window they
belong to. `stop_load` ends the run and returns the SLO verdicts; `load_slos_met`
fails the experiment naming each violated SLO and its observed value.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from resilience.chaos.chaosmesh_spec import go_duration_seconds
from resilience.errors import InvalidInputError
from resilience.load.certify import PROFILES, plan_for
from resilience.load.profile import Profile, load_profile, resolve_profile
from resilience.load.requests import span_stats
from resilience.load.runner import LoadResult, LoadRun
from resilience.slo.latency import LatencyFigures, Reference, latency_verdict
from resilience.slo.objectives import SloKind, Window, WindowStats, percentile, select

__all__ = ["load_latency_as_injected", "load_slos_met", "start_load", "stop_load"]
REPORTS_ENV = "HARMONYFLOW_REPORTS_DIR"
EXTERNAL = "external"  # a game day runs one load across all its experiments and judges it
FLOWING_REQUESTS = 20
FLOWING_TIMEOUT = 60.0


@dataclass
class ActiveLoad:
    run: LoadRun
    profile: Profile
    result: LoadResult | None = None


class _Loads:
    """The runs of this process, by name (one Chaos Toolkit run is one process)."""

    active: dict[str, ActiveLoad] = {}  # noqa: RUF012 - process-wide on purpose
    external = False
    # the first delay hold's p50 shift per (load, dependency): later holds must scale with it
    latency_references: dict[tuple[str, str], Reference] = {}  # noqa: RUF012


def active(name: str = "load") -> ActiveLoad | None:
    return _Loads.active.get(name)


def start_load(
    base_url: str,
    profile: str = "chaos",
    name: str = "load",
    max_seconds: float = 900.0,
    baseline_seconds: float = 10.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start Locust with `profile` (loadtests/profiles) against `base_url`, in the background.

    Returns once requests have flowed for `baseline_seconds` (the baseline window; at
    most 60 s for the first ones), with where its timeline and reports go.
    Profile `external` starts nothing: the caller (a game day) runs and judges the load.
    Bounded by `max_seconds`; the rollback `stop_load` ends it sooner. Fails if no
    request got through.
    """
    if profile == EXTERNAL:
        _Loads.external = True
        return {"name": name, "profile": EXTERNAL, "note": "load is run and judged by the caller"}
    chosen = load_profile(resolve_profile(profile, PROFILES))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out_dir = Path(os.environ.get(REPORTS_ENV) or "reports") / f"load-{name}-{stamp}"
    plan = plan_for(chosen, host=base_url, out_dir=out_dir, run_time=float(max_seconds))
    run = LoadRun(plan).start()
    _Loads.active[name] = ActiveLoad(run, chosen)
    if not run.wait_for_requests(FLOWING_REQUESTS, FLOWING_TIMEOUT):
        raise ActivityFailed(
            f"load {name}: no request got through to {base_url}; see {run.result().log}"
        )
    time.sleep(float(baseline_seconds))  # the baseline the faults are compared with
    return {"name": name, "profile": profile, "out_dir": str(plan.out_dir)}


def stop_load(
    name: str = "load",
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop the load (safe when it is not running) and return its SLO verdicts per window."""
    load = active(name)
    if load is None:
        return {"name": name, "running": False}
    if load.result is None:
        load.result = load.run.stop()
    verdicts = load.result.evaluate(load.profile.slos)
    return {
        "name": name,
        "verdicts": [v.line() for v in verdicts],
        "passed": all(v.passed for v in verdicts),
        "out_dir": str(load.run.plan.out_dir),
    }


def load_slos_met(
    name: str = "load",
    recovery_seconds: float = 10.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> bool:
    """Observe `recovery_seconds` more, then stop the load and judge it: True when every
    SLO of its profile held (baseline, fault and recovery windows); otherwise fails
    naming each violated SLO with the value observed."""
    if active(name) is None and _Loads.external:
        return True
    if active(name) is not None:
        time.sleep(float(recovery_seconds))  # the recovery window, after the last fault
    outcome = stop_load(name)
    if not outcome.get("verdicts"):
        raise ActivityFailed(f"load {name} was never started")
    if not outcome["passed"]:
        failed = [line for line in outcome["verdicts"] if line.startswith("FAIL")]
        raise ActivityFailed(f"load {name}: " + "; ".join(failed))
    return True


def load_latency_as_injected(
    latency: str,
    seconds: float,
    jitter: str = "0ms",
    dependency: str = "",
    slo_profile: str = "release",
    slo: str = "rest-latency-p95",
    name: str = "load",
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> str:
    """The load's latency over the last `seconds` (the fault's hold: call it before the
    fault is removed) against its baseline window. True when the latency SLO `slo` of
    profile `slo_profile` (loadtests/profiles) held, or the p50 shift is as injected: the
    first hold of a `dependency` must show at least one round trip of `latency` ("50ms",
    as Chaos Mesh writes it), a later one must cost in proportion to the first
    (`resilience.slo.latency`). Otherwise fails naming the figures. Under a game day's
    load (`external`) the caller judges: the report shows each delay's p50 next to the
    injected latency. Returns the verdict's line (the run's journal keeps it)."""
    if active(name) is None and _Loads.external:
        return "judged by the game day's report"
    load = active(name)
    if load is None:
        raise ActivityFailed(f"load {name} was never started")
    try:
        objective = load_profile(resolve_profile(slo_profile, PROFILES)).slo(slo)
    except InvalidInputError as error:
        raise ActivityFailed(str(error)) from None
    if objective.kind is not SloKind.LATENCY:
        raise ActivityFailed(f"SLO {slo} of {slo_profile} is not a latency SLO")
    result = load.run.result()
    now = time.time()
    baseline = result.windows().get(Window.BASELINE)
    during = span_stats(result.timeline, now - float(seconds), now)

    def at(stats: WindowStats | None, q: float) -> float | None:
        chosen = None if stats is None else select(stats, objective.requests)
        return None if chosen is None else percentile(chosen.latency_ms, q)

    figures = LatencyFigures(at(baseline, 50), at(during, 50), at(during, objective.percentile))
    injected_ms = 1000 * go_duration_seconds(latency)
    verdict = latency_verdict(
        figures,
        injected_ms,
        1000 * go_duration_seconds(jitter),
        objective.limit,
        objective.percentile,
        _Loads.latency_references.get((name, dependency)),
    )
    if verdict.shift_ms is not None and (name, dependency) not in _Loads.latency_references:
        _Loads.latency_references[(name, dependency)] = Reference(verdict.shift_ms, injected_ms)
    if not verdict.held:
        raise ActivityFailed(f"load {name}: {verdict.line}")
    return f"load {name} ({dependency or 'dependency'}): {verdict.line}"


def mark(phase: str, fault: str) -> None:
    """Mark a fault window's start or end in every active load's timeline."""
    for load in _Loads.active.values():
        if load.result is None:
            if phase == "start":
                load.run.mark_fault_start(fault)
            else:
                load.run.mark_fault_end(fault)


def stop_all() -> None:
    for name in list(_Loads.active):
        stop_load(name)
