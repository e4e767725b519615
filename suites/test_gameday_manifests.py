"""Conformance of the scheduled game day: deploy/gameday's RBAC is least privilege, its
CronJob runs unprivileged with notifications off, and the Dockerfile builds a
non-root image from a pinned base with no credential in it. Needs no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.gameday.manifests import cronjob_findings, dockerfile_findings, rbac_findings
from resilience.manifests import RenderedManifests, render

pytestmark = pytest.mark.conformance
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gameday_manifests(deploy_dir: Path) -> RenderedManifests:
    return render(deploy_dir / "gameday")


def bodies(manifests: RenderedManifests) -> list[dict[str, object]]:
    return [dict(o.body) for o in manifests.objects]


def test_gameday_renders_a_cronjob_its_account_and_rbac(
    gameday_manifests: RenderedManifests,
) -> None:
    kinds = {o.kind for o in gameday_manifests.objects}
    assert {"CronJob", "ServiceAccount", "Role", "RoleBinding"} <= kinds


def test_rbac_is_least_privilege(gameday_manifests: RenderedManifests) -> None:
    findings = rbac_findings(bodies(gameday_manifests))
    assert not findings, "\n".join(findings)


def test_bindings_grant_only_the_gameday_account(gameday_manifests: RenderedManifests) -> None:
    for binding in gameday_manifests.objects:
        if binding.kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.body.get("subjects") or []
        assert [(s["kind"], s["name"]) for s in subjects] == [("ServiceAccount", "gameday-runner")]
        if binding.kind == "RoleBinding":
            assert binding.body["roleRef"]["kind"] == "Role", (
                f"{binding.ref}: namespaced rules only"
            )


def test_the_cronjob_is_unprivileged_and_quiet_by_default(
    gameday_manifests: RenderedManifests,
) -> None:
    findings = cronjob_findings(bodies(gameday_manifests))
    assert not findings, "\n".join(findings)


def test_the_dockerfile() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    ignore = (REPO_ROOT / ".dockerignore").read_text()
    findings = dockerfile_findings(dockerfile, ignore)
    assert not findings, "\n".join(findings)
