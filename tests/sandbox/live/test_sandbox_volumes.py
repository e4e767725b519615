"""Pod volumes on a sandbox, through the API: ConfigMap, Secret and emptyDir volumes seen by
a stand-in and by a real process (and its `kubectl exec`), FailedMount for a missing
ConfigMap, and `locustio/locust` serving its web UI on the pod IP from a mounted locustfile."""

from __future__ import annotations

import base64
import os
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from kubernetes import client

from sandbox.kube.podlogs import pod_dir
from tests.sandbox.cluster_harness import SandboxHarness, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pod mounts need root")

LOCUSTFILE = """\
from locust import HttpUser, task


class Idle(HttpUser):
    host = "http://127.0.2.250:9"

    @task
    def nothing(self):
        pass
"""


def core(sandbox: SandboxHarness) -> client.CoreV1Api:
    return client.CoreV1Api(sandbox.api_client())


def configmap(sandbox: SandboxHarness, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name}, "data": data}
    core(sandbox).create_namespaced_config_map(namespace, body)


def pod(
    sandbox: SandboxHarness,
    namespace: str,
    name: str,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    **spec: Any,
) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", **container}], "volumes": volumes, **spec},
    }
    core(sandbox).create_namespaced_pod(namespace, body)


def read(sandbox: SandboxHarness, namespace: str, name: str) -> Any:
    return core(sandbox).read_namespaced_pod(name, namespace)


def phase(sandbox: SandboxHarness, namespace: str, name: str) -> str:
    return str(read(sandbox, namespace, name).status.phase)


def failed_mounts(sandbox: SandboxHarness, namespace: str, name: str) -> list[str]:
    events = core(sandbox).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return [e.message for e in events.items if e.reason == "FailedMount"]


def test_a_busybox_pod_cats_a_configmap_item_from_its_volume(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    configmap(
        sandbox, namespace, "greetings", {"greeting.txt": "hello from a ConfigMap\n", "x": ""}
    )
    script = (
        "cat /mnt/cfg/greeting; test -e /mnt/cfg/x || echo only-the-items; "
        "test -d /mnt/optional && echo optional-is-empty"
    )
    pod(
        sandbox,
        namespace,
        "reader",
        {
            "image": "busybox:1.36",
            "command": ["sh", "-c", script],
            "volumeMounts": [
                {"name": "cfg", "mountPath": "/mnt/cfg"},
                {"name": "optional", "mountPath": "/mnt/optional"},
            ],
        },
        [
            {
                "name": "cfg",
                "configMap": {
                    "name": "greetings",
                    "items": [{"key": "greeting.txt", "path": "greeting"}],
                },
            },
            {"name": "optional", "configMap": {"name": "absent", "optional": True}},
        ],
        restartPolicy="Never",
    )
    wait_for(lambda: phase(sandbox, namespace, "reader") == "Succeeded", 60, "reader done")
    logs = sandbox.kubectl("logs", "-n", namespace, "reader").stdout
    assert logs == "hello from a ConfigMap\nonly-the-items\noptional-is-empty\n"
    assert failed_mounts(sandbox, namespace, "reader") == []


def test_a_missing_configmap_keeps_the_pod_container_creating_until_it_exists(
    sandbox: SandboxHarness,
) -> None:
    namespace = sandbox.new_namespace()
    pod(
        sandbox,
        namespace,
        "waiter",
        {
            "image": "busybox",
            "command": ["cat", "/etc/late/value"],
            "volumeMounts": [{"name": "late", "mountPath": "/etc/late"}],
        },
        [{"name": "late", "configMap": {"name": "late-settings"}}],
        restartPolicy="Never",
    )
    expected = 'MountVolume.SetUp failed for volume "late" : configmap "late-settings" not found'
    assert wait_for(lambda: failed_mounts(sandbox, namespace, "waiter"), 30, "FailedMount") == [
        expected
    ]
    status = read(sandbox, namespace, "waiter").status
    assert status.phase == "Pending" and not status.pod_ip
    waiting = status.container_statuses[0].state.waiting
    assert waiting.reason == "ContainerCreating"
    shown = sandbox.kubectl("get", "pod", "-n", namespace, "waiter", "--no-headers").stdout
    assert "ContainerCreating" in shown

    configmap(sandbox, namespace, "late-settings", {"value": "at last\n"})
    wait_for(lambda: phase(sandbox, namespace, "waiter") == "Succeeded", 60, "waiter done")
    assert sandbox.kubectl("logs", "-n", namespace, "waiter").stdout == "at last\n"


def test_secret_and_empty_dir_volumes_in_a_real_process_seen_by_exec(
    sandbox: SandboxHarness,
) -> None:
    namespace = sandbox.new_namespace()
    mnt_before = sorted(os.listdir("/mnt"))
    secret = {
        "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(b"not-a-real-token").decode()},
    }
    core(sandbox).create_namespaced_secret(namespace, secret)
    pod(
        sandbox,
        namespace,
        "app",
        {
            "image": "sandbox.local/testapp:latest",
            "volumeMounts": [
                {"name": "creds", "mountPath": "/mnt/hf-secret"},
                {"name": "scratch", "mountPath": "/mnt/hf-scratch"},
            ],
        },
        [
            {
                "name": "creds",
                "secret": {
                    "secretName": "creds",
                    "defaultMode": 0o400,
                    "items": [{"key": "token", "path": "api/token"}],
                },
            },
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    wait_for(lambda: phase(sandbox, namespace, "app") == "Running", 60, "app running")
    script = (
        "cat /mnt/hf-secret/api/token; echo; stat -L -c %a /mnt/hf-secret/api/token; "
        "touch /mnt/hf-secret/new 2>/dev/null || echo read-only; "
        "echo kept > /mnt/hf-scratch/f && cat /mnt/hf-scratch/f"
    )
    done = sandbox.kubectl("exec", "-n", namespace, "app", "--", "sh", "-c", script)
    assert done.stdout == "not-a-real-token\n400\nread-only\nkept\n"
    assert sorted(os.listdir("/mnt")) == mnt_before  # nothing made on the host
    uid = read(sandbox, namespace, "app").metadata.uid
    scratch = pod_dir(sandbox.directory, namespace, "app", uid) / "kubernetes.io~empty-dir"
    assert (scratch / "scratch" / "f").read_text() == "kept\n"

    core(sandbox).delete_namespaced_pod("app", namespace, grace_period_seconds=0)
    wait_for(lambda: not (scratch.parent / "kubernetes.io~secret").exists(), 60, "volumes gone")


def test_volumes_at_paths_the_host_lacks_in_a_real_process(sandbox: SandboxHarness) -> None:
    """The game day's mounts: an emptyDir at /reports and API data under /var/run/secrets,
    read and written by the process in its own root; nothing appears on the host."""
    namespace = sandbox.new_namespace()
    configmap(sandbox, namespace, "x", {"greeting": "hello from /var/run/secrets/x\n"})
    host_paths = (Path("/reports"), Path("/run/secrets"), Path("/var/run/secrets/x"))
    before = [path.exists() for path in host_paths]
    code = (
        "import pathlib; "
        "print(pathlib.Path('/var/run/secrets/x/greeting').read_text(), end=''); "
        "pathlib.Path('/reports/report.txt').write_text('written\\n'); "
        "print(sorted(p.name for p in pathlib.Path('/reports').iterdir()))"
    )
    pod(
        sandbox,
        namespace,
        "gameday",
        {
            "image": "ghcr.io/harmonyflow/resilience:0.1.0",
            "command": ["python", "-c", code],
            "securityContext": {"readOnlyRootFilesystem": True},
            "volumeMounts": [
                {"name": "reports", "mountPath": "/reports"},
                {"name": "x", "mountPath": "/var/run/secrets/x"},
            ],
        },
        [{"name": "reports", "emptyDir": {}}, {"name": "x", "configMap": {"name": "x"}}],
        restartPolicy="Never",
    )
    wait_for(lambda: phase(sandbox, namespace, "gameday") == "Succeeded", 60, "pod done")
    logs = sandbox.kubectl("logs", "-n", namespace, "gameday").stdout
    assert logs == "hello from /var/run/secrets/x\n['report.txt']\n"
    uid = read(sandbox, namespace, "gameday").metadata.uid
    reports = pod_dir(sandbox.directory, namespace, "gameday", uid) / "kubernetes.io~empty-dir"
    assert (reports / "reports" / "report.txt").read_text() == "written\n"
    assert [path.exists() for path in host_paths] == before


def locust_pid(pod_name: str) -> int | None:
    for child in psutil.Process().children(recursive=True):
        try:
            if "locust" in child.cmdline() and child.environ().get("HOSTNAME") == pod_name:
                return child.pid
        except psutil.Error:
            continue
    return None


def web_ui(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode() if response.status == 200 else ""
    except OSError:
        return ""


def test_a_locust_master_serves_its_web_ui_on_the_pod_ip(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    configmap(sandbox, namespace, "locustfiles", {"x.py": LOCUSTFILE})
    configmap(sandbox, namespace, "locust-settings", {"LOCUST_LOCUSTFILE": "/mnt/locust/x.py"})
    pod(
        sandbox,
        namespace,
        "master",
        {
            "image": "locustio/locust:2.47.0",
            "args": ["--master"],
            "envFrom": [{"configMapRef": {"name": "locust-settings"}}],
            "ports": [
                {"name": "master", "containerPort": 5557},
                {"name": "web", "containerPort": 8089},
            ],
            "volumeMounts": [{"name": "locustfiles", "mountPath": "/mnt/locust", "readOnly": True}],
        },
        [{"name": "locustfiles", "configMap": {"name": "locustfiles"}}],
    )
    wait_for(lambda: phase(sandbox, namespace, "master") == "Running", 60, "master running")
    found = read(sandbox, namespace, "master")
    ip = found.status.pod_ip
    page = wait_for(lambda: web_ui(f"http://{ip}:8089/"), 60, "Locust's web UI")
    assert "Locust" in page

    pid = locust_pid("master")
    assert pid is not None
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {(ip, 8089), (ip, 5557)}  # the pod IP only, never 0.0.0.0

    done = sandbox.kubectl("exec", "-n", namespace, "master", "--", "cat", "/mnt/locust/x.py")
    assert done.stdout == LOCUSTFILE
    home = Path("/home/locust")
    on_host = home.exists()
    where = sandbox.kubectl("exec", "-n", namespace, "master", "--", "pwd").stdout.strip()
    assert where == "/home/locust"  # the image's WORKDIR, made in the container's root
    assert home.exists() == on_host
    core(sandbox).delete_namespaced_pod("master", namespace, grace_period_seconds=0)
    wait_for(lambda: locust_pid("master") is None, 60, "locust gone")
