"""Pod lifecycles on a real kubelet: real testapp processes on 127.0.2.x, a real Store."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from pathlib import Path
from typing import Any

from sandbox.images.registry import SESSION_STATE, TESTAPP
from sandbox.kube.kubelet.ipam import IpAllocator
from sandbox.kube.podlogs import log_file, render_records
from tests.sandbox.kubelet.kubelet_harness import (
    NAMESPACE,
    Cluster,
    container,
    env,
    http_probe,
    run_cluster,
    wait_for,
)

READY_PROBE = http_probe("/health/ready")


def is_ready(cluster: Cluster, name: str) -> bool:
    return bool(cluster.container_status(name).get("ready"))


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_pod_becomes_running_and_ready_and_logs_land_in_the_log_file(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.store.create(
            "secrets",
            {
                "metadata": {"name": "creds", "namespace": NAMESPACE},
                "stringData": {"SECRET_TOKEN": "t0k3n"},
            },
        )
        cluster.create_pod(
            "web",
            container(
                readinessProbe=READY_PROBE,
                livenessProbe=http_probe("/health/live"),
                envFrom=[{"secretRef": {"name": "creds"}}],
                env=[
                    *env(LOG_LEVEL="info"),
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                ],
            ),
        )
        await wait_for(lambda: is_ready(cluster, "web"), 20, "web ready")
        pod = cluster.pod("web") or {}
        status = pod["status"]
        assert status["phase"] == "Running"
        assert status["podIP"].startswith("127.0.2.")
        assert status["hostIP"] == cluster.kubelet.config.internal_ip
        ready = {c["type"]: c["status"] for c in status["conditions"]}
        assert ready == dict.fromkeys(
            (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ),
            "True",
        )
        answer = await asyncio.to_thread(get, f"http://{status['podIP']}:8080/api/v1/ping")
        assert '"pod": "web"' in answer
        (pid,) = cluster.pids()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"SECRET_TOKEN=t0k3n" in environ and b"LOG_LEVEL=info" in environ
        assert f"POD_IP={status['podIP']}".encode() in environ
        path = log_file(cluster.state_dir, NAMESPACE, "web", pod["metadata"]["uid"], "app", 0)
        logs = await wait_for(
            lambda: "GET /api/v1/ping" in path.read_text() and path.read_text(),
            5,
            "the request in the log file",
        )
        assert "GET /api/v1/ping" in render_records(logs.splitlines(), timestamps=False)
        reasons = {e["reason"] for e in cluster.store.list("events")}
        assert {"Pulling", "Pulled", "Created", "Started"} <= reasons
        sample = await wait_for(
            lambda: cluster.kubelet.ctx.metrics.pod(NAMESPACE, "web"), 5, "a metrics sample"
        )
        assert sample.memory_bytes > 1_000_000
        cluster.store.delete("pods", NAMESPACE, "web")
        await wait_for(lambda: cluster.pod("web") is None, 15, "web removed")

    run_cluster(tmp_path, body)


def test_liveness_hang_is_restarted(tmp_path: Path) -> None:
    period, threshold, timeout, slack = 1, 2, 1, 6

    async def body(cluster: Cluster) -> None:
        cluster.create_pod(
            "hang",
            container(
                image=f"{TESTAPP}:liveness-hang",
                env=env(HANG_AFTER_SECONDS="3", DRAIN_DELAY_SECONDS="0.2"),
                livenessProbe=http_probe("/health/live", period, threshold, timeout),
            ),
            terminationGracePeriodSeconds=2,
        )
        await wait_for(
            lambda: "running" in cluster.container_status("hang").get("state", {}),
            20,
            "hang running",
        )
        hang_started = time.monotonic() + 3
        status = await wait_for(
            lambda: (
                cluster.container_status("hang").get("restartCount", 0) >= 1
                and cluster.container_status("hang")
            ),
            30,
            "a restart",
        )
        elapsed = time.monotonic() - hang_started
        assert elapsed < period * threshold + timeout + slack
        assert "running" in status["state"]
        assert status["lastState"]["terminated"]["reason"] in ("Completed", "Error")
        killing = [e["message"] for e in cluster.events("Killing")]
        assert "Container app failed liveness probe, will be restarted" in killing
        assert any(
            e["message"].startswith("Liveness probe failed:") for e in cluster.events("Unhealthy")
        )
        cluster.store.delete("pods", NAMESPACE, "hang", grace_period_seconds=1)
        await wait_for(lambda: cluster.pod("hang") is None, 15, "hang removed")

    run_cluster(tmp_path, body)


def test_never_ready_pod_stays_running_without_restarts(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod(
            "nr",
            container(
                image=f"{TESTAPP}:never-ready",
                readinessProbe=READY_PROBE,
                livenessProbe=http_probe("/health/live"),
            ),
        )

        def failures_503() -> int:
            return sum(
                e["count"]
                for e in cluster.events("Unhealthy")
                if e["message"].endswith("statuscode: 503")
            )

        await wait_for(lambda: failures_503() >= 4, 20, "four readiness probes answered 503")
        pod = cluster.pod("nr") or {}
        status = cluster.container_status("nr")
        assert pod["status"]["phase"] == "Running"
        assert (status["ready"], status["started"], status["restartCount"]) == (False, True, 0)
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
        assert not cluster.events("Killing")  # not ready is no reason to restart
        cluster.store.delete("pods", NAMESPACE, "nr")
        await wait_for(lambda: cluster.pod("nr") is None, 15, "nr removed")

    run_cluster(tmp_path, body)


def test_graceful_delete_sends_sigterm_and_removes_the_pod(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        pod = cluster.create_pod("bye", container(readinessProbe=READY_PROBE))
        await wait_for(lambda: is_ready(cluster, "bye"), 20, "bye ready")
        began = time.monotonic()
        deleted = cluster.store.delete("pods", NAMESPACE, "bye")
        assert deleted["metadata"]["deletionGracePeriodSeconds"] == 30
        await wait_for(lambda: cluster.pod("bye") is None, 15, "bye removed")
        assert time.monotonic() - began < 10  # the app drains and exits; no 30 s wait
        path = log_file(cluster.state_dir, NAMESPACE, "bye", pod["metadata"]["uid"], "app", 0)
        assert "SIGTERM received" in path.read_text()
        final = cluster.statuses_of("bye")[-1]
        terminated = final["containerStatuses"][0]["state"]["terminated"]
        assert (final["phase"], terminated["exitCode"], terminated["reason"]) == (
            "Succeeded",
            0,
            "Completed",
        )
        assert [e["message"] for e in cluster.events("Killing")] == ["Stopping container app"]
        assert cluster.pids() == set()

    run_cluster(tmp_path, body)


def test_ignore_sigterm_is_killed_when_the_grace_period_ends(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod(
            "stubborn",
            container(image=f"{TESTAPP}:ignore-sigterm", readinessProbe=READY_PROBE),
        )
        await wait_for(lambda: is_ready(cluster, "stubborn"), 20, "stubborn ready")
        began = time.monotonic()
        cluster.store.delete("pods", NAMESPACE, "stubborn", grace_period_seconds=2)
        await wait_for(lambda: cluster.pod("stubborn") is None, 15, "stubborn removed")
        assert 1.8 < time.monotonic() - began < 5
        final = cluster.statuses_of("stubborn")[-1]
        terminated = final["containerStatuses"][0]["state"]["terminated"]
        assert (final["phase"], terminated["exitCode"]) == ("Failed", 137)

    run_cluster(tmp_path, body)


def test_unknown_image_shows_err_image_pull_then_image_pull_back_off(tmp_path: Path) -> None:
    image = f"{SESSION_STATE}:9.9.9"

    def waiting_reasons(cluster: Cluster) -> list[str]:
        reasons: list[str] = []
        for status in cluster.statuses_of("missing"):
            for container_status in status.get("containerStatuses") or []:
                reason = container_status["state"].get("waiting", {}).get("reason")
                if reason and (not reasons or reasons[-1] != reason):
                    reasons.append(reason)
        return reasons

    async def body(cluster: Cluster) -> None:
        cluster.create_pod("missing", container(image=image))
        await wait_for(
            lambda: (
                waiting_reasons(cluster)[-3:]
                == ["ErrImagePull", "ImagePullBackOff", "ErrImagePull"]
            ),
            20,
            "pull, back-off, pull",
        )
        assert waiting_reasons(cluster)[:2] == ["ContainerCreating", "ErrImagePull"]
        assert (cluster.pod("missing") or {})["status"]["phase"] == "Pending"
        messages = {e["message"] for e in cluster.events("Failed")}
        assert {"Error: ErrImagePull", "Error: ImagePullBackOff"} <= messages
        assert any(
            m.startswith(f'Failed to pull image "{image}"') and m.endswith("not found")
            for m in messages
        )
        assert [e["message"] for e in cluster.events("BackOff")] == [
            f'Back-off pulling image "{image}"'
        ]
        cluster.store.delete("pods", NAMESPACE, "missing")
        await wait_for(lambda: cluster.pod("missing") is None, 10, "missing removed")

    run_cluster(tmp_path, body)


def test_crash_loop_back_off(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("crash", container(image=f"{TESTAPP}:crash"))
        status = await wait_for(
            lambda: (
                cluster.container_status("crash").get("restartCount", 0) >= 2
                and cluster.container_status("crash")
            ),
            30,
            "two restarts",
        )
        last = status["lastState"]["terminated"]
        assert (last["exitCode"], last["reason"]) == (1, "Error")
        waiting = [
            s["containerStatuses"][0]["state"]["waiting"]
            for s in cluster.statuses_of("crash")
            if s.get("containerStatuses") and "waiting" in s["containerStatuses"][0]["state"]
        ]
        loops = [w for w in waiting if w["reason"] == "CrashLoopBackOff"]
        assert loops and loops[0]["message"].startswith(
            "back-off 1s restarting failed container=app"
        )
        assert (cluster.pod("crash") or {})["status"]["phase"] == "Running"
        assert cluster.events("BackOff")
        cluster.store.delete("pods", NAMESPACE, "crash")
        await wait_for(lambda: cluster.pod("crash") is None, 15, "crash removed")

    run_cluster(tmp_path, body)


def test_restart_policy_never_ends_failed_and_stays(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("once", container(image=f"{TESTAPP}:crash"), restartPolicy="Never")
        pod = await wait_for(
            lambda: (
                (cluster.pod("once") or {}).get("status", {}).get("phase") == "Failed"
                and cluster.pod("once")
            ),
            20,
            "once Failed",
        )
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
        await asyncio.sleep(1.5)
        assert cluster.pod("once") is not None
        cluster.store.delete("pods", NAMESPACE, "once")  # terminal: removed at once
        assert cluster.pod("once") is None

    run_cluster(tmp_path, body)


def test_force_delete_stops_the_processes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("forced", container(readinessProbe=READY_PROBE))
        await wait_for(lambda: is_ready(cluster, "forced"), 20, "forced ready")
        cluster.store.delete("pods", NAMESPACE, "forced", grace_period_seconds=0)
        assert cluster.pod("forced") is None
        await wait_for(lambda: not cluster.pids(), 10, "the process gone")

    run_cluster(tmp_path, body)


def test_startup_probe_gates_readiness_and_liveness(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod(
            "slow",
            container(
                image=f"{TESTAPP}:slow-start",
                env=env(STARTUP_SECONDS="3"),
                startupProbe=http_probe("/health/ready", failure=10),
                readinessProbe=READY_PROBE,
                livenessProbe=http_probe("/health/live"),
            ),
        )
        await wait_for(
            lambda: "running" in cluster.container_status("slow").get("state", {}),
            20,
            "slow running",
        )
        status = cluster.container_status("slow")
        assert (status["started"], status["ready"]) == (False, False)
        await wait_for(lambda: is_ready(cluster, "slow"), 20, "slow ready")
        assert cluster.container_status("slow")["restartCount"] == 0
        assert any(
            e["message"].startswith("Startup probe failed") for e in cluster.events("Unhealthy")
        )
        cluster.store.delete("pods", NAMESPACE, "slow")
        await wait_for(lambda: cluster.pod("slow") is None, 15, "slow removed")

    run_cluster(tmp_path, body)


def test_memory_over_the_limit_is_oom_killed(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod(
            "hog",
            container(readinessProbe=READY_PROBE, resources={"limits": {"memory": "64Mi"}}),
            restartPolicy="Never",
        )
        await wait_for(lambda: is_ready(cluster, "hog"), 20, "hog ready")
        ip = (cluster.pod("hog") or {})["status"]["podIP"]
        with contextlib.suppress(OSError):  # the answer may or may not beat the OOM kill
            await asyncio.to_thread(get, f"http://{ip}:8080/alloc?mb=200")
        pod = await wait_for(
            lambda: (
                (cluster.pod("hog") or {}).get("status", {}).get("phase") == "Failed"
                and cluster.pod("hog")
            ),
            10,
            "hog Failed",
        )
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
        cluster.store.delete("pods", NAMESPACE, "hog")

    run_cluster(tmp_path, body)


def test_exhausted_addresses_report_failed_create_pod_sandbox(tmp_path: Path) -> None:
    virtual = container(image="sandbox.local/virtual:latest")

    async def body(cluster: Cluster) -> None:
        cluster.create_pod("first", virtual)
        await wait_for(lambda: is_ready(cluster, "first"), 10, "first ready")
        cluster.create_pod("second", virtual)
        event = await wait_for(lambda: cluster.events("FailedCreatePodSandBox"), 10, "the event")
        assert "no IP addresses available" in event[0]["message"]
        second: dict[str, Any] = cluster.pod("second") or {}
        assert second["status"]["phase"] == "Pending" and "podIP" not in second["status"]
        for name in ("first", "second"):
            cluster.store.delete("pods", NAMESPACE, name)
        await wait_for(lambda: not cluster.store.list("pods"), 10, "pods removed")

    run_cluster(tmp_path, body, ipam=IpAllocator(virtual=("127.1.0.1",)))


def test_virtual_pods_are_running_and_ready_at_once(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        for index in range(40):
            cluster.create_pod(
                f"v{index}", container(image="sandbox.local/virtual:latest"), node=index % 4
            )
        await wait_for(
            lambda: all(is_ready(cluster, f"v{i}") for i in range(40)), 10, "40 virtual pods ready"
        )
        ips = {(cluster.pod(f"v{i}") or {})["status"]["podIP"] for i in range(40)}
        assert len(ips) == 40 and all(ip.startswith("127.1.") for ip in ips)
        assert not cluster.pids()
        for index in range(40):
            cluster.store.delete("pods", NAMESPACE, f"v{index}")
        await wait_for(lambda: not cluster.store.list("pods"), 10, "virtual pods removed")

    run_cluster(tmp_path, body, nodes=4)


def test_a_thousand_virtual_pods_on_a_hundred_nodes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        began = time.monotonic()
        for index in range(1000):
            cluster.create_pod(
                f"v{index}", container(image="sandbox.local/virtual:latest"), node=index % 100
            )
        await wait_for(
            lambda: (
                sum(
                    1
                    for p in cluster.store.list("pods")
                    if p["status"].get("containerStatuses")
                    and p["status"]["containerStatuses"][0]["ready"]
                )
                == 1000
            ),
            120,
            "1000 pods ready",
        )
        assert time.monotonic() - began < 60
        assert len(cluster.store.list("coordination.k8s.io/leases", "kube-node-lease")) == 100

    run_cluster(tmp_path, body, nodes=100)
