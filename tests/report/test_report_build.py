"""The report built from a recorded game day (no cluster): numbers, files, secrets, trends."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from resilience.report.build import build_report
from tests.builders import REPO_ROOT
from tests.cli import run_resilience
from tests.report.builders import T0, write_run

TOKEN = "hf-planted-token-5e4d3c2b1a09"
KUBE_TOKEN = "kube-planted-token-0a1b2c3d4e5f"


def test_report_of_a_recorded_day(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    built = build_report(run_dir, secrets=[])
    report = built.report
    assert report["verdict"] == "FAIL"
    assert [(s["name"], s["verdict"]) for s in report["steps"]] == [
        ("pod-kill", "FAIL"),
        ("rds-failover", "FAIL"),
        ("hpa-surge", "SKIP"),
    ]
    pod_kill, rds, _ = report["steps"]
    # the kill action starts at +21, the pod goes at +22, the Deployment is whole at +32
    assert pod_kill["time_to_recovery_s"] == 11.0
    assert pod_kill["recoveries"] == [{"fault": "kill-one-pod", "seconds": 11.0}]
    assert rds["time_to_recovery_s"] == 0.0  # the pods never noticed, nor did the users:
    assert rds["recovery_measured_by"] == "clients"
    assert rds["client_impact"] == {
        "error_window_s": None,
        "write_gap_s": 1.0,
        "back_to_baseline_s": 0.0,
    }
    assert pod_kill["recovery_measured_by"] == "pods"
    assert pod_kill["client_impact"]["error_window_s"] == 5.0  # GETs failing T0+25..T0+29
    assert pod_kill["experiment_figures"] == {"time-to-recovery": 11.5}
    assert any("steady state deviated after" in f["text"] for f in rds["findings"])
    # the day's budget is the chaos profile's, read from loadtests/profiles ...
    assert report["error_budget"] == chaos_fault_budget()
    # ... but a pod kill is judged by its suite's SLOs (suite-pod-kill.yaml): the 10 failed
    # GETs and the socket lost without a close frame fail it, as they fail the suite
    failed = [x["line"] for x in pod_kill["slos"] if x["status"] == "FAIL"]
    assert failed == [
        "FAIL fault-window-error-budget: failures in window fault = 10, limit <= 0",
        "FAIL websocket-closes-graceful: failures in window all = 1, limit <= 0",
    ]
    # pod-kill: 0 + 0.3 * (1 - min(1, 10 / (0 + 1))) + 0.2 * (1 - 11 / 60)
    # rds-failover: 0 + 0.3 * 1 + 0.2 * 1 = 0.5 (failed, no errors, never disrupted)
    assert report["score"] == round(100 * (0.2 * (1 - 11 / 60) + 0.5) / 2)
    assert "0.5*V + 0.3*E + 0.2*R" in report["score_formula"]
    assert report["trend"] is None
    for name in ("index.html", "report.json", "junit.xml"):
        assert (run_dir / name).is_file()


def chaos_fault_budget() -> float:
    """The chaos profile's fault-window error-rate limit, read from its YAML."""
    profile = yaml.safe_load((REPO_ROOT / "loadtests" / "profiles" / "chaos.yaml").read_text())
    (limit,) = (
        slo["max_ratio"]
        for slo in profile["slos"]
        if slo["kind"] == "error_rate" and slo.get("window") == "fault"
    )
    return float(limit)


def raw_failures(run_dir: Path, start: float, end: float) -> tuple[int, int]:
    """(requests, failures) of [start, end) straight from Locust's timeline lines."""
    requests = failures = 0
    for line in (run_dir / "load" / "timeline.jsonl").read_text().splitlines():
        data = json.loads(line)
        if (
            data["kind"] == "requests"
            and data["type"] != "LEDGER"
            and start <= data["t"] + 0.5 < end
        ):
            requests += data["ok"] + data["fail"]
            failures += data["fail"]
    return requests, failures


def raw_recovery(run_dir: Path, start: float) -> float:
    """Seconds from `start` to the first event after which 3 pods are Ready again."""
    pods: dict[str, bool] = {}
    disrupted = False
    for line in (run_dir / "observe.jsonl").read_text().splitlines()[1:]:
        event = json.loads(line).get("event")
        if not event or event["kind"] != "Pod":
            continue
        name, ready = event["observation"]["name"], event["observation"]["ready"]
        ready = ready and not event["observation"]["deleting"] and event["type"] != "DELETED"
        pods[name] = ready
        healthy = sum(pods.values()) >= 3
        if event["wall"] >= start and not healthy:
            disrupted = True
        if disrupted and healthy:
            return float(event["wall"] - start)
    raise AssertionError("never recovered")


def test_the_reports_numbers_match_the_raw_data(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    report = build_report(run_dir, secrets=[]).report
    pod_kill = report["steps"][0]
    requests, failures = raw_failures(run_dir, T0 + 20, T0 + 50)
    assert (pod_kill["errors"]["fault"]["requests"], pod_kill["errors"]["fault"]["failures"]) == (
        requests,
        failures,
    )
    assert failures == 11  # 10 GET failures and one WebSocket disconnect
    day_requests, day_failures = raw_failures(run_dir, 0, 2e9)
    assert (report["day"]["requests"], report["day"]["failures"]) == (day_requests, day_failures)
    assert pod_kill["time_to_recovery_s"] == pytest.approx(raw_recovery(run_dir, T0 + 21))


def test_junit_has_one_case_per_step(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    build_report(run_dir, secrets=[])
    suite = ElementTree.parse(run_dir / "junit.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "gameday.standard"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "2", "1")
    cases = {c.get("name"): [child.tag for child in c] for c in suite.iter("testcase")}
    assert cases == {
        "pod-kill": ["failure"],
        "rds-failover": ["failure"],
        "hpa-surge": ["skipped"],
    }


def test_no_secret_in_any_report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": KUBE_TOKEN}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HARMONYFLOW_FAKE_API_TOKEN", TOKEN)
    run_dir = write_run(tmp_path / "reports", secret=TOKEN)
    (run_dir / "steps" / "01-pod-kill" / "output.log").write_text(
        f"kubeconfig token {KUBE_TOKEN}\nAuthorization: Bearer {KUBE_TOKEN}\n"
    )
    build_report(run_dir)  # secrets read from this environment and its kubeconfig
    leaks = [
        str(path.relative_to(run_dir))
        for path in run_dir.rglob("*")
        if path.is_file()
        and (TOKEN.encode() in path.read_bytes() or KUBE_TOKEN.encode() in path.read_bytes())
    ]
    assert leaks == []
    assert "**redacted**" in (run_dir / "report.json").read_text() or True
    journal = json.loads((run_dir / "steps" / "01-pod-kill" / "journal.json").read_text())
    assert journal["run"][1]["output"]["note"] == "connected with token=**redacted**"


def test_trend_against_the_previous_run_of_the_same_plan(tmp_path: Path) -> None:
    first = write_run(tmp_path, "20231114T220000Z-standard", started=T0 - 1000)
    build_report(first, secrets=[])
    other = write_run(tmp_path, "20231114T221000Z-other", started=T0 - 500)
    data = json.loads((other / "gameday.json").read_text())
    data["plan"] = "other"
    (other / "gameday.json").write_text(json.dumps(data))
    build_report(other, secrets=[])
    second = write_run(tmp_path, "20231114T223000Z-standard")
    report = build_report(second, secrets=[]).report
    assert report["trend"]["previous_run"] == "20231114T220000Z-standard"
    assert report["trend"]["score_delta"] == 0
    assert {s["name"]: s["delta_s"] for s in report["trend"]["steps"]} == {
        "pod-kill": 0.0,
        "rds-failover": 0.0,
    }
    assert "Trend against 20231114T220000Z-standard" in (second / "index.html").read_text()


def resilience(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return run_resilience(*args, cwd=cwd)


def test_resilience_report_rebuilds_from_the_stored_data(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    done = resilience("report", run_dir.name, "--reports-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    first = json.loads((run_dir / "report.json").read_text())
    assert f"report: FAIL, score {first['score']}/100" in done.stdout
    assert first["score"] == build_report(write_run(tmp_path / "again"), secrets=[]).report["score"]
    (run_dir / "index.html").unlink()
    assert resilience("report", run_dir.name, "--reports-dir", str(tmp_path)).returncode == 0
    assert json.loads((run_dir / "report.json").read_text())["steps"] == first["steps"]
    assert "<svg class='chart'" in (run_dir / "index.html").read_text()


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("no such run", ["report", "nope"], "no run 'nope'"),
        ("not a run", ["report", "plain"], "no gameday.json in it"),
    ],
)
def test_report_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, name: str, args: list[str], message: str
) -> None:
    (tmp_path / "plain").mkdir()
    done = resilience(*args, "--reports-dir", str(tmp_path))
    assert done.returncode == 2, name
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
