"""Stop conditions and the dead-man switch, end to end under `resilience chaos run`.

Each test starts a control plane of its own as a process (`python -m sandbox serve
--no-backing-services`, on a free port and a private cluster DNS 127.0.9.N, never
the full sandbox's addresses), so that it can be SIGSTOPped. The experiment drains
(cordons) zone us-west-2a, then holds; its rollback uncordons the zone. Prometheus
is a tiny local HTTP server answering /api/v1/alerts, whose alert the test flips.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.builders import REPO_ROOT
from tests.cli import resilience_command
from tests.prometheus_fake import FakePrometheus
from tests.sandbox.cluster_harness import private_cluster_dns

ZONE = "us-west-2a"
ALERT = "SessionStateHighErrorRate"
HOLD_SECONDS = 60  # far longer than any stop below: a run that ends early was stopped
EXPERIMENT = {
    "version": "1.0.0",
    "title": "cordon a zone and hold it",
    "description": "test experiment: drain (cordon) one zone, hold; the rollback uncordons",
    "configuration": {"namespace": "harmonyflow", "zone": ZONE, "hold_seconds": HOLD_SECONDS},
    "controls": [
        {
            "name": "interrupts",
            "provider": {"type": "python", "module": "resilience.chaos.controls.interrupts"},
        }
    ],
    "runtime": {"rollbacks": {"strategy": "always"}},
    "method": [
        {
            "type": "action",
            "name": "drain-zone",
            "provider": {
                "type": "python",
                "module": "resilience.chaos.nodes",
                "func": "drain_zone",
                "arguments": {"zone": "${zone}", "namespace": "${namespace}", "timeout": 20},
            },
        },
        {
            "type": "action",
            "name": "hold",
            "provider": {
                "type": "python",
                "module": "resilience.chaos.pace",
                "func": "hold",
                "arguments": {"seconds": "${hold_seconds}"},
            },
        },
    ],
    "rollbacks": [
        {
            "type": "action",
            "name": "uncordon-zone",
            "provider": {
                "type": "python",
                "module": "resilience.chaos.nodes",
                "func": "uncordon_zone",
                "arguments": {"zone": "${zone}"},
            },
        }
    ],
}


@dataclass
class Plane:
    process: subprocess.Popen[bytes]
    kubeconfig: Path

    def core(self) -> client.CoreV1Api:
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client.CoreV1Api(api)

    def cordoned(self) -> list[str]:
        nodes = self.core().list_node(
            label_selector=f"topology.kubernetes.io/zone={ZONE}", _request_timeout=5
        )
        return [n.metadata.name for n in nodes.items if n.spec.unschedulable]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    """A control plane process of this test's own; always resumed and stopped after."""
    state = tmp_path / "plane"
    log = (tmp_path / "plane.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--state-dir",
            str(state),
            "--no-backing-services",
            "--cluster-dns",
            private_cluster_dns()[0],
        ],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not (state / "state.json").is_file():
            assert process.poll() is None, (tmp_path / "plane.log").read_text()
            assert time.monotonic() < deadline, "the control plane did not start in 60 s"
            time.sleep(0.2)
        yield Plane(process, Path(json.loads((state / "state.json").read_text())["kubeconfig"]))
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def start_run(
    tmp_path: Path, plane: Plane, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    experiment = tmp_path / "cordon-hold.yaml"
    experiment.write_text(yaml.safe_dump(EXPERIMENT))
    base = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KUBECONFIG": str(plane.kubeconfig),
        "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl"),
        "HARMONYFLOW_REPORTS_DIR": str(tmp_path / "reports"),
    }
    base.pop("PROMETHEUS_URL", None)
    base.pop("AWS_ENDPOINT_URL", None)
    return subprocess.Popen(
        resilience_command(
            "chaos", "run", str(experiment), "--journal", str(tmp_path / "journal.json"), *args
        ),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, **(env or {})},
    )


def wait_cordoned(plane: Plane, run: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not plane.cordoned():
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the zone was not cordoned"
        time.sleep(0.3)


def finished(run: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        out, err = run.communicate()
        pytest.fail(f"the run did not end within {timeout} s:\n{out}\n{err[-3000:]}")
    return run.returncode, out, err


def test_the_dead_man_switch_stops_the_fault_and_rolls_back_once_the_api_is_back(
    tmp_path: Path, plane: Plane
) -> None:
    run = start_run(tmp_path, plane, "--dead-man-seconds", "4")
    try:
        wait_cordoned(plane, run)
        began = time.monotonic()
        plane.process.send_signal(signal.SIGSTOP)
        time.sleep(10)  # past the bound: the switch has fired, the rollbacks wait
        plane.process.send_signal(signal.SIGCONT)
        code, out, err = finished(run, 40)
    finally:
        plane.process.send_signal(signal.SIGCONT)
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert time.monotonic() - began < HOLD_SECONDS - 10, "the hold ran its course"
    assert code == 1, out + err[-3000:]
    assert "dead-man switch stopped the method: lost sight of the Kubernetes API" in out, out
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["dead_man"]["target"] == "Kubernetes API"
    assert journal["dead_man"]["targets_back"] is True
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    assert plane.cordoned() == []


def test_a_stop_condition_firing_stops_the_fault_and_the_verdict_names_it(
    tmp_path: Path, plane: Plane, prometheus: FakePrometheus
) -> None:
    run = start_run(
        tmp_path, plane, "--stop-on-alert", ALERT, env={"PROMETHEUS_URL": prometheus.url}
    )
    try:
        wait_cordoned(plane, run)
        began = time.monotonic()
        prometheus.firing = True
        code, out, err = finished(run, 40)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert time.monotonic() - began < 15, "the fault outlived the stop condition"
    assert code == 1, out + err[-3000:]
    assert f"stop condition stopped the method: alert {ALERT} firing" in out, out
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["stop_condition"] == {"triggered_by": f"alert {ALERT} firing"}
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    assert plane.cordoned() == []


def test_a_stop_condition_already_firing_refuses_to_start(
    tmp_path: Path, plane: Plane, prometheus: FakePrometheus
) -> None:
    prometheus.firing = True
    run = start_run(
        tmp_path, plane, "--stop-on-alert", ALERT, env={"PROMETHEUS_URL": prometheus.url}
    )
    code, out, err = finished(run, 60)
    assert code == 1, out + err[-3000:]
    assert out.splitlines() == [
        "chaos: FAILED: refused to start: stop condition already met before the method:"
        f" alert {ALERT} firing"
    ]
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["run"] == []
    assert plane.cordoned() == []
