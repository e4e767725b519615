"""Build a game day's report from its run directory: report.json, junit.xml, index.html.

Everything is recomputed from the stored files (see `record`): the record of the
steps, the chaos journals, the load timeline and the watch timeline. So
`resilience report RUN_ID` gives the same page as the game day did, and a report
can be rebuilt after the code that judges it improved. The last thing done is
scrubbing every text file of the run directory (`scrub`).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from resilience.chaos.verdict import failures
from resilience.errors import InvalidInputError
from resilience.load.profile import Profile, load_profile, resolve_profile, suite_profile_path
from resilience.load.requests import RequestTimeline, read_timeline, span_stats
from resilience.observe.codec import from_jsonable, load_jsonl
from resilience.observe.recovery import measure_recovery
from resilience.observe.timeline import Mark, State, Timeline
from resilience.paths import PROJECT_ROOT
from resilience.policy import IntendedPolicy
from resilience.report import findings as find
from resilience.report import record as files
from resilience.report import series
from resilience.report.alerts import AlertsCapture, read_alerts, step_alerts
from resilience.report.fisactions import fis_actions
from resilience.report.impact import client_impact
from resilience.report.junit import junit_xml
from resilience.report.netfaults import (
    INJECTS,
    REMOVE,
    NetworkFault,
    band_load,
    band_summary,
    journal_time,
    network_faults,
)
from resilience.report.page import render_page
from resilience.report.record import RunRecord, StepRecord
from resilience.report.score import FORMULA, StepScore, component, score
from resilience.report.scrub import run_secrets, scrub_tree
from resilience.report.series import Band
from resilience.report.svg import Panel, Series, render
from resilience.report.trends import compare, previous_report, trend_json
from resilience.report.windows import (
    StepWindows,
    errors_per_window,
    step_stats,
    step_windows,
)
from resilience.slo.objectives import Slo, SloKind, Window, select

FORMAT = "harmonyflow-gameday-report/v1"
LOAD_ACTIONS = {"start_load", "stop_load", "load_slos_met"}
DEFAULT_ERROR_BUDGET = 0.05
PROFILE_COPY = "profile.yaml"
REPO_PROFILES = PROJECT_ROOT / "loadtests" / "profiles"


@dataclass(frozen=True)
class RunData:
    """Everything read from a run directory."""

    run_dir: Path
    record: RunRecord
    policy: IntendedPolicy
    load: RequestTimeline
    watch: Timeline
    profile: Profile | None
    journals: Mapping[int, dict[str, Any]]
    alerts: AlertsCapture = field(default_factory=lambda: AlertsCapture(False))
    profiles_dir: Path = REPO_PROFILES  # where each step's suite SLOs are read


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path
    junit: Path
    report: dict[str, Any]


def read_run(run_dir: Path) -> RunData:
    record = files.read_record(run_dir)
    try:
        policy_data = json.loads((run_dir / files.POLICY).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"{run_dir / files.POLICY}: unreadable: {error}") from None
    policy = from_jsonable(IntendedPolicy, policy_data)
    observe = run_dir / files.OBSERVE
    watch = load_jsonl(observe) if observe.is_file() else Timeline()
    journals = {}
    for step in record.steps:
        if step.journal and (run_dir / step.journal).is_file():
            try:
                journals[step.index] = json.loads(
                    (run_dir / step.journal).read_text(encoding="utf-8")
                )
            except ValueError:
                continue
    return RunData(
        run_dir,
        record,
        policy,
        read_timeline(run_dir / files.LOAD_DIR / "timeline.jsonl"),
        watch,
        _profile(run_dir, record.load_profile),
        journals,
        read_alerts(run_dir),
    )


def _profile(run_dir: Path, name: str) -> Profile | None:
    copy = run_dir / files.LOAD_DIR / PROFILE_COPY
    try:
        return load_profile(copy if copy.is_file() else resolve_profile(name, REPO_PROFILES))
    except InvalidInputError:
        return None


def day_span(data: RunData) -> tuple[float, float]:
    record = data.record
    start = record.load_started or record.started
    end = (
        record.load_stopped
        or record.ended
        or max(
            [
                start,
                *(s.ended or 0.0 for s in record.steps),
                *(r.t + 1.0 for r in data.load.records),
            ]
        )
    )
    return start, max(start, end)


def fault_budget(slos: Sequence[Slo]) -> float:
    """The profile's fault-window error budget (the score's B)."""
    slo = fault_budget_slo(slos)
    return slo.limit if slo is not None and slo.kind is SloKind.ERROR_RATE else DEFAULT_ERROR_BUDGET


def fault_budget_slo(slos: Sequence[Slo]) -> Slo | None:
    """The SLO that budgets the fault window: an error ratio or a count of failures."""
    for slo in slos:
        if slo.window is Window.FAULT and slo.kind in (SloKind.ERROR_RATE, SloKind.FAILURES):
            return slo
    return None


def step_slos(experiment: str, day_slos: Sequence[Slo], profiles_dir: Path) -> list[Slo]:
    """The SLOs a step is judged by: the suite's for its fault (`suite-<experiment>.yaml`),
    so that a game day and `pytest -m resilience` hold one fault to one standard; the
    day's load profile for a fault no suite owns."""
    own = suite_profile_path(experiment, profiles_dir)
    return list(load_profile(own).slos) if own is not None else list(day_slos)


def step_score(
    entry: Mapping[str, Any], step: StepRecord, stats: Any, slos: Sequence[Slo]
) -> StepScore:
    """V, E and R of one step, E over the requests its fault budget counts."""
    budget_slo = fault_budget_slo(slos)
    fault = stats.get(Window.FAULT) if stats else None
    chosen = select(fault, budget_slo.requests) if budget_slo and fault is not None else None
    ratio = None
    if chosen is not None:
        ratio = chosen.failed / chosen.requests if chosen.requests else 0.0
    counted = budget_slo is not None and budget_slo.kind is SloKind.FAILURES
    return StepScore(
        entry["verdict"] == "PASS",
        ratio,
        fault_budget(slos),
        entry["time_to_recovery_s"],
        step.recovery_budget,
        failures=chosen.failed if chosen is not None and counted else None,
        max_failures=int(budget_slo.limit) if budget_slo is not None and counted else None,
    )


def journal_actions(journal: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """The fault actions of a journal's method, with their (start, end) in Unix time.
    Chaos Mesh's are not among them: creating or deleting its object is not its fault
    (`network_faults` has those, from AllInjected to deleted).

    >>> journal_actions({"run": [{"activity": {"type": "action", "name": "kill",
    ...   "provider": {"func": "kill_one_pod"}}, "start": "1970-01-01T00:00:10+00:00",
    ...   "end": "1970-01-01T00:00:12+00:00"}]})
    [('kill', 10.0, 12.0)]
    """
    actions = []
    for entry in journal.get("run") or []:
        activity = entry.get("activity") or {}
        func = (activity.get("provider") or {}).get("func")
        if activity.get("type") != "action" or func in LOAD_ACTIONS | INJECTS | {REMOVE}:
            continue
        start, end = journal_time(entry.get("start")), journal_time(entry.get("end"))
        if start is not None and end is not None:
            actions.append((str(activity.get("name")), start, end))
    return actions


def step_faults(journal: Mapping[str, Any], until: float) -> list[tuple[str, float, float]]:
    """Every fault of a step, in time order: its actions, and its network faults while
    they were in place (`until`: the step's end, for an object never deleted)."""
    faults = journal_actions(journal) + [
        (fault_name(f), f.start, f.end) for f in network_faults(journal, until)
    ]
    return sorted(faults, key=lambda fault: fault[1])


def fault_name(fault: NetworkFault) -> str:
    """`delay-database: delay 50ms ±5ms to db.example`: the action, then what it did."""
    return f"{fault.activity}: {fault.label}"


def experiment_figures(journal: Mapping[str, Any]) -> dict[str, float]:
    """Numbers the experiment's own probes measured (time to recovery, DB available...)."""
    figures = {}
    for entry in journal.get("run") or []:
        output = entry.get("output")
        name = str((entry.get("activity") or {}).get("name"))
        if isinstance(output, int | float) and not isinstance(output, bool):
            figures[name] = round(float(output), 3)
    return figures


def _span(step: StepRecord, start: float, end: float) -> dict[str, float]:
    """Where a band lies in its step: seconds from the step's start, and its length."""
    return {
        "start_offset_s": round(start - (step.started or start), 1),
        "seconds": round(end - start, 1),
    }


def _iso_seconds(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")


# ---- analysis ----


def analyse(data: RunData) -> dict[str, Any]:
    """The report as plain JSON data (pure over `data`)."""
    record = data.record
    start, end = day_span(data)
    states = data.watch.states()
    slos = list(data.profile.slos) if data.profile else []
    budget = fault_budget(slos)
    ran = [s for s in record.steps if s.started is not None and s.ended is not None]
    windows = dict(
        zip(
            [s.index for s in ran],
            step_windows([(s.started or 0.0, s.ended or 0.0) for s in ran], start, end),
            strict=True,
        )
    )
    steps = []
    scores = []
    for step in record.steps:
        own_slos = step_slos(step.experiment, slos, data.profiles_dir)
        step_window = windows.get(step.index)
        entry = _step(data, step, step_window, states, own_slos)
        steps.append(entry)
        if step.status != "skipped":
            stats = step_stats(data.load, step.name, step_window) if step_window else None
            scores.append(step_score(entry, step, stats, own_slos))
            entry["score_component"] = component(scores[-1])
    day_score = score(scores)
    passed = all(s["verdict"] in ("PASS", "SKIP") for s in steps) and not record.interrupted
    report: dict[str, Any] = {
        "format": FORMAT,
        "run_id": record.run_id,
        "plan": record.plan,
        "description": record.plan_description,
        "verdict": "INTERRUPTED" if record.interrupted else ("PASS" if passed else "FAIL"),
        "started": record.started,
        "started_at": _iso_seconds(record.started),
        "ended_at": _iso_seconds(record.ended),
        "duration_s": round((record.ended or end) - record.started, 1),
        "target": dict(record.target),
        "interrupted": record.interrupted,
        "stopped_at": record.stopped_at,
        "score": day_score,
        "score_formula": FORMULA,
        "error_budget": budget,
        "load_profile": record.load_profile,
        "steps": steps,
        "day": _day_load(data, start, end),
        "problems": list(record.problems),
        "recovered": list(record.recovered),
        "findings": [f for s in steps for f in s["findings"]],
        "alerts": {"collected": data.alerts.collected, "note": data.alerts.note},
        "artifacts": _artifacts(data.run_dir),
    }
    previous = previous_report(data.run_dir.parent, record.plan, record.run_id, record.started)
    report["trend"] = trend_json(compare(report, previous)) if previous else None
    return report


def _step(
    data: RunData,
    step: StepRecord,
    windows: StepWindows | None,
    states: Sequence[State],
    slos: Sequence[Slo],
) -> dict[str, Any]:
    journal = data.journals.get(step.index)
    journal_failures = failures(journal) if journal else []
    entry: dict[str, Any] = {
        "index": step.index,
        "name": step.name,
        "experiment": step.experiment,
        "status": step.status,
        "note": step.note,
        "started_at": _iso_seconds(step.started),
        "duration_s": round(step.ended - step.started, 1) if step.started and step.ended else None,
        "variables": dict(step.variables),
        "recovery_budget_s": step.recovery_budget,
        "time_to_recovery_s": None,
        "recovered": None,
        "errors": {},
        "slos": [],
        "experiment_failures": journal_failures,
        "experiment_figures": experiment_figures(journal) if journal else {},
        "actions": [
            {
                "name": n,
                **_span(step, a, b),
            }
            for n, a, b in (step_faults(journal, _until(step)) if journal else [])
        ],
        "journal": step.journal,
        "log": step.log,
        "findings": [],
    }
    entry["alerts"], alert_findings = step_alerts(data.alerts, windows, step.expect_alerts)
    if windows is None or step.started is None or step.ended is None:
        entry["verdict"] = "SKIP" if step.status == "skipped" else "NOT RUN"
        entry["findings"] = (
            [_finding(step, "run", step.note)] if step.note and step.status != "skipped" else []
        )
        return entry
    stats = step_stats(data.load, step.name, windows)
    errors = errors_per_window(stats)
    entry["errors"] = {
        name: {
            "seconds": e.seconds,
            "requests": e.requests,
            "failures": e.failures,
            "error_ratio": round(e.error_ratio, 6) if e.error_ratio is not None else None,
        }
        for name, e in errors.items()
    }
    verdicts = [v for v in _evaluate(slos, stats)]
    entry["slos"] = [
        {"name": v.slo.name, "status": v.status.value, "line": v.line()} for v in verdicts
    ]
    recoveries = fault_recoveries(
        states, data.policy, step, step_faults(journal, _until(step)) if journal else [], windows
    )
    entry["recoveries"] = [
        {"fault": name, "seconds": None if seconds is None else round(seconds, 1)}
        for name, seconds in recoveries
    ]
    times = [seconds for _, seconds in recoveries]
    recovered = all(seconds is not None for seconds in times)
    entry["time_to_recovery_s"] = (
        round(max(s for s in times if s is not None), 1) if recovered and times else None
    )
    entry["network_faults"] = [
        _network_fault(data, step, fault, stats)
        for fault in (network_faults(journal, _until(step)) if journal else [])
    ]
    entry["fis_actions"] = [
        {
            "experiment_id": action.experiment_id,
            "action": action.name,
            "action_id": action.action_id,
            "status": action.status,
            **_span(step, action.start, action.end),
        }
        for action in (fis_actions(journal, _until(step)) if journal else [])
    ]
    baseline = errors.get("baseline")
    impact = client_impact(
        data.load.records,
        windows.fault[0],
        windows.recovery[1],
        baseline.error_ratio or 0.0 if baseline is not None else 0.0,
    )
    entry["client_impact"] = asdict(impact)
    entry["recovery_measured_by"] = "pods"
    if recovered and times and all(seconds == 0.0 for seconds in times):
        # the pods never noticed (a database, cache or broker fault): what users felt is
        # the measure, not a Deployment that stayed whole
        entry["recovery_measured_by"] = "clients"
        back = impact.back_to_baseline_s
        recovered = back is not None
        entry["time_to_recovery_s"] = back
    entry["recovered"] = recovered
    passed = step.status == "passed" and all(v.passed for v in verdicts)
    entry["verdict"] = "PASS" if passed else "FAIL"
    entry["findings"] = _step_findings(
        data, step, windows, states, journal_failures, recovered, entry
    ) + [_finding(step, kind, text) for kind, text in alert_findings]
    return entry


def _until(step: StepRecord) -> float:
    return step.ended or step.started or 0.0


def _network_fault(
    data: RunData, step: StepRecord, fault: NetworkFault, stats: Mapping[Window, Any]
) -> dict[str, Any]:
    """One network fault's band and what the load saw in it against the step's baseline."""
    load = band_load(stats.get(Window.BASELINE), span_stats(data.load, fault.start, fault.end))
    return {
        "fault": fault_name(fault),
        "kind": fault.kind,
        "object": fault.name,
        "action": fault.action,
        "label": fault.label,
        **_span(step, fault.start, fault.end),
        "injected_latency_ms": fault.latency_ms,
        "injected_jitter_ms": fault.jitter_ms,
        "injected_loss_percent": fault.loss_percent,
        "baseline": None if load.baseline is None else _rounded(asdict(load.baseline)),
        "during": None if load.during is None else _rounded(asdict(load.during)),
        "websocket_reconnects": load.reconnects,
        "summary": band_summary(fault, load),
    }


def _rounded(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def fault_recoveries(
    states: Sequence[State],
    policy: IntendedPolicy,
    step: StepRecord,
    actions: Sequence[tuple[str, float, float]],
    windows: StepWindows,
) -> list[tuple[str, float | None]]:
    """Time to recovery of each fault action of a step (the whole step when its journal
    names none): from the action's start until the Deployment had all its Ready pods,
    spread over the zones, before the step's recovery window ends. A drain is
    recovered only after its uncordon, so the step's time is the worst of them."""
    faults = list(actions) or [(step.name, windows.fault[0], windows.fault[1])]
    result: list[tuple[str, float | None]] = []
    until = windows.recovery[1]
    for index, (name, start, end) in enumerate(faults):
        mark = Mark(index, name, start, 0.0, end, 0.0)
        recovery = measure_recovery(step_states(states, start, until), policy, mark)
        result.append((name, recovery.seconds))
    return result


def step_states(states: Sequence[State], start: float, until: float) -> list[State]:
    """The states of [start, until), framed by the world as it stood at both ends.

    A step that changed nothing the watches see (an RDS failover the pods rode out)
    has no event of its own; the framing states let `measure_recovery` see that
    the Deployment was whole at the start and still at the end (0 s, never disrupted).

        >>> [s.wall for s in step_states([State(wall=1.0), State(wall=5.0)], 3.0, 9.0)]
        [3.0, 5.0, 9.0]
    """
    before = [s for s in states if s.wall < start]
    inside = [s for s in states if start <= s.wall < until]
    framed = [replace(before[-1], wall=start)] if before else []
    framed += inside
    if framed:
        framed.append(replace(framed[-1], wall=until))
    return framed


def _evaluate(slos: Sequence[Slo], stats: Any) -> list[Any]:
    from resilience.slo.objectives import evaluate  # noqa: PLC0415

    return evaluate(slos, stats)


def _step_findings(
    data: RunData,
    step: StepRecord,
    windows: StepWindows,
    states: Sequence[State],
    journal_failures: Sequence[str],
    recovered: bool,
    entry: Mapping[str, Any],
) -> list[dict[str, str]]:
    start, end = windows.fault[0], windows.recovery[1]
    found = [_finding(step, "journal", line) for line in journal_failures]
    if step.status not in ("passed", "failed"):
        found.append(_finding(step, "run", step.note or step.status))
    found += [_finding(step, "pending", line) for line in find.pending_pods(states, start, end)]
    found += [_finding(step, "restart", line) for line in find.restarts(states, start, end)]
    found += [
        _finding(step, "data", line)
        for line in find.data_findings(data.load, windows.baseline[0], end)
    ]
    if not recovered:
        found.append(
            _finding(
                step,
                "recovery",
                "the Deployment was not back to its Ready pods, spread over the zones, "
                "before the next step",
            )
        )
    elif (entry["time_to_recovery_s"] or 0.0) > step.recovery_budget:
        found.append(
            _finding(
                step,
                "recovery",
                f"time to recovery {entry['time_to_recovery_s']} s exceeds the budget "
                f"of {step.recovery_budget:g} s",
            )
        )
    found += [_finding(step, "slo", s["line"]) for s in entry["slos"] if s["status"] == "FAIL"]
    top = find.top_error(data.load, windows.fault[0], windows.fault[1])
    if top:
        found.append(_finding(step, "errors", top))
    found += [_finding(step, "watch", line) for line in find.relists(data.watch.marks, start, end)]
    return found


def _finding(step: StepRecord, kind: str, text: str) -> dict[str, str]:
    return {"step": step.name, "kind": kind, "text": text}


def _day_load(data: RunData, start: float, end: float) -> dict[str, Any]:
    records = data.load.records
    ok = sum(r.ok for r in records if r.request_type != "LEDGER")
    failed = sum(r.failed for r in records if r.request_type != "LEDGER")
    return {
        "seconds": round(end - start, 1),
        "requests": ok + failed,
        "failures": failed,
        "error_ratio": round(failed / (ok + failed), 6) if ok + failed else None,
        "lost_or_stale_writes": sum(
            r.failed
            for r in records
            if r.request_type == "LEDGER" and r.name in ("stale read", "lost write")
        ),
    }


def _artifacts(run_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(run_dir))
        for p in run_dir.rglob("*")
        if p.is_file() and not p.name.endswith(".tmp")
    )


def bands(data: RunData) -> list[Band]:
    out = []
    for step in data.record.steps:
        if step.started is None:
            continue
        out.append(
            Band(f"{step.index} {step.name}", step.started, step.ended or day_span(data)[1], "step")
        )
        journal = data.journals.get(step.index)
        for name, start, end in journal_actions(journal) if journal else []:
            out.append(Band(f"{step.name}: {name}", start, end, "action"))
        until = step.ended or day_span(data)[1]
        for fault in network_faults(journal, until) if journal else []:
            out.append(Band(f"{step.name}: {fault_name(fault)}", fault.start, fault.end, "network"))
        for action in fis_actions(journal, until) if journal else []:
            out.append(Band(f"{step.name}: FIS {action.label}", action.start, action.end, "fis"))
    return out


def timeline_chart(data: RunData) -> str:
    """Every chart of the page in one SVG on one time axis (see `svg`)."""
    start, end = day_span(data)
    states = data.watch.states()
    zones = series.ready_by_zone(states, data.policy)
    names = sorted({zone for point in zones for zone, _ in point.ready})
    replicas = series.replicas(states, data.policy.deployment)
    traffic = series.traffic(data.load)
    sockets = series.websocket(data.load)
    writes = series.db_writes(data.load)
    panels = [
        Panel(
            "Ready pods per zone",
            "pods",
            tuple(
                Series(zone, tuple((p.t, float(dict(p.ready).get(zone, 0))) for p in zones), "step")
                for zone in names
            ),
        ),
        Panel(
            "Replicas: Deployment desired and ready, HPA desired and current",
            "replicas",
            (
                Series("deployment desired", tuple((p.t, float(p.spec)) for p in replicas), "step"),
                Series("ready", tuple((p.t, float(p.ready)) for p in replicas), "step"),
                Series(
                    "HPA desired",
                    tuple(
                        (p.t, float(p.hpa_desired)) for p in replicas if p.hpa_desired is not None
                    ),
                    "step",
                    dashed=True,
                ),
                Series(
                    "HPA current",
                    tuple(
                        (p.t, float(p.hpa_current)) for p in replicas if p.hpa_current is not None
                    ),
                    "step",
                    dashed=True,
                ),
            ),
        ),
        Panel(
            "Requests per second",
            "req/s",
            (Series("requests/s", tuple((p.t, float(p.rps)) for p in traffic), "bars", "#2ca02c"),),
        ),
        Panel(
            "Error rate",
            "%",
            (
                Series(
                    "errors / requests",
                    tuple((p.t, p.error_ratio) for p in traffic if p.error_ratio is not None),
                    "line",
                    "#d62728",
                ),
            ),
            percent=True,
        ),
        Panel(
            "p95 latency of successful requests",
            "ms",
            (Series("p95 ms", tuple((p.t, p.p95_ms) for p in traffic if p.p95_ms is not None)),),
        ),
        Panel(
            "WebSocket connections",
            "sockets",
            (
                Series("open (est.)", tuple((p.t, float(p.open)) for p in sockets), "step"),
                Series(
                    "connects/s",
                    tuple((p.t, float(p.connects)) for p in sockets),
                    "bars",
                    "#17becf",
                ),
                Series(
                    "reconnects/s",
                    tuple((p.t, float(p.reconnects)) for p in sockets),
                    "bars",
                    "#ff7f0e",
                ),
                Series(
                    "disconnects/s",
                    tuple((p.t, float(p.disconnects)) for p in sockets),
                    "bars",
                    "#d62728",
                ),
            ),
        ),
        Panel(
            "DB writes (successful POST/PUT per second)",
            "writes/s",
            (
                Series(
                    "writes/s", tuple((float(t), float(n)) for t, n in writes), "bars", "#8c564b"
                ),
            ),
        ),
    ]
    return render(panels, bands(data), start, end)


# ---- files ----


def build_report(run_dir: Path, secrets: Sequence[str] | None = None) -> ReportFiles:
    """Write report.json, junit.xml and index.html into `run_dir`, then scrub it."""
    if not run_dir.is_dir():
        raise InvalidInputError(f"{run_dir}: no such run directory")
    data = read_run(run_dir)
    report = analyse(data)
    json_path = run_dir / "report.json"
    junit_path = run_dir / "junit.xml"
    html_path = run_dir / "index.html"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    junit_path.write_text(junit_xml(report), encoding="utf-8")
    html_path.write_text(render_page(report, timeline_chart(data)), encoding="utf-8")
    scrub_tree(run_dir, run_secrets() if secrets is None else secrets)
    report = json.loads(json_path.read_text(encoding="utf-8"))
    return ReportFiles(html_path, json_path, junit_path, report)
