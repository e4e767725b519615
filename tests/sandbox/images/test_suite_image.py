"""`ghcr.io/harmonyflow/resilience:*`: the suite's own image, run as its Dockerfile builds it
(the project at /app, ENTRYPOINT resilience, CMD gameday --plain), in a pod of the sandbox."""

from __future__ import annotations

import doctest
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sandbox.images import registry, suite
from sandbox.images.registry import DEFAULT_REGISTRY, REPO_ROOT
from tests.sandbox.cluster_harness import SandboxHarness, wait_for

IMAGE = "ghcr.io/harmonyflow/resilience:0.1.0"
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def dockerfile_json(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} \[(.*)\]$", DOCKERFILE, re.MULTILINE)
    assert match is not None, instruction
    return [word.strip().strip('"') for word in match.group(1).split(",")]


def test_the_image_is_the_dockerfiles() -> None:
    image = DEFAULT_REGISTRY.lookup(IMAGE)
    assert list(image.entrypoint) == dockerfile_json("ENTRYPOINT")
    assert list(image.cmd) == dockerfile_json("CMD")
    assert f"WORKDIR {image.workdir}" in DOCKERFILE
    env = image.image_env()
    for name in ("HOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"):
        assert f"{name}={env[name]}" in DOCKERFILE
    assert env["PATH"].split(":")[0] == str(suite.SCRIPTS)
    assert image.content == (("/app", str(REPO_ROOT)),)


def test_its_tag_is_the_projects_version_and_any_tag_runs_it() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == registry.PROJECT_VERSION
    assert IMAGE in DEFAULT_REGISTRY.references()
    other = DEFAULT_REGISTRY.lookup("ghcr.io/harmonyflow/resilience:nightly")
    assert other.reference.endswith(":nightly") and other.launcher is suite.launch


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        pytest.param([], [], ["resilience", "gameday", "--plain"], id="entrypoint-and-cmd"),
        pytest.param([], ["--version"], ["resilience", "--version"], id="args-replace-cmd"),
        pytest.param(
            ["/app/deploy/gameday/in-cluster.sh"],
            [],
            ["/app/deploy/gameday/in-cluster.sh"],
            id="command-replaces-entrypoint-and-drops-cmd",
        ),
    ],
)
def test_command_and_args_as_kubernetes_says(
    command: list[str], args: list[str], expected: list[str]
) -> None:
    assert DEFAULT_REGISTRY.lookup(IMAGE).argv({}, command, args) == expected


def test_an_empty_argv_is_no_command() -> None:
    with pytest.raises(FileNotFoundError, match="no command specified"):
        suite.launch([], {})


def test_the_worked_example_holds() -> None:
    assert doctest.testmod(suite).failed == 0


# ---- in a pod ----

live = pytest.mark.skipif(os.geteuid() != 0, reason="a container's own root needs root")


def run_pod(sandbox: SandboxHarness, container: dict[str, Any], **spec: Any) -> tuple[str, str]:
    namespace = sandbox.new_namespace()
    api = client.CoreV1Api(sandbox.api_client())
    body = {
        "metadata": {"name": "suite"},
        "spec": {
            "containers": [{"name": "gameday", "image": IMAGE, **container}],
            "restartPolicy": "Never",
            **spec,
        },
    }
    api.create_namespaced_pod(namespace, body)

    def finished() -> str:
        phase = str(api.read_namespaced_pod("suite", namespace).status.phase)
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = wait_for(finished, 90, "the pod to finish")
    return phase, sandbox.kubectl("logs", "-n", namespace, "suite").stdout


@live
def test_a_pod_of_the_suite_prints_its_version(sandbox: SandboxHarness) -> None:
    assert run_pod(sandbox, {"args": ["--version"]}) == ("Succeeded", "resilience 0.1.0\n")


@live
def test_a_pod_of_the_suite_runs_in_app_with_the_images_environment(
    sandbox: SandboxHarness,
) -> None:
    script = (
        "import os, shutil, resilience; "
        "print(os.getcwd(), os.environ['HOME'], resilience.__file__); "
        "print(shutil.which('resilience') is not None, shutil.which('kubectl'))"
    )
    phase, logs = run_pod(sandbox, {"command": ["python", "-c", script]})
    assert (phase, logs) == (
        "Succeeded",
        "/app /tmp /app/resilience/__init__.py\nTrue /usr/bin/kubectl\n",
    )
    assert not Path("/app").exists()
