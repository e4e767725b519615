"""`resilience certify --on-cluster` on the whole sandbox: Locust worker pods run the profile
and the certificate is the one a local run of the same profile writes, within noise.

Noise, derived rather than typed: a run's request count is a sum of many users' random
waits, at most as variable as a Poisson count, so two runs' counts N1 and N2 differ by
less than 4·sqrt(N1 + N2) but once in 15,000; an on-cluster run may also start its
users up to one master heartbeat later (locust runners.py HEARTBEAT_INTERVAL, 1 s)
relative to its run-time clock, worth one second of the profile's request rate.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from resilience.load.cluster import LOAD_NAMESPACE, RUN_LABEL
from tests.builders import REPO_ROOT
from tests.cli import resilience_command, run_resilience
from tests.live import LiveSandbox

pytestmark = [pytest.mark.full_sandbox, pytest.mark.slow, pytest.mark.certification]
PROFILE = "smoke"
RUN_SECONDS = "25"
HEARTBEAT_SECONDS = 1.0  # locust runners.py HEARTBEAT_INTERVAL
SIGMAS = 4.0


def certificate_in(reports: Path) -> dict[str, Any]:
    [found] = sorted(reports.glob("certify-*/certificate.json"))
    loaded: dict[str, Any] = json.loads(found.read_text())
    return loaded


def load_pods(api: client.ApiClient) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        LOAD_NAMESPACE, label_selector=RUN_LABEL, _request_timeout=10
    )
    return {p.metadata.name for p in pods.items}


def request_tolerance(local: dict[str, Any], remote: dict[str, Any]) -> float:
    """How far two runs' request totals may differ by chance (module docstring)."""
    n1, n2 = local["windows"]["all"]["requests"], remote["windows"]["all"]["requests"]
    rate = n1 / local["windows"]["all"]["seconds"]
    return float(SIGMAS * math.sqrt(n1 + n2) + rate * HEARTBEAT_SECONDS)


def test_certify_on_cluster_writes_the_certificate_a_local_run_writes(
    live_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    local_done = run_resilience(
        "certify",
        "--profile",
        PROFILE,
        "--run-time",
        RUN_SECONDS,
        "--reports-dir",
        str(tmp_path / "local"),
        env=live_sandbox.env(),
        timeout=240,
    )
    command = resilience_command(
        "certify",
        "--profile",
        PROFILE,
        "--run-time",
        RUN_SECONDS,
        "--on-cluster",
        "--workers",
        "2",
        "--reports-dir",
        str(tmp_path / "cluster"),
    )
    seen: set[str] = set()
    with subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=live_sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as certify:
        try:
            give_up = time.monotonic() + 400
            while certify.poll() is None and time.monotonic() < give_up:
                seen |= load_pods(live_sandbox.api)
                time.sleep(1.0)
            output, _ = certify.communicate(timeout=60)
        finally:
            certify.kill()
    assert len([p for p in seen if p.startswith("locust-worker-")]) >= 2, (seen, output)
    assert load_pods(live_sandbox.api) == set(), "the run's pods outlived it"
    local, remote = certificate_in(tmp_path / "local"), certificate_in(tmp_path / "cluster")
    assert certify.returncode == local_done.returncode, output + local_done.stdout
    assert remote["verdict"] == local["verdict"] == "PASS", output
    assert [(s["name"], s["status"]) for s in remote["slos"]] == [
        (s["name"], s["status"]) for s in local["slos"]
    ]
    assert remote["problems"] == local["problems"] == []
    difference = abs(remote["windows"]["all"]["requests"] - local["windows"]["all"]["requests"])
    assert difference <= request_tolerance(local, remote), (local["windows"], remote["windows"])
    out_dir = Path(remote["run"]["out_dir"])
    for artifact in remote["run"]["artifacts"].values():
        assert (out_dir / artifact).is_file(), artifact
