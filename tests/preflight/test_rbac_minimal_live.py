"""deploy/gameday's RBAC is minimal, proven against the API server's own RBAC evaluation.

The CronJob's ServiceAccount gets a real token (TokenRequest) and asks the sandbox's API
server, through the preflight's SelfSubjectAccessReviews, for everything the scheduled
plan needs. With rbac.yaml as it is, nothing is missing. Then each rule of its Role and
ClusterRole is removed in turn: the preflight must refuse, naming permissions that only
that rule grants, so no rule is there for nothing. What each rule is for (the steps and
watches that need its permissions) is the README's table, checked here against the
derivation so the two cannot drift apart.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from resilience.gameday.permissions import plan_needs
from resilience.gameday.plan import load_plan
from resilience.observe.monitors import MonitorScope
from resilience.preflight import review
from resilience.preflight.needs import Needs
from resilience.preflight.rbac import Rule
from tests.builders import REPO_ROOT
from tests.preflight.gameday_rbac import gameday_documents, scheduled_game_day
from tests.sandbox.harness import ApiHarness

README = REPO_ROOT / "README.md"
TABLE_START = "<!-- rbac-table: tests/preflight/test_rbac_minimal_live.py -->"
TABLE_END = "<!-- /rbac-table -->"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    api = ApiHarness(tmp_path_factory.mktemp("rbac"))
    try:
        yield api
    finally:
        api.close()


def _roles() -> list[dict[str, Any]]:
    return [d for d in gameday_documents("rbac.yaml") if d["kind"] in ("Role", "ClusterRole")]


def _apply(admin: client.ApiClient, documents: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    for document in documents:
        kind, name = document["kind"], document["metadata"]["name"]
        namespace = document["metadata"].get("namespace")
        body = {k: v for k, v in document.items() if k != "status"}
        if kind == "Role":
            if rbac.list_namespaced_role(namespace, field_selector=f"metadata.name={name}").items:
                rbac.replace_namespaced_role(name, namespace, body)
            else:
                rbac.create_namespaced_role(namespace, body)
        elif kind == "ClusterRole":
            if rbac.list_cluster_role(field_selector=f"metadata.name={name}").items:
                rbac.replace_cluster_role(name, body)
            else:
                rbac.create_cluster_role(body)
        elif kind == "RoleBinding":
            rbac.create_namespaced_role_binding(namespace, body)
        elif kind == "ClusterRoleBinding":
            rbac.create_cluster_role_binding(body)


@pytest.fixture(scope="module")
def runner(harness: ApiHarness) -> Iterator[tuple[client.ApiClient, client.ApiClient, Needs]]:
    """(admin client, the ServiceAccount's client, what the scheduled plan needs)."""
    account, plan, namespace = scheduled_game_day()
    admin = harness.api_client()
    core = client.CoreV1Api(admin)
    for name in (account.namespace, namespace):
        if not core.list_namespace(field_selector=f"metadata.name={name}").items:
            core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_service_account(account.namespace, {"metadata": {"name": account.name}})
    _apply(admin, gameday_documents("rbac.yaml"))
    token = core.create_namespaced_service_account_token(
        account.name, account.namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    configuration = copy.deepcopy(admin.configuration)
    configuration.refresh_api_key_hook = None  # the kubeconfig's, which puts the admin back
    configuration.api_key = {"BearerToken": f"Bearer {token}"}  # as the kubeconfig loader sets it
    as_runner = client.ApiClient(configuration)
    needs = plan_needs(load_plan(REPO_ROOT / plan), MonitorScope(namespace=namespace))
    try:
        yield admin, as_runner, needs
    finally:
        as_runner.close()
        admin.close()


def _refusal(as_runner: client.ApiClient, needs: Needs) -> str:
    try:
        review.check(as_runner, needs, lambda line: None)
    except review.PermissionsMissingError as refused:
        return str(refused)
    return ""


def test_the_rbac_as_shipped_grants_everything_the_scheduled_plan_needs(
    runner: tuple[client.ApiClient, client.ApiClient, Needs],
) -> None:
    _, as_runner, needs = runner
    assert _refusal(as_runner, needs) == ""


def rule_cases() -> list[Any]:
    return [
        pytest.param(role_index, rule_index, id=f"{role['kind']}-rule-{rule_index}")
        for role_index, role in enumerate(_roles())
        for rule_index, _ in enumerate(role["rules"])
    ]


@pytest.mark.parametrize(("role_index", "rule_index"), rule_cases())
def test_removing_any_rule_is_refused_naming_what_only_it_grants(
    runner: tuple[client.ApiClient, client.ApiClient, Needs], role_index: int, rule_index: int
) -> None:
    admin, as_runner, needs = runner
    role = _roles()[role_index]
    removed = role["rules"][rule_index]
    without = copy.deepcopy(role)
    del without["rules"][rule_index]
    _apply(admin, [without])
    try:
        refusal = _refusal(as_runner, needs)
    finally:
        _apply(admin, [role])
    assert refusal.startswith("preflight: cannot "), f"no refusal without {removed}"
    named = [p.strip() for p in refusal.removeprefix("preflight: ").split(";")]
    granted = Rule.of(removed)
    assert named and all(
        any(granted.allows(p) and str(p) in line for p in needs.permissions) for line in named
    ), (named, removed)


def rule_table(needs: Needs) -> list[str]:
    """One README line per rule: what it grants, the plan's steps and the day's watches
    whose needs it grants."""
    lines = ["| rule | grants | steps that need it | watches |", "|---|---|---|---|"]
    for role in _roles():
        for index, raw in enumerate(role["rules"]):
            granted = Rule.of(raw)
            users = {who for p, by in needs.by.items() if granted.allows(p) for who in by}
            steps = sorted({u.removeprefix("step ").split(":")[0] for u in users if "step " in u})
            watches = sorted(
                u.removeprefix("watch of ").removesuffix(" objects") for u in users if "watch" in u
            )
            grants = ", ".join(raw["verbs"]) + " " + ", ".join(raw["resources"])
            lines.append(
                f"| {role['kind']} rule {index} | {grants} | {', '.join(steps) or '-'} "
                f"| {', '.join(watches) or '-'} |"
            )
    return lines


def readme_table(text: str) -> list[str]:
    match = re.search(re.escape(TABLE_START) + r"\n(.*?)\n" + re.escape(TABLE_END), text, re.S)
    assert match, f"README.md has no {TABLE_START} ... {TABLE_END} section"
    return match.group(1).splitlines()


def test_the_readme_says_why_each_rule_exists(
    runner: tuple[client.ApiClient, client.ApiClient, Needs],
) -> None:
    _, _, needs = runner
    assert readme_table(README.read_text()) == rule_table(needs), "\n".join(rule_table(needs))


def test_kubectl_lists_the_runners_rules_and_refuses_the_rest_with_upstreams_403(
    harness: ApiHarness, runner: tuple[client.ApiClient, client.ApiClient, Needs]
) -> None:
    account, _, namespace = scheduled_game_day()
    who = f"system:serviceaccount:{account.namespace}:{account.name}"
    listed = harness.kubectl("auth", "can-i", "--list", f"--as={who}", "-n", namespace).stdout
    rows = {line.split()[0]: line for line in listed.splitlines()[1:] if line.strip()}
    for role in _roles():
        if role["kind"] != "Role":
            continue
        for raw in role["rules"]:
            for resource in raw["resources"]:
                group = raw["apiGroups"][0]
                key = f"{resource}.{group}" if group else resource
                assert all(verb in rows[key] for verb in raw["verbs"]), (key, listed)
    refused = harness.kubectl("get", "secrets", "-n", namespace, f"--as={who}", check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): secrets is forbidden: User "{who}" cannot list '
        f'resource "secrets" in API group "" in the namespace "{namespace}"'
    )
