"""RBAC, request attributes, authentication and impersonation as upstream decides them."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.kube.auth import bootstrap, impersonation, rbac
from sandbox.kube.auth.attributes import Attributes, request_attributes
from sandbox.kube.auth.authn import Credentials, authenticate
from sandbox.kube.auth.user import UserInfo
from sandbox.kube.controllers.clusterroleaggregation import aggregated_rules
from sandbox.kube.controllers.serviceaccount import missing_accounts
from sandbox.kube.errors import ApiError

SA = UserInfo(
    "system:serviceaccount:ns:sa",
    groups=("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"),
)


def rule(verbs: str, resources: str = "", groups: str = "", **extra: Any) -> dict[str, Any]:
    built: dict[str, Any] = {"verbs": verbs.split(), **extra}
    if resources:
        built["resources"] = resources.split()
        built["apiGroups"] = groups.split() if groups else [""]
    return built


def resource(verb: str, plural: str, **fields: str) -> Attributes:
    return Attributes(verb, True, resource=plural, **fields)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        pytest.param(
            "GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "pods", "", "ns", ""), id="list"
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"watch": "true"},
            ("watch", "", "pods", "", "ns", ""),
            id="watch",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"watch": "0"},
            ("list", "", "pods", "", "ns", ""),
            id="watch-0-is-list",
        ),
        pytest.param(
            "GET",
            "/apis/apps/v1/namespaces/ns/deployments",
            {"watch": "1", "fieldSelector": "metadata.name=web"},
            ("watch", "apps", "deployments", "", "ns", "web"),
            id="watch-one-by-field-selector-names-it",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/ns/pods/x",
            {"watch": "true"},
            ("get", "", "pods", "", "ns", "x"),
            id="named-get-stays-get",
        ),
        pytest.param(
            "GET",
            "/api/v1/watch/namespaces/ns/pods/x",
            {},
            ("watch", "", "pods", "", "ns", "x"),
            id="old-watch-path",
        ),
        pytest.param(
            "POST",
            "/api/v1/namespaces/ns/pods/x/eviction",
            {},
            ("create", "", "pods", "eviction", "ns", "x"),
            id="eviction-names-the-pod",
        ),
        pytest.param(
            "PUT",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale",
            {},
            ("update", "apps", "deployments", "scale", "ns", "web"),
            id="scale",
        ),
        pytest.param(
            "DELETE",
            "/api/v1/namespaces/ns/configmaps",
            {},
            ("deletecollection", "", "configmaps", "", "ns", ""),
            id="deletecollection",
        ),
        pytest.param(
            "GET", "/api/v1/namespaces/ns", {}, ("get", "", "namespaces", "", "ns", "ns"), id="ns"
        ),
        pytest.param(
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            {},
            ("update", "", "namespaces", "finalize", "ns", "ns"),
            id="namespace-subresource",
        ),
        pytest.param(
            "GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", ""), id="cluster-scoped"
        ),
        pytest.param(
            "PATCH",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:basic-user",
            {},
            ("patch", "rbac.authorization.k8s.io", "clusterroles", "", "", "system:basic-user"),
            id="patch-cluster-scoped",
        ),
    ],
)
def test_request_attributes_are_upstreams_request_info(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    got = request_attributes(method, path, query)
    assert got.resource_request
    fields = (got.verb, got.api_group, got.resource, got.subresource, got.namespace, got.name)
    assert fields == expected


@pytest.mark.parametrize(
    "path", ["/api", "/apis", "/apis/apps", "/version", "/metrics", "/openapi/v3/api/v1"]
)
def test_paths_outside_the_resource_tree_are_non_resource_requests(path: str) -> None:
    got = request_attributes("GET", path, {})
    assert (got.resource_request, got.verb, got.path) == (False, "get", path)


@pytest.mark.parametrize(
    ("rule_", "attributes", "allowed"),
    [
        pytest.param(rule("*", "*", "*"), resource("delete", "pods"), True, id="all"),
        pytest.param(rule("get", "pods"), resource("get", "pods"), True, id="exact"),
        pytest.param(rule("get", "pods"), resource("list", "pods"), False, id="other-verb"),
        pytest.param(
            rule("get", "deployments", "apps"),
            Attributes("get", True, api_group="extensions", resource="deployments"),
            False,
            id="other-group",
        ),
        pytest.param(
            rule("get", "pods"), resource("get", "pods", subresource="log"), False, id="no-sub"
        ),
        pytest.param(
            rule("create", "pods/eviction"),
            resource("create", "pods", subresource="eviction", name="x"),
            True,
            id="subresource",
        ),
        pytest.param(
            rule("update", "*/scale", "*"),
            Attributes(
                "update", True, api_group="apps", resource="deployments", subresource="scale"
            ),
            True,
            id="star-slash-subresource",
        ),
        pytest.param(
            rule("get", "*/scale", "*"),
            resource("get", "pods", subresource="status"),
            False,
            id="star-slash-other-subresource",
        ),
        pytest.param(
            rule("get", "*/scale", "*"), resource("get", "deployments"), False, id="star-slash-main"
        ),
        pytest.param(
            rule("get delete", "pods", resourceNames=["a"]),
            resource("get", "pods", name="a"),
            True,
            id="resource-name",
        ),
        pytest.param(
            rule("get delete", "pods", resourceNames=["a"]),
            resource("get", "pods", name="b"),
            False,
            id="other-name",
        ),
        pytest.param(
            rule("list create", "pods", resourceNames=["a"]),
            resource("list", "pods"),
            False,
            id="names-never-allow-list",
        ),
        pytest.param(
            rule("list create", "pods", resourceNames=["a"]),
            resource("create", "pods"),
            False,
            id="names-never-allow-create",
        ),
        pytest.param(
            rule("get", nonResourceURLs=["/healthz/*"]),
            Attributes("get", False, path="/healthz/etcd"),
            True,
            id="url-prefix",
        ),
        pytest.param(
            rule("get", nonResourceURLs=["/healthz"]),
            Attributes("get", False, path="/healthz/etcd"),
            False,
            id="url-exact-only",
        ),
        pytest.param(
            rule("get", "*", "*"),
            Attributes("get", False, path="/metrics"),
            False,
            id="resource-rule-never-a-url",
        ),
        pytest.param(
            rule("get", nonResourceURLs=["*"]),
            resource("get", "pods"),
            False,
            id="url-rule-never-a-resource",
        ),
    ],
)
def test_rule_allows_as_rbac_go(
    rule_: dict[str, Any], attributes: Attributes, allowed: bool
) -> None:
    assert rbac.rule_allows(attributes, rule_) is allowed


def binding(name: str, kind: str, role: str, subjects: list[dict[str, str]], ns: str = "") -> Any:
    metadata = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": metadata, "roleRef": {"kind": kind, "name": role}, "subjects": subjects}


SA_SUBJECT = {"kind": "ServiceAccount", "name": "sa"}
POLICY = rbac.StaticPolicy(
    cluster_roles={"pod-deleter": {"rules": [rule("delete", "pods")]}},
    roles={("ns", "reader"): {"rules": [rule("get list", "pods")]}},
    cluster_bindings=(
        binding("discovery", "ClusterRole", "missing", [{"kind": "Group", "name": "everyone"}]),
    ),
    bindings=(
        binding("read", "Role", "reader", [SA_SUBJECT], "ns"),
        binding("delete", "ClusterRole", "pod-deleter", [SA_SUBJECT], "ns"),
        binding("elsewhere", "Role", "reader", [{**SA_SUBJECT, "namespace": "other"}], "ns"),
    ),
)


@pytest.mark.parametrize(
    ("user", "attributes", "allowed", "reason"),
    [
        pytest.param(
            SA,
            resource("get", "pods", namespace="ns", name="x"),
            True,
            'RBAC: allowed by RoleBinding "read/ns" of Role "reader" to ServiceAccount "sa/ns"',
            id="role-binding-subject-defaults-to-its-namespace",
        ),
        pytest.param(
            SA,
            resource("delete", "pods", namespace="ns", name="x"),
            True,
            'RBAC: allowed by RoleBinding "delete/ns" of ClusterRole "pod-deleter" to '
            'ServiceAccount "sa/ns"',
            id="cluster-role-through-a-role-binding",
        ),
        pytest.param(
            SA,
            resource("delete", "pods", namespace="other", name="x"),
            False,
            "",
            id="role-binding-grants-its-namespace-only",
        ),
        pytest.param(
            SA, resource("delete", "pods", name="x"), False, "", id="not-at-the-cluster-scope"
        ),
        pytest.param(
            UserInfo("jane", groups=("everyone",)),
            resource("get", "pods", namespace="ns"),
            False,
            'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found',
            id="missing-role-is-the-reason",
        ),
    ],
)
def test_authorize_walks_bindings_as_the_rule_resolver(
    user: UserInfo, attributes: Attributes, allowed: bool, reason: str
) -> None:
    assert rbac.authorize(POLICY, user, attributes) == rbac.Decision(allowed, reason)


def test_rules_for_lists_what_can_i_list_prints() -> None:
    rules = rbac.rules_for(POLICY, SA, "ns")
    assert [r["verbs"] for r in rules.resource_rules] == [["get", "list"], ["delete"]]
    assert rules.errors == ()
    assert rbac.rules_for(POLICY, UserInfo("x", groups=("everyone",)), "ns").errors == (
        'clusterrole.rbac.authorization.k8s.io "missing" not found',
    )


@pytest.mark.parametrize(
    ("attributes", "reason", "message"),
    [
        pytest.param(
            resource("delete", "pods", namespace="ns", name="x"),
            "",
            'pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot delete resource '
            '"pods" in API group "" in the namespace "ns"',
            id="named",
        ),
        pytest.param(
            resource("list", "pods", namespace="ns"),
            "",
            'pods is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "pods" '
            'in API group "" in the namespace "ns"',
            id="collection",
        ),
        pytest.param(
            Attributes("list", True, api_group="apps", resource="deployments"),
            "",
            'deployments.apps is forbidden: User "system:serviceaccount:ns:sa" cannot list '
            'resource "deployments" in API group "apps" at the cluster scope',
            id="cluster-scope",
        ),
        pytest.param(
            resource("create", "pods", subresource="eviction", namespace="ns", name="x"),
            "",
            'pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot create resource '
            '"pods/eviction" in API group "" in the namespace "ns"',
            id="subresource",
        ),
        pytest.param(
            Attributes("get", False, path="/metrics"),
            "",
            'forbidden: User "system:serviceaccount:ns:sa" cannot get path "/metrics"',
            id="path",
        ),
        pytest.param(
            resource("get", "pods", namespace="ns", name="x"),
            'RBAC: role.rbac.authorization.k8s.io "r" not found',
            'pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get resource "pods" '
            'in API group "" in the namespace "ns": RBAC: role.rbac.authorization.k8s.io "r" '
            "not found",
            id="with-reason",
        ),
    ],
)
def test_the_forbidden_message_is_upstreams(
    attributes: Attributes, reason: str, message: str
) -> None:
    assert rbac.forbidden_status_message(SA, attributes, reason) == message


USERS = {"good": UserInfo("kubernetes-admin", groups=("system:masters",))}.get


@pytest.mark.parametrize(
    ("credentials", "path", "name"),
    [
        pytest.param(Credentials("Bearer good"), "/api", "kubernetes-admin", id="bearer"),
        pytest.param(Credentials("bearer good"), "/api", "kubernetes-admin", id="case"),
        pytest.param(Credentials("Bearer bad"), "/api", None, id="invalid-token-401"),
        pytest.param(Credentials("Bearer bad"), "/livez", None, id="invalid-never-anonymous"),
        pytest.param(Credentials(""), "/livez", "system:anonymous", id="anonymous-livez"),
        pytest.param(Credentials(""), "/version", "system:anonymous", id="anonymous-version"),
        pytest.param(Credentials(""), "/api", None, id="anonymous-elsewhere-401"),
        pytest.param(Credentials("Basic Zm9vOmJhcg=="), "/api", None, id="basic-is-no-token"),
        pytest.param(
            Credentials("", "base64url.bearer.authorization.k8s.io.Z29vZA, v5.channel.k8s.io"),
            "/api/v1/namespaces/ns/pods/x/exec",
            "kubernetes-admin",
            id="websocket-protocol",
        ),
    ],
)
def test_authentication_of_a_request(credentials: Credentials, path: str, name: str | None) -> None:
    user = authenticate(credentials, path, USERS)
    assert (user.name if user is not None else None) == name


def test_authenticated_users_are_in_system_authenticated() -> None:
    user = authenticate(Credentials("Bearer good"), "/api", USERS)
    assert user is not None and user.groups == ("system:masters", "system:authenticated")


def test_impersonating_a_user_with_groups_checks_each() -> None:
    wanted = impersonation.parse(
        {"Impersonate-User": ["jane"], "Impersonate-Group": ["devs", "ops"]}
    )
    assert wanted is not None
    checks = [(a.verb, a.resource, a.name) for a in impersonation.checks(wanted)]
    assert checks == [
        ("impersonate", "users", "jane"),
        ("impersonate", "groups", "devs"),
        ("impersonate", "groups", "ops"),
    ]
    assert impersonation.impersonated_user(wanted).groups == ("devs", "ops", "system:authenticated")


def test_impersonating_a_service_account_gives_its_groups_and_checks_its_namespace() -> None:
    wanted = impersonation.parse({"impersonate-user": ["system:serviceaccount:ns:sa"]})
    assert wanted is not None
    [check] = impersonation.checks(wanted)
    assert (check.resource, check.namespace, check.name, check.api_group) == (
        "serviceaccounts",
        "ns",
        "sa",
        "",
    )
    assert impersonation.impersonated_user(wanted) == SA


def test_impersonating_groups_without_a_user_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        impersonation.parse({"Impersonate-Group": ["devs"]})
    assert refused.value.code == 500
    assert impersonation.parse({"Accept": ["application/json"]}) is None


def test_aggregation_fills_admin_edit_and_view_from_the_bootstrap_roles() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrap.cluster_roles()}
    for _ in range(3):  # chains settle: view -> edit -> admin
        for role in roles.values():
            if role.get("aggregationRule"):
                role["rules"] = aggregated_rules(role, list(roles.values()))
    policy = rbac.StaticPolicy(cluster_roles=roles)

    def can(role: str, attributes: Attributes) -> bool:
        return any(rbac.rule_allows(attributes, r) for r in policy.cluster_roles[role]["rules"])

    read_log = resource("get", "pods", subresource="log", namespace="ns", name="x")
    evict = resource("create", "pods", subresource="eviction", namespace="ns", name="x")
    bind = Attributes("create", True, api_group="rbac.authorization.k8s.io", resource="roles")
    assert (can("view", read_log), can("view", evict)) == (True, False)
    assert (can("edit", read_log), can("edit", evict), can("edit", bind)) == (True, True, False)
    assert (can("admin", read_log), can("admin", evict), can("admin", bind)) == (True, True, True)


def test_only_active_namespaces_get_a_default_service_account() -> None:
    assert missing_accounts({"status": {"phase": "Active"}}, {"default"}) == []
    deleting = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {}}
    assert missing_accounts(deleting, set()) == []
