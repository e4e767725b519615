"""Network faults in the game-day report: bands from AllInjected to deleted, their labels,
and what the load saw, as tables; then a recorded day with a delay, built into a page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from resilience.report.build import build_report
from resilience.report.netfaults import (
    BandLoad,
    NetworkFault,
    WindowLoad,
    band_load,
    band_summary,
    fault_label,
    network_faults,
)
from resilience.slo.objectives import EndpointStats, WindowStats
from tests.report.builders import T0, chaos_mesh_journal, delay_spec, entry, write_run

DNS = {"kind": "DNSChaos", "namespace": "harmonyflow", "name": "n"}


def dns_output() -> dict[str, Any]:
    return {**DNS, "spec": {"action": "error", "patterns": ["db.example"], "duration": "20s"}}


@pytest.mark.parametrize(
    ("journal", "until", "expected"),
    [
        pytest.param(
            chaos_mesh_journal(10.0, 12.0, 30.0),
            99.0,
            [("delay-database", "delay 50ms ±5ms (correlation 25%) to db.example", 12.0, 30.0)],
            id="from-the-probe-that-saw-it-injected-to-the-removal",
        ),
        pytest.param(
            chaos_mesh_journal(10.0, 12.0, 60.0),
            99.0,
            [("delay-database", "delay 50ms ±5ms (correlation 25%) to db.example", 12.0, 40.0)],
            id="its-duration-ran-out-before-the-removal",
        ),
        pytest.param(
            {"run": chaos_mesh_journal(10.0, 12.0, 30.0)["run"][:3]},
            25.0,
            [("delay-database", "delay 50ms ±5ms (correlation 25%) to db.example", 12.0, 25.0)],
            id="never-removed-lasts-until-the-step-ends",
        ),
        pytest.param(
            {
                "run": [entry("inject_dns_fault", 5.0, 6.0, dns_output(), name="fail")],
                "rollbacks": [
                    entry("remove_chaos", 9.0, 9.5, {"deleted": [{**DNS, "gone_at": 9.4}]})
                ],
            },
            99.0,
            [("fail", "DNS error for db.example", 6.0, 9.4)],
            id="no-probe-waited-and-the-rollback-removed-it",
        ),
        pytest.param(
            {
                "run": [
                    entry("inject_dns_fault", 5.0, 6.0, dns_output(), name="fail"),
                    entry("chaos_mesh_condition_seconds", 6, 8, 2.0, {"name": "other"}, name="x"),
                    entry("chaos_mesh_condition_seconds", 8, 9, 1.0, {"name": "${dns_name}"}),
                ]
            },
            99.0,
            [("fail", "DNS error for db.example", 9.0, 26.0)],
            id="a-probe-of-another-object-does-not-count-a-templated-one-does",
        ),
        pytest.param(
            {"run": [entry("inject_dns_fault", 5.0, 6.0, None, status="failed")]},
            99.0,
            [],
            id="a-refused-create-is-no-fault",
        ),
    ],
)
def test_network_fault_windows(
    journal: dict[str, Any], until: float, expected: list[tuple[str, str, float, float]]
) -> None:
    found = network_faults(journal, until)
    assert [(f.activity, f.label, f.start, f.end) for f in found] == expected


@pytest.mark.parametrize(
    ("kind", "spec", "label"),
    [
        pytest.param(
            "NetworkChaos",
            delay_spec(jitter="0ms"),
            "delay 50ms (correlation 25%) to db.example",
            id="delay-without-jitter",
        ),
        pytest.param(
            "NetworkChaos",
            {
                "action": "loss",
                "loss": {"loss": "20"},
                "direction": "to",
                "externalTargets": ["redis.example"],
            },
            "loss 20% to redis.example",
            id="loss",
        ),
        pytest.param(
            "NetworkChaos",
            {
                "action": "partition",
                "direction": "both",
                "target": {"selector": {"labelSelectors": {"app": "redis"}}},
            },
            "partition to and from pods app=redis",
            id="partition-both-ways-with-a-target-selector",
        ),
        pytest.param(
            "NetworkChaos",
            {"action": "bandwidth", "bandwidth": {"rate": "1mbps"}, "direction": "to"},
            "bandwidth 1mbps on all traffic",
            id="bandwidth-with-no-target",
        ),
        pytest.param(
            "DNSChaos",
            {"action": "random", "patterns": ["a.example", "b.*"]},
            "DNS random for a.example, b.*",
            id="dns-random",
        ),
    ],
)
def test_fault_label(kind: str, spec: dict[str, Any], label: str) -> None:
    assert fault_label(kind, spec) == label


def fault(action: str, latency: float | None = None) -> NetworkFault:
    return NetworkFault("a", "NetworkChaos", "o", action, f"{action} x", 0.0, 20.0, latency)


@pytest.mark.parametrize(
    ("subject", "load", "summary"),
    [
        pytest.param(
            fault("delay", 50.0),
            BandLoad(WindowLoad(100, 0, 10.0, 30.0), WindowLoad(90, 0, 61.0, 95.0)),
            "delay x (20 s): p50 10 → 61 ms (+51 ms; 50 ms injected), p95 30 → 95 ms,"
            " errors 0.00% → 0.00% (0 of 90)",
            id="delay-shows-the-added-p50-next-to-the-injected-latency",
        ),
        pytest.param(
            fault("loss"),
            BandLoad(WindowLoad(100, 1, 10.0, 30.0), WindowLoad(80, 8, 12.0, 400.0), 3),
            "loss x (20 s): p50 10 → 12 ms, p95 30 → 400 ms, errors 1.00% → 10.00% (8 of 80),"
            " 3 WebSocket reconnects",
            id="loss-shows-errors-and-reconnects",
        ),
        pytest.param(
            fault("delay", 50.0),
            BandLoad(None, WindowLoad(10, 10, None, None)),
            "delay x (20 s): p50 - → - ms, p95 - → - ms, errors - → 100.00% (10 of 10)",
            id="no-baseline-and-no-success",
        ),
        pytest.param(
            fault("partition"),
            BandLoad(WindowLoad(1, 0, 1.0, 1.0), None),
            "partition x (20 s): no request during the band",
            id="no-request-in-the-band",
        ),
    ],
)
def test_band_summary(subject: NetworkFault, load: BandLoad, summary: str) -> None:
    assert band_summary(subject, load) == summary


def test_band_load_times_rest_successes_and_counts_every_request_but_ledger() -> None:
    during = WindowStats(
        10.0,
        {
            ("GET", "/s"): EndpointStats(8, 2, {50.0: 8}),
            ("WS", "fanout"): EndpointStats(5, 0, {900.0: 5}),  # not REST: not timed
            ("WSRECONN", "reconnect"): EndpointStats(2, 0),
            ("LEDGER", "read verified"): EndpointStats(0, 4),  # not a request
        },
    )
    load = band_load(None, during)
    assert load.during == WindowLoad(requests=17, failures=2, p50_ms=50.0, p95_ms=50.0)
    assert (load.baseline, load.reconnects) == (None, 2)


def test_a_recorded_day_with_a_delay_shows_its_band_and_what_the_load_saw(tmp_path: Path) -> None:
    """Step 2 (T0+60..T0+80) becomes dependency-latency: created at +61, AllInjected at
    +62, gone at +75; GETs take 55 ms instead of 5 ms in the seconds the delay touched."""
    run_dir = write_run(tmp_path)
    journal = chaos_mesh_journal(T0 + 61, T0 + 62, T0 + 75)
    (run_dir / "steps" / "02-rds-failover" / "journal.json").write_text(json.dumps(journal))
    timeline = run_dir / "load" / "timeline.jsonl"
    lines = []
    for line in timeline.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "GET" and T0 + 62 <= record["t"] < T0 + 75:
            record["lat"] = {"55": 9, "90": 1}
        lines.append(json.dumps(record))
    timeline.write_text("\n".join(lines) + "\n")
    report = build_report(run_dir, secrets=[]).report
    step = report["steps"][1]
    summary = (
        "delay 50ms ±5ms (correlation 25%) to db.example (13 s): p50 5 → 55 ms"
        " (+50 ms; 50 ms injected), p95 40 → 90 ms, errors 0.00% → 0.00% (0 of 195)"
    )
    [network] = step["network_faults"]
    assert network["summary"] == summary
    assert (network["start_offset_s"], network["seconds"]) == (2.0, 13.0)
    assert network["injected_latency_ms"] == 50.0 and network["injected_jitter_ms"] == 5.0
    name = "delay-database: delay 50ms ±5ms (correlation 25%) to db.example"
    assert [a["name"] for a in step["actions"]] == ["hold", name]
    assert [r["fault"] for r in step["recoveries"]] == ["hold", name]
    page = (run_dir / "index.html").read_text()
    assert summary in page
    assert f"network: rds-failover: {name} (13 s)" in page
