"""The scheduled game day, run as it runs on staging: deploy/gameday applied to the sandbox,
a Job created from its CronJob (`kubectl create job --from=cronjob/...`), the suite's image
in a pod under the `gameday-runner` ServiceAccount's RBAC, its in-cluster kubeconfig, IRSA
for AWS (the pod identity webhook's variables, STS's AssumeRoleWithWebIdentity), and the
report left on the claim's volume.

Only what differs between clusters is changed, as an operator of another cluster would:
the plan (the short one), the ingress URL and the IAM role's account (the sandbox's).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from sandbox.aws.inventory import ACCOUNT_ID
from tests.builders import REPO_ROOT
from tests.live import FAST_NODE_LIFECYCLE_FLAGS, LiveSandbox, started
from tests.sandbox.cluster_harness import wait_for

pytestmark = [
    pytest.mark.gameday,
    pytest.mark.full_sandbox,
    pytest.mark.slow,  # the short day in a pod: about 5 minutes
    pytest.mark.usefixtures("servers_installed"),
]
NAMESPACE = "harmonyflow-gameday"
CRONJOB = "harmonyflow-gameday"
JOB = "gameday-now"
JOB_TIMEOUT_SECONDS = 900


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    yield from started(tmp_path_factory.mktemp("in-cluster") / "sandbox", FAST_NODE_LIFECYCLE_FLAGS)


def for_this_cluster(documents: list[dict[str, Any]], ingress: str) -> list[dict[str, Any]]:
    """deploy/gameday with this cluster's values: the short plan, its ingress, and the
    role in its AWS account (the manifests carry staging's URL and a placeholder account)."""
    for document in documents:
        kind, name = document["kind"], document["metadata"]["name"]
        if (kind, name) == ("ConfigMap", "gameday-settings"):
            document["data"].update(
                plan="experiments/gameday/short.yaml", **{"ingress-url": ingress}
            )
        if (kind, name) == ("ServiceAccount", "gameday-runner"):
            annotations = document["metadata"]["annotations"]
            role = annotations["eks.amazonaws.com/role-arn"].split(":role/")[1]
            annotations["eks.amazonaws.com/role-arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"
    return documents


def job_finished(batch: client.BatchV1Api) -> str:
    job: Any = batch.read_namespaced_job(JOB, NAMESPACE)
    done = [c.type for c in job.status.conditions or [] if c.status == "True"]
    return next((c for c in done if c in ("Complete", "Failed")), "")


def test_the_cronjobs_job_runs_the_short_game_day_and_leaves_its_report(
    sandbox: LiveSandbox, tmp_path: Path
) -> None:
    rendered = sandbox.kubectl("kustomize", str(REPO_ROOT / "deploy" / "gameday"))
    documents = for_this_cluster(list(yaml.safe_load_all(rendered)), sandbox.ingress)
    manifest = tmp_path / "gameday.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    sandbox.kubectl("apply", "-f", str(manifest))
    sandbox.kubectl("create", "job", f"--from=cronjob/{CRONJOB}", JOB, "-n", NAMESPACE)

    batch = client.BatchV1Api(sandbox.api)
    outcome = wait_for(lambda: job_finished(batch), JOB_TIMEOUT_SECONDS, "the game day's Job")
    logs = sandbox.kubectl("logs", "-n", NAMESPACE, f"job/{JOB}", timeout=60)
    assert outcome == "Complete", logs[-4000:]
    assert "gameday: PASS" in logs, logs[-4000:]

    core = client.CoreV1Api(sandbox.api)
    claim: Any = core.read_namespaced_persistent_volume_claim("gameday-reports", NAMESPACE)
    volume: Any = core.read_persistent_volume(claim.spec.volume_name)
    reports = Path(volume.spec.host_path.path)
    (report,) = reports.glob("*-short/report.json")
    assert json.loads(report.read_text())["verdict"] == "PASS"
    token = sandbox.kubectl("config", "view", "--raw", "-o", "jsonpath={.users[0].user.token}")
    found = subprocess.run(
        ["grep", "-rl", token, str(reports)], capture_output=True, text=True, check=False
    )
    assert token and found.stdout == "", "the admin token must land in no report"
