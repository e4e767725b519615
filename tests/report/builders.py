"""A small recorded game day, built as files: what the report reads, with known numbers.

The day (T0 = Unix 1_700_000_000):
- load from T0 to T0+100: each second 10 GET, 2 POST, 3 PUT ok; GET fails 2/s during
  T0+25..T0+29 (5 s: 10 failures); 6 sockets connect at T0, 1 disconnects at T0+25
  and reconnects at T0+27; one LEDGER read verified per second (not traffic);
- step 1 pod-kill T0+20..T0+50 (passed): pod web-a (zone a) killed at T0+22, its
  replacement Pending from T0+23, Ready at T0+32 -> time to recovery 12 s;
- step 2 rds-failover T0+60..T0+80 (failed: the steady state deviated after);
- step 3 hpa-surge: skipped (optional, missing).
- alerts.json (Prometheus, step 1 s): SessionStateTooFewReadyPods firing T0+25..T0+34
  (pod-kill's fault window; pod-kill expects it), SessionStateHighErrorRate at T0+57..58
  (rds-failover's baseline); rds-failover expects DatabaseReplicaLagHigh, which never fired.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from resilience.observe.codec import export_jsonl, to_jsonable
from resilience.observe.records import (
    DeploymentObservation,
    EventType,
    HpaObservation,
    NodeObservation,
    PodObservation,
)
from resilience.observe.timeline import Timeline
from resilience.report.record import RunRecord, StepRecord, write_record
from tests.observe.builders import base_policy

T0 = 1_700_000_000.0
ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")
DEPLOYMENT = "session-state-service"
LABELS = {"app": "session-state-service"}


class Clock:
    def __init__(self) -> None:
        self.now = T0 - 5

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - T0


def load_lines() -> list[str]:
    lines = [json.dumps({"kind": "run", "event": "start", "t": T0})]
    for second in range(100):
        t = int(T0) + second
        failing = 25 <= second < 30
        records: list[dict[str, Any]] = [
            {
                "type": "GET",
                "name": "/api/v1/sessions/[id]",
                "ok": 10,
                "fail": 2 if failing else 0,
                "lat": {"5": 9, "40": 1},
                "errors": {"HTTPError 502": 2} if failing else {},
            },
            {"type": "POST", "name": "/api/v1/sessions", "ok": 2, "fail": 0, "lat": {"8": 2}},
            {"type": "PUT", "name": "/api/v1/sessions/[id]", "ok": 3, "fail": 0, "lat": {"9": 3}},
            {"type": "LEDGER", "name": "read verified", "ok": 1, "fail": 0},
        ]
        if second == 0:
            records.append({"type": "WSCONN", "name": "connect", "ok": 6, "fail": 0})
        if second == 25:
            records.append({"type": "WS", "name": "disconnect", "ok": 0, "fail": 1})
        if second == 27:
            records.append({"type": "WSRECONN", "name": "reconnect", "ok": 1, "fail": 0})
            records.append({"type": "WSCONN", "name": "connect", "ok": 1, "fail": 0})
        lines += [json.dumps({"kind": "requests", "t": t, **r}) for r in records]
    lines.append(json.dumps({"kind": "run", "event": "stop", "t": T0 + 100}))
    return lines


def pod(
    name: str, zone: str, ready: bool = True, phase: str = "Running", **extra: Any
) -> PodObservation:
    return PodObservation(
        name,
        phase=phase,
        ready=ready,
        node=f"node-{zone}" if phase != "Pending" else None,
        zone=zone if phase != "Pending" else None,
        labels=LABELS,
        **extra,
    )


def watch_timeline() -> Timeline:
    clock = Clock()
    timeline = Timeline(clock)
    for zone in ZONES:
        timeline.record(EventType.LISTED, NodeObservation(f"node-{zone}", zone=zone, ready="True"))
    for zone in ZONES:
        timeline.record(EventType.LISTED, pod(f"web-{zone[-1]}", zone))
    timeline.record(EventType.LISTED, deployment(3))
    timeline.record(
        EventType.LISTED,
        HpaObservation(
            "session-state-service-hpa",
            target=DEPLOYMENT,
            min_replicas=3,
            max_replicas=10,
            current_replicas=3,
            desired_replicas=3,
        ),
    )
    timeline.set_synced()
    clock.now = T0 + 22
    timeline.record(EventType.MODIFIED, pod("web-a", ZONES[0], ready=False, deleting=True))
    timeline.record(EventType.MODIFIED, deployment(2))
    clock.now = T0 + 23
    timeline.record(EventType.DELETED, pod("web-a", ZONES[0], ready=False, deleting=True))
    timeline.record(EventType.ADDED, pod("web-new", ZONES[0], ready=False, phase="Pending"))
    clock.now = T0 + 28
    timeline.record(EventType.MODIFIED, pod("web-new", ZONES[0], ready=False))
    clock.now = T0 + 32
    timeline.record(EventType.MODIFIED, pod("web-new", ZONES[0], ready=True))
    timeline.record(EventType.MODIFIED, deployment(3))
    return timeline


def deployment(ready: int) -> DeploymentObservation:
    return DeploymentObservation(
        DEPLOYMENT,
        spec_replicas=3,
        replicas=3,
        updated=3,
        ready=ready,
        available=ready,
        selector=LABELS,
    )


def iso(t: float) -> str:
    import datetime  # noqa: PLC0415

    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat()


def journal(
    passed: bool, action: str, start: float, end: float, secret: str = ""
) -> dict[str, Any]:
    state_after = {
        "steady_state_met": passed,
        "probes": []
        if passed
        else [{"activity": {"name": "service-answers"}, "output": False, "tolerance_met": False}],
    }
    return {
        "status": "completed",
        "deviated": not passed,
        "start": iso(start),
        "end": iso(end),
        "steady_states": {
            "before": {"steady_state_met": True, "probes": []},
            "during": [],
            "after": state_after,
        },
        "run": [
            {
                "activity": {
                    "type": "action",
                    "name": "start-load",
                    "provider": {"func": "start_load"},
                },
                "start": iso(start),
                "end": iso(start),
                "status": "succeeded",
                "output": {},
            },
            {
                "activity": {"type": "action", "name": action, "provider": {"func": action}},
                "start": iso(start + 1),
                "end": iso(start + 11),
                "status": "succeeded",
                "output": {"note": f"connected with token={secret}" if secret else "ok"},
            },
            {
                "activity": {
                    "type": "probe",
                    "name": "time-to-recovery",
                    "provider": {"func": "x"},
                },
                "start": iso(start + 11),
                "end": iso(start + 12),
                "status": "succeeded",
                "output": 11.5,
            },
        ],
        "rollbacks": [],
    }


def write_run(
    reports: Path,
    run_id: str = "20231114T221320Z-standard",
    secret: str = "",
    started: float = T0 - 5,
) -> Path:
    """The recorded day above, as a run directory under `reports`."""
    run_dir = reports / run_id
    (run_dir / "load").mkdir(parents=True)
    (run_dir / "load" / "timeline.jsonl").write_text("\n".join(load_lines()) + "\n")
    repo = Path(__file__).resolve().parents[2]
    (run_dir / "load" / "profile.yaml").write_text(
        (repo / "loadtests" / "profiles" / "chaos.yaml").read_text()
    )
    (run_dir / "policy.json").write_text(json.dumps(to_jsonable(base_policy())))
    export_jsonl(watch_timeline(), run_dir / "observe.jsonl")
    steps = []
    for index, name, status, span, action in (
        (1, "pod-kill", "passed", (T0 + 20, T0 + 50), "kill-one-pod"),
        (2, "rds-failover", "failed", (T0 + 60, T0 + 80), "force-failover"),
    ):
        step_dir = run_dir / "steps" / f"{index:02d}-{name}"
        step_dir.mkdir(parents=True)
        (step_dir / "journal.json").write_text(
            json.dumps(journal(status == "passed", action, *span, secret=secret))
        )
        (step_dir / "output.log").write_text(
            f"chaos: {name}\nAuthorization: Bearer {secret or 'x'}\n"
        )
        steps.append(
            StepRecord(
                index,
                name,
                name,
                status,
                {"load_profile": "external"},
                span[0],
                span[1],
                0 if status == "passed" else 1,
                f"steps/{index:02d}-{name}/journal.json",
                f"steps/{index:02d}-{name}/output.log",
                recovery_budget=60.0,
            )
        )
    steps = [
        replace(s, expect_alerts=alerts)
        for s, alerts in zip(
            steps, [("SessionStateTooFewReadyPods",), ("DatabaseReplicaLagHigh",)], strict=True
        )
    ]
    (run_dir / "alerts.json").write_text(json.dumps(alerts_file()))
    steps.append(
        StepRecord(3, "hpa-surge", "hpa-surge", "skipped", note="experiment file not found")
    )
    record = RunRecord(
        run_id=run_id,
        plan="standard",
        plan_description="a recorded day",
        load_profile="chaos",
        started=started,
        ended=T0 + 101,
        target={
            "context": "harmonyflow-sandbox",
            "server": "https://127.0.0.1:6443",
            "namespace": "harmonyflow",
        },
        steps=tuple(steps),
        load_started=T0,
        load_stopped=T0 + 100,
    )
    write_record(run_dir, record)
    return run_dir


def alerts_file() -> dict[str, Any]:
    """alerts.json as the game day writes it from Prometheus's range query."""

    def series(name: str, first: int, last: int) -> dict[str, Any]:
        return {
            "metric": {
                "__name__": "ALERTS",
                "alertname": name,
                "alertstate": "firing",
                "severity": "page",
            },
            "values": [[T0 + t, "1"] for t in range(first, last + 1)],
        }

    return {
        "format": "harmonyflow-alerts/v1",
        "query": 'ALERTS{alertstate="firing"}',
        "start": T0 - 5,
        "end": T0 + 100,
        "collected": True,
        "step": 1.0,
        "prometheus": "http://127.0.3.40:9090",
        "series": [
            series("SessionStateTooFewReadyPods", 25, 34),
            series("SessionStateHighErrorRate", 57, 58),
        ],
    }


def as_dict(record: RunRecord) -> dict[str, Any]:
    return asdict(record)


def entry(
    func: str,
    start: float,
    end: float,
    output: Any = None,
    arguments: dict[str, Any] | None = None,
    name: str = "",
    status: str = "succeeded",
) -> dict[str, Any]:
    """One entry of a chaos journal's run or rollbacks (arguments as the journal keeps
    them: unsubstituted)."""
    kind = "probe" if func.endswith("_seconds") else "action"
    return {
        "activity": {
            "type": kind,
            "name": name or func,
            "provider": {"type": "python", "func": func, "arguments": dict(arguments or {})},
        },
        "status": status,
        "start": iso(start),
        "end": iso(end),
        "output": output,
    }


def delay_spec(latency: str = "50ms", jitter: str = "5ms", duration: str = "30s") -> dict[str, Any]:
    """The spec `inject_network_fault` returns for dependency-latency's database delay."""
    return {
        "action": "delay",
        "selector": {"namespaces": ["harmonyflow"], "labelSelectors": LABELS},
        "mode": "all",
        "direction": "to",
        "delay": {"latency": latency, "jitter": jitter, "correlation": "25"},
        "externalTargets": ["db.example"],
        "duration": duration,
    }


def chaos_mesh_journal(
    created: float, injected: float, gone: float, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """dependency-latency's method for one object: create at `created`, AllInjected at
    `injected`, hold, deleted (gone) at `gone`."""
    output = {"kind": "NetworkChaos", "namespace": "harmonyflow", "name": "d", "pods": 3}
    deleted = {"kind": "NetworkChaos", "namespace": "harmonyflow", "name": "d", "gone_at": gone}
    return {
        "status": "completed",
        "deviated": False,
        "steady_states": {"before": {"steady_state_met": True, "probes": []}},
        "run": [
            entry("start_load", created - 1, created - 1, {}),
            entry(
                "inject_network_fault",
                created - 0.2,
                created,
                {**output, "spec": spec or delay_spec()},
                {"name": "d", "action": "delay"},
                name="delay-database",
            ),
            entry(
                "chaos_mesh_condition_seconds",
                created,
                injected,
                injected - created,
                {"name": "d", "timeout": "${injection_timeout}"},
                name="database-delay-injected",
            ),
            entry("hold", injected, gone - 1, {}, {"seconds": "${fault_seconds}"}),
            entry("remove_chaos", gone - 1, gone + 0.1, {"deleted": [deleted]}, {"name": "d"}),
        ],
        "rollbacks": [entry("remove_chaos", gone + 1, gone + 1, {"removed": [], "deleted": []})],
    }
