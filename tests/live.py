"""A whole sandbox started the way users start it (`resilience sandbox up`), for live tests.

Everything reaches it through its kubeconfig, its ingress URL and its AWS endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from resilience.targets.live import terminating_pods
from tests.builders import REPO_ROOT
from tests.sandbox.cluster_harness import wait_for
from tests.sandbox.live.traffic import request

NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"


@dataclass
class LiveSandbox:
    state: Path
    ingress: str
    api: client.ApiClient
    exports: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.ingress.replace("http://", "ws://") + "/ws"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.state / "kubeconfig"),
            "KUBECACHEDIR": str(self.state / "kubecache"),
        }

    def kubectl(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            ["kubectl", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def set_image(self, tag: str) -> None:
        self.kubectl(
            "set",
            "image",
            f"deploy/{DEPLOYMENT}",
            "-n",
            NAMESPACE,
            f"{DEPLOYMENT}=ghcr.io/harmonyflow/session-state:{tag}",
        )
        self.kubectl("rollout", "status", f"deploy/{DEPLOYMENT}", "-n", NAMESPACE, "--timeout=180s")
        # `rollout status` returns while the old pods still shut down
        wait_for(
            lambda: only_pods_of(self.pods(), f"ghcr.io/harmonyflow/session-state:{tag}"),
            60,
            f"the pods of images other than {tag} to be gone",
        )

    def pods(self) -> list[Any]:
        return (
            client.CoreV1Api(self.api)
            .list_namespaced_pod(NAMESPACE, label_selector=f"app={DEPLOYMENT}")
            .items
        )


def only_pods_of(pods: list[Any], image: str) -> bool:
    """Every pod runs `image` and none is terminating: the next test cannot meet the
    previous image (a terminating pod still takes requests until nginx drops it)."""
    return not terminating_pods(pods) and all(
        [c.image for c in p.spec.containers] == [image] for p in pods
    )


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARMONYFLOW_SANDBOX_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "resilience.cli", "sandbox", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )


def started(state: Path, flags: list[str]) -> Iterator[LiveSandbox]:
    """`sandbox up` with `flags`, yield it, and `sandbox down` whatever happens."""
    up = cli(state, "up", *flags)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in cli(state, "env").stdout.splitlines()
        )
        api = config.new_client_from_config(config_file=exports["KUBECONFIG"])
        yield LiveSandbox(state, exports["HARMONYFLOW_INGRESS_URL"], api, exports)
    finally:
        cli(state, "down")


def create_sessions(live: LiveSandbox, count: int) -> list[str]:
    ids = []
    for index in range(count):
        status, body = request(
            live.ingress,
            "POST",
            "/api/v1/sessions",
            {"owner": "test", "state": {"n": 0, "i": index}},
        )
        assert status == 201, body
        ids.append(body["id"])
    return ids
