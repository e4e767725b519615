"""Locust and `resilience certify` against a live sandbox: the real service behind nginx
on PostgreSQL and Redis, one sandbox for the module (`live_sandbox`).

Each certification has a twin that must fail: the same profile on a seeded slow or
error-returning image (switched through the Kubernetes API, rollout awaited), and a
zero-fault-budget profile with a pod deleted mid-run.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from kubernetes import client

from resilience.chaos.probes import whole
from resilience.load.requests import read_timeline
from resilience.load.runner import append_mark
from tests.builders import REPO_ROOT
from tests.cli import resilience_command, run_resilience
from tests.live import DEPLOYMENT, NAMESPACE, LiveSandbox, only_pods_of

IMAGE = "ghcr.io/harmonyflow/session-state"
SMOKE_SECONDS = "25"


def rolled_out(api: client.ApiClient, image: str) -> bool:
    """The rollout is done and no pod of another image is left, terminating or not."""
    found = client.AppsV1Api(api).read_namespaced_deployment(
        DEPLOYMENT, NAMESPACE, _request_timeout=10
    )
    pods = client.CoreV1Api(api).list_namespaced_pod(
        NAMESPACE, label_selector=f"app={DEPLOYMENT}", _request_timeout=10
    )
    return (
        found.spec.template.spec.containers[0].image == image
        and whole(found)
        and only_pods_of(pods.items, image)
    )


def set_image(live: LiveSandbox, tag: str, timeout: float = 180) -> None:
    """Patch the Deployment's image through the Python client; wait for the rollout."""
    api = live.api
    image = f"{IMAGE}:{tag}"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": DEPLOYMENT, "image": image}]}}}}
    client.AppsV1Api(api).patch_namespaced_deployment(
        DEPLOYMENT, NAMESPACE, patch, _request_timeout=10
    )
    deadline = time.monotonic() + timeout
    while not rolled_out(api, image):
        assert time.monotonic() < deadline, f"rollout to {image} not done in {timeout:.0f}s"
        time.sleep(0.5)


def certify(
    live: LiveSandbox, reports: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = run_resilience(
        "certify", "--reports-dir", str(reports), *args, env=live.env(), timeout=240
    )
    certificates = sorted(reports.glob("certify-*/certificate.json"))
    assert certificates, done.stderr + done.stdout
    return done, json.loads(certificates[-1].read_text())


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL ")]


# ---- the locustfiles with the plain locust CLI ----


def test_locust_cli_runs_the_locustfiles_against_the_sandbox_ingress(
    live_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    files = ",".join(
        str(REPO_ROOT / "loadtests" / f) for f in ("sessions_rest.py", "sessions_ws.py")
    )
    command = [
        sys.executable, "-m", "locust", "-f", files, "--headless",
        "--host", live_sandbox.ingress, "--users", "6", "--spawn-rate", "6",
        "--run-time", "15s", "--csv", str(tmp_path / "run"), "--exit-code-on-error", "1",
        "--timeline-file", str(tmp_path / "timeline.jsonl"), "--only-summary",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=90, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]  # exit 1 on any failed request
    with (tmp_path / "run_stats.csv").open() as stream:
        rows = {f"{r['Type']} {r['Name']}": r for r in csv.DictReader(stream)}
    for entry in (
        "POST /api/v1/sessions",
        "GET /api/v1/sessions/[id]",
        "PUT /api/v1/sessions/[id]",
        "WSCONN connect",
        "WS ping",
        "WS fanout",
        "LEDGER read verified",
    ):
        assert int(rows[entry]["Request Count"]) > 0, f"{entry} never ran: {sorted(rows)}"
    timeline = read_timeline(tmp_path / "timeline.jsonl")
    assert timeline.started is not None and timeline.stopped is not None
    recorded: dict[str, int] = {}
    for record in timeline.records:
        entry = f"{record.request_type} {record.name}"
        recorded[entry] = recorded.get(entry, 0) + record.ok + record.failed
    for entry, row in rows.items():
        if row["Type"]:  # not the Aggregated row
            counted = int(row["Request Count"])
            # the timeline sees every request Locust counted, and those the six users
            # still finish while Locust writes its final CSV
            assert counted <= recorded.get(entry, 0) <= counted + 6, (entry, counted, recorded)


# ---- resilience certify ----


@pytest.mark.certification
def test_certify_smoke_passes_on_a_healthy_sandbox(
    live_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    done, certificate = certify(
        live_sandbox, tmp_path, "--profile", "smoke", "--run-time", SMOKE_SECONDS
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert certificate["verdict"] == "PASS"
    assert {s["status"] for s in certificate["slos"]} == {"PASS"}
    assert not failed_lines(done.stdout)
    cluster = certificate["environment"]["cluster"]
    assert cluster["deployment"]["images"] == [f"{IMAGE}:1.0.0"]
    assert cluster["deployment"]["available_replicas"] == 3
    assert cluster["nodes"]["count"] == 6
    assert certificate["target"]["source"] == "sandbox"
    assert certificate["windows"]["all"]["requests"] > 100
    page = (Path(certificate["run"]["out_dir"]) / "certificate.html").read_text()
    assert "<svg" in page and "PASS" in page
    assert "src=" not in page and "<link" not in page and "<script" not in page  # self-contained


@pytest.fixture
def restore_image(live_sandbox: LiveSandbox) -> Iterator[None]:
    yield
    set_image(live_sandbox, "1.0.0")


@pytest.mark.certification
@pytest.mark.parametrize(
    ("tag", "violated"),
    [
        pytest.param("slow-responses", "rest-latency-p95", id="slow"),
        pytest.param("errors", "rest-error-rate", id="errors", marks=pytest.mark.slow),
    ],
)
def test_certify_smoke_fails_on_a_seeded_bad_image(
    live_sandbox: LiveSandbox, restore_image: None, tmp_path: Path, tag: str, violated: str
) -> None:
    set_image(live_sandbox, tag)
    done, certificate = certify(
        live_sandbox, tmp_path, "--profile", "smoke", "--run-time", SMOKE_SECONDS
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert certificate["verdict"] == "FAIL"
    lines = failed_lines(done.stdout)
    line = next((x for x in lines if x.startswith(f"FAIL {violated}: ")), None)
    assert line is not None, lines
    slo = next(s for s in certificate["slos"] if s["name"] == violated)
    assert slo["status"] == "FAIL" and slo["observed"] > slo["limit"]
    assert slo["line"] == line  # the observed value, as the certificate records it
    assert certificate["environment"]["cluster"]["deployment"]["images"] == [f"{IMAGE}:{tag}"]


@pytest.mark.certification
def test_certify_zero_fault_budget_fails_when_a_pod_is_killed(
    live_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    marks = tmp_path / "chaos.jsonl"
    reports = tmp_path / "reports"
    command = resilience_command(
        "certify", "--profile", "zero-fault-budget", "--run-time", "35",
        "--reports-dir", str(reports), "--chaos-timeline", str(marks),
    )  # fmt: skip
    env = live_sandbox.env()
    with subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as certifying:
        try:
            wait_for_load(reports, requests=100, timeout=60)
            core = client.CoreV1Api(live_sandbox.api)
            pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={DEPLOYMENT}").items
            victim = pod_serving_websockets(pods)
            sockets = sum(websocket_connections().values())
            append_mark(marks, "pod-kill", "start")
            core.delete_namespaced_pod(victim.metadata.name, NAMESPACE, _request_timeout=10)
            wait_replaced(live_sandbox, victim, sockets, timeout=90)
            append_mark(marks, "pod-kill", "end")
            output, _ = certifying.communicate(timeout=180)
        finally:
            if certifying.poll() is None:
                certifying.kill()
    assert certifying.returncode == 1, output
    lines = failed_lines(output)
    assert any(
        x.startswith(("FAIL fault-window-disconnects: ", "FAIL fault-window-error-budget: "))
        for x in lines
    ), output
    assert not any("no-lost-or-stale-data" in x or "sequence" in x for x in lines), output
    assert "PASS baseline-rest-latency-p95" in output


def websocket_connections() -> Counter[str]:
    """Open WebSockets per pod IP (port 8443, behind the ingress), seen from this machine,
    where the pods are processes."""
    return Counter(
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == 8443
    )


def pod_serving_websockets(pods: list[Any]) -> Any:
    """A pod with an open WebSocket, so that deleting it certainly touches the load."""
    by_ip = {pod.status.pod_ip: pod for pod in pods if pod.status.pod_ip}
    serving = Counter({ip: n for ip, n in websocket_connections().items() if ip in by_ip})
    assert serving, "no pod serves a WebSocket: the load is not running"
    return by_ip[serving.most_common(1)[0][0]]


def wait_for_load(reports: Path, requests: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in reports.glob("certify-*/timeline.jsonl"):
            if sum(r.ok + r.failed for r in read_timeline(path).records) >= requests:
                return
        time.sleep(0.5)
    raise AssertionError(f"the load did not reach {requests} requests in {timeout:.0f}s")


def wait_replaced(live: LiveSandbox, victim: Any, sockets: int, timeout: float) -> None:
    """The fault is over: the deleted pod's process stopped listening (its drain is done),
    the pod is gone, three pods are Ready, and the WebSocket users are back (`sockets`
    open again: they noticed the loss, so its failures fall inside the fault window)."""
    core = client.CoreV1Api(live.api)
    name, ip = victim.metadata.name, victim.status.pod_ip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.ip == ip
            for c in psutil.net_connections(kind="tcp")
        )
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={DEPLOYMENT}").items
        ready = [
            p for p in pods
            if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]  # fmt: skip
        back = sum(websocket_connections().values()) >= sockets
        if (
            not listening
            and name not in {p.metadata.name for p in pods}
            and len(ready) == 3
            and back
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"pod {name} was not replaced within {timeout:.0f}s")
