"""deploy/locust renders, and ships every locustfile module (no drift from loadtests/)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.builders import REPO_ROOT
from tests.load.locustrun import LOADTESTS

# Rendering must never contact a cluster: the kubectl dispatcher asks for /version.
ISOLATED = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def render(tmp_path: Path) -> list[dict[str, Any]]:
    (tmp_path / "kubeconfig").write_text(ISOLATED)
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), "KUBECACHEDIR": str(tmp_path)}
    done = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", "deploy/locust"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_master_service_workers_and_the_locustfiles(tmp_path: Path) -> None:
    objects = {
        (
            o["kind"],
            o["metadata"]["name"].rsplit("-", 1)[0]
            if o["kind"] == "ConfigMap"
            else o["metadata"]["name"],
        ): o
        for o in render(tmp_path)
    }
    assert set(objects) == {
        ("Namespace", "harmonyflow-load"),
        ("ConfigMap", "locustfiles"),
        ("ConfigMap", "locust-settings"),
        ("Deployment", "locust-master"),
        ("Service", "locust-master"),
        ("Deployment", "locust-worker"),
    }
    shipped = {
        key.replace("harmonyflow.", "harmonyflow/", 1) if key.startswith("harmonyflow.") else key
        for key in objects[("ConfigMap", "locustfiles")]["data"]
    }
    sources = {str(p.relative_to(LOADTESTS)) for p in LOADTESTS.glob("*.py")}
    sources |= {str(p.relative_to(LOADTESTS)) for p in (LOADTESTS / "harmonyflow").glob("*.py")}
    assert shipped == sources, "deploy/locust/kustomization.yaml must list every locustfile module"
    for role in ("locust-master", "locust-worker"):
        pod = objects[("Deployment", role)]["spec"]["template"]["spec"]
        [volume] = [v for v in pod["volumes"] if "configMap" in v]
        assert {i["path"] for i in volume["configMap"]["items"]} == sources
        assert volume["configMap"]["name"].startswith("locustfiles-")
        assert pod["containers"][0]["image"].startswith("locustio/locust:2.")
    master = objects[("Deployment", "locust-master")]["spec"]["template"]["spec"]
    results = {m["name"]: m["mountPath"] for m in master["containers"][0]["volumeMounts"]}
    assert results["results"] == "/tmp", "the master's CSVs and timeline stay with its pod"
    assert {"name": "results", "emptyDir": {}} in master["volumes"]
    worker = objects[("Deployment", "locust-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"][:3] == ["--worker", "--master-host", "locust-master"]
