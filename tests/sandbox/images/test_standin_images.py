"""The public-image stand-ins on a real kubelet: busybox, pause, nginx, unknown images."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sandbox.images.registry import DEFAULT_REGISTRY, ImageNotFoundError, container_argv
from sandbox.kube.podlogs import log_file, render_records
from tests.sandbox.kubelet.kubelet_harness import NAMESPACE, Cluster, run_cluster, wait_for


@pytest.mark.parametrize(
    ("reference", "standin"),
    [
        pytest.param("registry.k8s.io/pause:3.9", "pause", id="pause"),
        pytest.param("nginx", "nginx", id="nginx-bare"),
        pytest.param("nginx:1.25-alpine", "nginx", id="nginx-tag"),
        pytest.param("docker.io/library/busybox:1.36", "shell", id="busybox-full"),
        pytest.param("busybox@sha256:" + "0" * 64, "shell", id="busybox-digest"),
        pytest.param("python:3.12-slim", "shell", id="python"),
    ],
)
def test_public_references_resolve_to_their_stand_in(reference: str, standin: str) -> None:
    image = DEFAULT_REGISTRY.lookup(reference)
    assert image.standin == standin
    assert image.image_id.startswith(image.reference.split("@")[0].rsplit(":", 1)[0] + "@sha256:")


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("redis:7", id="other-public"),
        pytest.param("quay.io/nginx:1", id="other-registry"),
        pytest.param("registry.k8s.io/pause-x:1", id="similar-name"),
    ],
)
def test_other_images_are_still_not_found(reference: str) -> None:
    with pytest.raises(ImageNotFoundError):
        DEFAULT_REGISTRY.lookup(reference)


def test_stand_in_argv_runs_the_container_command_isolated() -> None:
    image = DEFAULT_REGISTRY.lookup("busybox:1.36")
    argv = image.argv({}, ["sh", "-c", "echo hi"], [], Path("/r"))
    assert argv[1:3] == ["-I", "-u"]
    assert argv[-6:] == ["shell", "/r", "--", "sh", "-c", "echo hi"]
    assert "PYTHONPATH" not in image.image_env()
    assert container_argv((), ("sh",), (), ("-c", "x")) == ["-c", "x"]


def spec(image: str, **extra: object) -> dict[str, object]:
    return {"name": "main", "image": image, **extra}


def log_text(cluster: Cluster, name: str) -> str:
    pod = cluster.pod(name) or {}
    path = log_file(cluster.state_dir, NAMESPACE, name, pod["metadata"]["uid"], "main", 0)
    return render_records(path.read_text().splitlines(keepends=True), timestamps=False)


def test_busybox_script_fails_with_its_exit_code_and_logs(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        command = ["sh", "-c", "echo hi; echo $GREETING from $(POD_NAME); exit 3"]
        env = [{"name": "GREETING", "value": "hello"}, {"name": "POD_NAME", "value": "bb"}]
        cluster.create_pod(
            "bb", spec("busybox:1.36", command=command, env=env), restartPolicy="Never"
        )
        pod = await wait_for(
            lambda: (
                (cluster.pod("bb") or {}).get("status", {}).get("phase") == "Failed"
                and cluster.pod("bb")
            ),
            20,
            "bb Failed",
        )
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert log_text(cluster, "bb") == "hi\nhello from bb\n"
        cluster.store.delete("pods", NAMESPACE, "bb")

    run_cluster(tmp_path, body)


def test_pause_runs_until_deleted_and_nginx_answers_on_its_pod_ip(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("pause", spec("registry.k8s.io/pause:3.10"))
        cluster.create_pod("web", spec("nginx:1.27", ports=[{"containerPort": 80}]))
        for name in ("pause", "web"):
            await wait_for(
                lambda n=name: cluster.container_status(n).get("ready"), 20, f"{name} ready"
            )
        ip = (cluster.pod("web") or {})["status"]["podIP"]
        assert ip.startswith("127.")
        body = await wait_for(lambda: fetch(f"http://{ip}/"), 10, "welcome page")
        assert "<title>Welcome to nginx!</title>" in body
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://{ip}/nope", timeout=5)
        assert missing.value.code == 404
        assert missing.value.headers["Server"].startswith("nginx/")
        other_ip = (cluster.pod("pause") or {})["status"]["podIP"]
        with pytest.raises(OSError):  # bound to its own pod IP only, not 0.0.0.0
            urllib.request.urlopen(f"http://{other_ip}:80/", timeout=2)
        await wait_for(
            lambda: '"GET / HTTP/1.1" 200 615' in log_text(cluster, "web"), 5, "access line"
        )
        assert cluster.container_status("pause")["state"].get("running")
        for name in ("pause", "web"):
            cluster.store.delete("pods", NAMESPACE, name, grace_period_seconds=5)
        await wait_for(lambda: not cluster.store.list("pods"), 10, "pods removed")
        codes = [
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"]
            for n in ("pause", "web")
            for s in cluster.statuses_of(n)[-1:]
            if "terminated" in s["containerStatuses"][0]["state"]
        ]
        assert codes == [0, 0]

    run_cluster(tmp_path, body)


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_unknown_public_image_gets_err_image_pull(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("redis", spec("redis:7"))
        waiting = await wait_for(
            lambda: (
                cluster.container_status("redis").get("state", {}).get("waiting", {}).get("reason")
                == "ErrImagePull"
                and cluster.container_status("redis")["state"]["waiting"]
            ),
            10,
            "ErrImagePull",
        )
        assert waiting["message"].endswith("docker.io/library/redis:7: not found") or (
            "redis:7: not found" in waiting["message"]
        )
        cluster.store.delete("pods", NAMESPACE, "redis")

    run_cluster(tmp_path, body)
