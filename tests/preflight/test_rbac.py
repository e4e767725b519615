"""RBAC rule matching as the authorizer does it, and the scheduled game day's RBAC
(deploy/gameday/rbac.yaml) against what its plan needs."""

from __future__ import annotations

from typing import Any

import pytest

from resilience.gameday.permissions import plan_needs
from resilience.gameday.plan import load_plan
from resilience.observe.monitors import MonitorScope
from resilience.preflight.permissions import Permission
from resilience.preflight.rbac import Grant, Rule, Subject, grants, uncovered, unused
from tests.builders import REPO_ROOT
from tests.preflight.gameday_rbac import gameday_documents, scheduled_game_day

RUNNER = Subject("ServiceAccount", "runner", "ops")


def rule(verbs: str, resources: str, groups: str = "", names: str = "") -> dict[str, Any]:
    return {
        "verbs": verbs.split(),
        "resources": resources.split(),
        "apiGroups": groups.split(",") if groups != "*" else ["*"],
        **({"resourceNames": names.split()} if names else {}),
    }


def role(kind: str, name: str, *rules: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": metadata, "rules": list(rules)}


def binding(
    kind: str,
    role_kind: str,
    name: str,
    namespace: str = "",
    subject: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    who = subject or {"kind": "ServiceAccount", "name": "runner", "namespace": "ops"}
    return {
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"kind": role_kind, "name": name},
        "subjects": [who],
    }


def perm(
    verb: str, resource: str, namespace: str | None = "hf", group: str = "", name: str = ""
) -> Permission:
    plural, _, sub = resource.partition("/")
    return Permission(verb, group, plural, sub, namespace, name)


@pytest.mark.parametrize(
    ("raw", "wanted", "allowed"),
    [
        pytest.param(rule("get list", "pods"), perm("list", "pods"), True, id="verb-listed"),
        pytest.param(rule("get", "pods"), perm("delete", "pods"), False, id="verb-not-listed"),
        pytest.param(rule("*", "pods"), perm("delete", "pods"), True, id="wildcard-verb"),
        pytest.param(rule("get", "pods"), perm("get", "pods/log"), False, id="subresource-apart"),
        pytest.param(
            rule("create", "pods/eviction"),
            perm("create", "pods/eviction"),
            True,
            id="subresource-listed",
        ),
        pytest.param(
            rule("get", "*/scale", "apps"),
            perm("get", "deployments/scale", group="apps"),
            True,
            id="any-resources-subresource",
        ),
        pytest.param(
            rule("get", "deployments", "apps"),
            perm("get", "deployments", group="extensions"),
            False,
            id="other-group",
        ),
        pytest.param(
            rule("get", "*", "*"),
            perm("get", "networkchaos", group="chaos-mesh.org"),
            True,
            id="wildcards",
        ),
        pytest.param(
            rule("delete", "deployments", "apps", "canary"),
            perm("delete", "deployments", group="apps", name="canary"),
            True,
            id="resource-name-listed",
        ),
        pytest.param(
            rule("delete", "deployments", "apps", "canary"),
            perm("delete", "deployments", group="apps"),
            False,
            id="resource-names-never-allow-an-unnamed-request",
        ),
        pytest.param(
            rule("delete", "deployments", "apps"),
            perm("delete", "deployments", group="apps", name="canary"),
            True,
            id="no-resource-names-allow-any-name",
        ),
    ],
)
def test_rule_matching(raw: dict[str, Any], wanted: Permission, allowed: bool) -> None:
    assert Rule.of(raw).allows(wanted) is allowed


@pytest.mark.parametrize(
    ("documents", "wanted", "allowed"),
    [
        pytest.param(
            [
                role("Role", "r", rule("list", "pods"), namespace="hf"),
                binding("RoleBinding", "Role", "r", "hf"),
            ],
            perm("list", "pods"),
            True,
            id="role-in-its-namespace",
        ),
        pytest.param(
            [
                role("Role", "r", rule("list", "pods"), namespace="hf"),
                binding("RoleBinding", "Role", "r", "hf"),
            ],
            perm("list", "pods", namespace="other"),
            False,
            id="role-not-in-another-namespace",
        ),
        pytest.param(
            [
                role("Role", "r", rule("list", "pods"), namespace="hf"),
                binding("RoleBinding", "Role", "r", "hf"),
            ],
            perm("list", "pods", namespace=""),
            False,
            id="role-never-across-every-namespace",
        ),
        pytest.param(
            [
                role("Role", "r", rule("patch", "nodes"), namespace="hf"),
                binding("RoleBinding", "Role", "r", "hf"),
            ],
            perm("patch", "nodes", namespace=None),
            False,
            id="role-never-a-cluster-scoped-resource",
        ),
        pytest.param(
            [
                role("ClusterRole", "c", rule("patch", "nodes")),
                binding("ClusterRoleBinding", "ClusterRole", "c"),
            ],
            perm("patch", "nodes", namespace=None),
            True,
            id="cluster-role-binding",
        ),
        pytest.param(
            [
                role("ClusterRole", "c", rule("list", "pods")),
                binding("RoleBinding", "ClusterRole", "c", "hf"),
            ],
            perm("list", "pods", namespace="other"),
            False,
            id="cluster-role-through-a-role-binding-stays-in-its-namespace",
        ),
        pytest.param(
            [
                role("ClusterRole", "c", rule("list", "pods")),
                binding(
                    "ClusterRoleBinding",
                    "ClusterRole",
                    "c",
                    subject={"kind": "ServiceAccount", "name": "runner", "namespace": "elsewhere"},
                ),
            ],
            perm("list", "pods"),
            False,
            id="same-account-name-other-namespace",
        ),
        pytest.param(
            [binding("ClusterRoleBinding", "ClusterRole", "gone")],
            perm("list", "pods"),
            False,
            id="a-dangling-role-ref-grants-nothing",
        ),
    ],
)
def test_bindings(documents: list[dict[str, Any]], wanted: Permission, allowed: bool) -> None:
    found = grants(documents, RUNNER)
    assert (not uncovered([wanted], found)) is allowed


def test_unused_grants_are_those_no_need_matches() -> None:
    pods = Grant(Rule.of(rule("list", "pods")), "hf", "Role/r rule 0")
    scale = Grant(Rule.of(rule("patch", "deployments/scale", "apps")), "hf", "Role/r rule 1")
    assert unused([perm("list", "pods")], [pods, scale]) == [scale]


# ---- deploy/gameday ----


def test_the_gameday_rbac_covers_what_its_scheduled_plan_needs() -> None:
    account, plan, namespace = scheduled_game_day()
    needs = plan_needs(load_plan(REPO_ROOT / plan), MonitorScope(namespace=namespace))
    granted = grants(gameday_documents("rbac.yaml"), account)
    assert granted, f"rbac.yaml grants nothing to {account}"
    missing = uncovered(needs.permissions, granted)
    assert not missing, "; ".join(
        f"{p} (needed by {', '.join(sorted(needs.by[p]))})" for p in missing
    )


def test_every_rule_serves_the_scheduled_plan() -> None:
    """Least privilege: a rule no need matches is deleted from rbac.yaml (the canary's
    and deployments/scale's were; tests/preflight/test_rbac_minimal_live.py proves each
    remaining rule necessary against the API server's own RBAC)."""
    account, plan, namespace = scheduled_game_day()
    needs = plan_needs(load_plan(REPO_ROOT / plan), MonitorScope(namespace=namespace))
    idle = {
        g.where for g in unused(needs.permissions, grants(gameday_documents("rbac.yaml"), account))
    }
    assert idle == set()
