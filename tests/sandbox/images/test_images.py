"""The image registry table and the test app's behaviours, one variant at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.images.registry import (
    DEFAULT_REGISTRY,
    IMAGES,
    REPO_ROOT,
    SESSION_STATE,
    TESTAPP,
    ImageNotFoundError,
    ImageRegistry,
    normalize,
)
from sandbox.images.testapp import MAX_BURN_MS, burn
from sandbox.kube.kubelet.ipam import IpAllocator

GOLDEN = Path(__file__).parent / "golden" / "images.txt"
# Apart from the pod ranges, and claimed like a pod address so that parallel runs do not collide.
HOST = IpAllocator(real=tuple(f"127.0.9.{i}" for i in range(1, 255))).allocate("test_images")


def render_table() -> str:
    return "".join(
        f"{image.reference}  {'virtual' if image.virtual else ' '.join(image.args)}"
        f"  # {image.description}\n"
        for image in IMAGES
    )


def test_registry_table_matches_golden_file() -> None:
    """Regenerate with UPDATE_GOLDEN=1 after a deliberate change to the table."""
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(render_table(), encoding="utf-8")
    assert render_table() == GOLDEN.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("reference", "variant"),
    [
        pytest.param(f"{TESTAPP}:healthy", "healthy", id="healthy"),
        pytest.param(f"{TESTAPP}:never-ready", "never-ready", id="never-ready"),
        pytest.param(f"{TESTAPP}:liveness-hang", "liveness-hang", id="liveness-hang"),
        pytest.param(f"{TESTAPP}:crash", "crash", id="crash"),
        pytest.param(f"{TESTAPP}:slow-start", "slow-start", id="slow-start"),
        pytest.param(f"{TESTAPP}:ignore-sigterm", "ignore-sigterm", id="ignore-sigterm"),
        pytest.param("sandbox.local/testapp:latest", "healthy", id="generic"),
        pytest.param("sandbox.local/testapp", "healthy", id="implied-latest"),
    ],
)
def test_testapp_images(reference: str, variant: str) -> None:
    image = DEFAULT_REGISTRY.lookup(reference)
    assert image.argv({}) == [sys.executable, "-m", "sandbox.images.testapp", "--variant", variant]
    assert image.description and not image.virtual
    assert image.image_env()["PYTHONPATH"] == str(REPO_ROOT)


def test_virtual_image_runs_nothing() -> None:
    image = DEFAULT_REGISTRY.lookup("sandbox.local/virtual:latest")
    assert image.virtual
    with pytest.raises(ValueError, match="virtual"):
        image.argv({})


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param(f"{SESSION_STATE}:9.9.9", id="missing-tag"),
        pytest.param("redis", id="not-in-table"),
        pytest.param(f"{SESSION_STATE}@sha256:abc", id="digest"),
    ],
)
def test_unknown_image_is_not_found(reference: str) -> None:
    with pytest.raises(ImageNotFoundError, match="not found") as caught:
        DEFAULT_REGISTRY.lookup(reference)
    assert caught.value.reference == reference


@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        pytest.param("nginx", "docker.io/library/nginx:latest", id="library"),
        pytest.param("bitnami/redis:7", "docker.io/bitnami/redis:7", id="docker-hub-user"),
        pytest.param("ghcr.io/a/b:1", "ghcr.io/a/b:1", id="registry-host"),
        pytest.param("localhost:5000/a", "localhost:5000/a:latest", id="port-not-a-tag"),
    ],
)
def test_normalize(reference: str, normalized: str) -> None:
    assert normalize(reference) == normalized


def test_image_id_is_a_stable_digest_of_the_repository() -> None:
    image = DEFAULT_REGISTRY.lookup(f"{SESSION_STATE}:1.0.0")
    assert image.image_id.startswith(f"{SESSION_STATE}@sha256:")
    assert image.image_id == ImageRegistry().lookup(f"{SESSION_STATE}:1.0.0").image_id


def test_args_expand_from_pod_env() -> None:
    image = IMAGES[0].__class__("x:1", "d", "m", ("--host", "$(POD_IP)", "$(UNSET)"))
    assert image.argv({"POD_IP": "127.0.2.5"})[-2:] == ["127.0.2.5", "$(UNSET)"]


def test_burn_is_bounded() -> None:
    assert (burn(-5), burn(1), MAX_BURN_MS) == (0, 1, 5000)


# ---- the test app as a process ----


@pytest.fixture
def start_app() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(variant: str, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.images.testapp", "--variant", variant],
            env={**os.environ, "POD_IP": HOST, "DRAIN_DELAY_SECONDS": "0.3", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT,
        )
        started.append(process)
        wait_listening(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def get(path: str, port: int = 8080, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_listening(process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            get("/health/live", timeout=0.5)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"testapp did not listen on {HOST}:8080 (exit {process.poll()})")


def test_healthy_app_serves_its_routes_on_both_ports(
    start_app: Callable[..., subprocess.Popen[str]],
) -> None:
    process = start_app("healthy")
    assert get("/health/live")[0] == get("/health/ready")[0] == 200
    assert json.loads(get("/api/v1/ping")[1])["pong"] is True
    assert json.loads(get("/burn?ms=20")[1]) == {"burnt_ms": 20}
    assert json.loads(get("/alloc?mb=2")[1]) == {"held_mb": 2}
    assert get("/ws", port=8443)[0] == get("/health/ready", port=8443)[0] == 200
    assert get("/nope")[0] == 404
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert process.stdout is not None
    output = process.stdout.read()
    assert output.count('"GET /health/ready HTTP/1.1" 200') == 2
    assert "SIGTERM received" in output


@pytest.mark.parametrize(
    ("port", "answer"),
    [
        pytest.param(8443, {"connected": True}, id="a-listening-http-server-connects"),
        pytest.param(9, {"error": "ConnectionRefusedError"}, id="a-closed-port-is-refused"),
    ],
)
def test_probe_connect_only_opens_a_connection(
    start_app: Callable[..., subprocess.Popen[str]], port: int, answer: dict[str, object]
) -> None:
    """`proto=connect` works toward a server that does not echo (NetworkPolicy's live test
    connects to the pods' HTTP ports) and names what failed."""
    start_app("healthy")
    status, body = get(f"/probe?proto=connect&host={HOST}&port={port}&timeout=1")
    found = json.loads(body)
    assert status == 200
    assert {key: found[key] for key in answer} == answer, found


def test_probe_http_answers_who_answered_and_a_name_is_resolved_first(
    start_app: Callable[..., subprocess.Popen[str]],
) -> None:
    """`proto=http` GETs a path on a new connection (a Service's live test asks which pod
    answered); `host` may be a name, resolved as the pod resolves names."""
    start_app("healthy", HOSTNAME="probe-pod")
    status, body = get(f"/probe?proto=http&host={HOST}&port=8080&path=/api/v1/ping")
    found = json.loads(body)
    assert status == 200
    assert (found["status"], found["body"]["pod"], found["address"]) == (200, "probe-pod", HOST)
    by_name = json.loads(get("/probe?proto=connect&host=localhost&port=9&timeout=1")[1])
    assert (by_name["address"], by_name["error"]) == ("127.0.0.1", "ConnectionRefusedError")


def test_readiness_fails_while_draining(start_app: Callable[..., subprocess.Popen[str]]) -> None:
    process = start_app("healthy", DRAIN_DELAY_SECONDS="2")
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert get("/health/ready")[0] == 503
    assert get("/health/live")[0] == 200
    started = time.monotonic()
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5


def test_never_ready(start_app: Callable[..., subprocess.Popen[str]]) -> None:
    start_app("never-ready")
    assert (get("/health/ready")[0], get("/health/live")[0]) == (503, 200)


def test_slow_start(start_app: Callable[..., subprocess.Popen[str]]) -> None:
    start_app("slow-start", STARTUP_SECONDS="1.5")
    assert get("/health/ready")[0] == 503
    time.sleep(1.6)
    assert get("/health/ready")[0] == 200


def test_liveness_hang(start_app: Callable[..., subprocess.Popen[str]]) -> None:
    start_app("liveness-hang", HANG_AFTER_SECONDS="0.5")
    time.sleep(0.6)
    with pytest.raises(TimeoutError):
        get("/health/live", timeout=0.5)


def test_crash_exits_one_after_two_seconds(start_app: Callable[..., subprocess.Popen[str]]) -> None:
    process = start_app("crash")
    assert process.wait(timeout=10) == 1


def test_ignore_sigterm(start_app: Callable[..., subprocess.Popen[str]]) -> None:
    process = start_app("ignore-sigterm")
    process.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert process.poll() is None and get("/health/ready")[0] == 200
    process.kill()
    assert process.wait(timeout=10) == -signal.SIGKILL
