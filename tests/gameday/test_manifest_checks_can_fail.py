"""Every check of the game-day conformance suite fails on a seeded fault, naming it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience.gameday.manifests import cronjob_findings, dockerfile_findings, rbac_findings
from tests.builders import REPO_ROOT

GAMEDAY = REPO_ROOT / "deploy" / "gameday"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(GAMEDAY.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def test_the_shipped_files_pass() -> None:
    docs = documents()
    assert rbac_findings(docs) == []
    assert cronjob_findings(docs) == []
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert dockerfile_findings(dockerfile, (REPO_ROOT / ".dockerignore").read_text()) == []


def seeded_rbac(change: str) -> list[str]:
    docs = copy.deepcopy(documents())
    role = the(docs, "Role")
    cluster_role = the(docs, "ClusterRole")
    if change == "wildcard verb":
        role["rules"][0]["verbs"] = ["*"]
    elif change == "wildcard resource":
        role["rules"][0]["resources"] = ["*"]
    elif change == "secrets":
        role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    elif change == "extra verb":
        role["rules"][0]["verbs"].append("deletecollection")
    elif change == "cluster-wide pods":
        cluster_role["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]})
    elif change == "escalate":
        cluster_role["rules"][0]["verbs"].append("escalate")
    return rbac_findings(docs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("wildcard verb", "wildcard verb"),
        ("wildcard resource", "wildcard resource or API group"),
        ("secrets", "access to secrets"),
        ("extra verb", "verbs deletecollection are not used"),
        ("cluster-wide pods", "/pods must be namespaced (a Role), not cluster-wide"),
        ("escalate", "dangerous verb escalate"),
    ],
)
def test_rbac_faults_are_found(change: str, message: str) -> None:
    assert any(message in finding for finding in seeded_rbac(change)), seeded_rbac(change)


def seeded_cronjob(change: str) -> list[str]:
    docs = copy.deepcopy(documents())
    job = the(docs, "CronJob")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if change == "root":
        pod["securityContext"]["runAsNonRoot"] = False
    elif change == "latest":
        container["image"] = "ghcr.io/harmonyflow/resilience:latest"
    elif change == "privileged":
        container["securityContext"]["allowPrivilegeEscalation"] = True
    elif change == "literal webhook":
        container["env"].append({"name": "HARMONYFLOW_NOTIFY_WEBHOOK", "value": "https://x"})
    elif change == "notify on":
        for variable in container["env"]:
            if "NOTIFY" in variable["name"]:
                variable["valueFrom"]["secretKeyRef"]["optional"] = False
    elif change == "concurrent":
        job["spec"]["concurrencyPolicy"] = "Allow"
    elif change == "default account":
        pod["serviceAccountName"] = "default"
    return cronjob_findings(docs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("root", "must run as non-root"),
        ("latest", "is not pinned to a version"),
        ("privileged", "must not be privileged"),
        ("literal webhook", "carries a literal value"),
        ("notify on", "notifications must be off unless configured"),
        ("concurrent", "concurrencyPolicy must be Forbid"),
        ("default account", "is not a ServiceAccount of its own"),
    ],
)
def test_cronjob_faults_are_found(change: str, message: str) -> None:
    assert any(message in finding for finding in seeded_cronjob(change)), seeded_cronjob(change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("FROM python:3.11.11-slim-bookworm", "FROM python:3.11-slim"), "is not pinned"),
        (("USER 10001:10001", "USER root"), "the last USER is root"),
        (("USER 10001:10001", ""), "no USER"),
        (("ENV HOME=/tmp", "ENV HOME=/tmp SLACK_WEBHOOK=https://x"), "ENV SLACK_WEBHOOK carries"),
        (
            ("COPY deploy ./deploy", "COPY .sandbox/kubeconfig /root/.kube/config"),
            "copies credentials",
        ),
        (
            ("--require-hashes --no-deps -r requirements/lock.txt", "-r requirements/lock.txt"),
            "resolves its own versions",
        ),
        (("--no-deps --no-build-isolation -e .", "-e ."), "resolves its own versions"),
    ],
)
def test_dockerfile_faults_are_found(change: tuple[str, str], message: str) -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert change[0] in text
    findings = dockerfile_findings(
        text.replace(change[0], change[1]), (REPO_ROOT / ".dockerignore").read_text()
    )
    assert any(message in finding for finding in findings), findings


def test_dockerignore_must_keep_local_state_out(tmp_path: Path) -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    ignore = (REPO_ROOT / ".dockerignore").read_text().replace(".sandbox\n", "")
    assert ".dockerignore does not exclude .sandbox" in dockerfile_findings(text, ignore)
