"""The default ClusterRoles and ClusterRoleBindings every cluster starts with.

Upstream: plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go
(`ClusterRoles`, `ClusterRoleBindings`), as testdata/cluster-roles.yaml renders
them; the kube-apiserver's `rbac/bootstrap-roles` post-start hook creates them
(labelled `kubernetes.io/bootstrapping: rbac-defaults`, annotated
`rbac.authorization.kubernetes.io/autoupdate: "true"`). Only the roles a user of
this cluster relies on are here: the user-facing ones and the public, discovery
and monitoring ones (not those of kubelets, controllers and schedulers, which
reach the sandbox's store directly).
"""

from __future__ import annotations

from typing import Any

from sandbox.kube.auth.user import (
    ALL_AUTHENTICATED,
    ALL_SERVICE_ACCOUNTS_GROUP,
    ALL_UNAUTHENTICATED,
    MONITORING_GROUP,
    SYSTEM_PRIVILEGED_GROUP,
)

KubeObject = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"
READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _rule(verbs: tuple[str, ...], groups: tuple[str, ...], *resources: str) -> KubeObject:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def _urls(verbs: tuple[str, ...], *urls: str) -> KubeObject:
    return {"nonResourceURLs": list(urls), "verbs": list(verbs)}


def _role(
    name: str,
    rules: list[KubeObject] | None,
    labels: dict[str, str] | None = None,
    aggregate_from: str | None = None,
) -> KubeObject:
    role: KubeObject = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAPPING, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"},
        },
    }
    if aggregate_from is not None:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]
        }
        role["rules"] = []  # the aggregation controller fills them in
    else:
        role["rules"] = rules or []
    return role


CORE, APPS, EXTENSIONS = ("",), ("apps",), ("extensions",)

AGGREGATE_TO_ADMIN_RULES = [
    _rule(("create",), ("authorization.k8s.io",), "localsubjectaccessreviews"),
    _rule(READ_WRITE, (RBAC_GROUP,), "rolebindings", "roles"),
]

AGGREGATE_TO_EDIT_RULES = [
    _rule(
        READ,
        CORE,
        "pods/attach",
        "pods/exec",
        "pods/portforward",
        "pods/proxy",
        "secrets",
        "services/proxy",
    ),
    _rule(("impersonate",), CORE, "serviceaccounts"),
    _rule(WRITE, CORE, "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
    _rule(("create",), CORE, "pods/eviction"),
    _rule(
        WRITE,
        CORE,
        "configmaps",
        "events",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "secrets",
        "serviceaccounts",
        "services",
        "services/proxy",
    ),
    _rule(("create",), CORE, "serviceaccounts/token"),
    _rule(
        WRITE,
        APPS,
        "daemonsets",
        "deployments",
        "deployments/rollback",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
    ),
    _rule(WRITE, ("autoscaling",), "horizontalpodautoscalers"),
    _rule(WRITE, ("batch",), "cronjobs", "jobs"),
    _rule(
        WRITE,
        EXTENSIONS,
        "daemonsets",
        "deployments",
        "deployments/rollback",
        "deployments/scale",
        "ingresses",
        "networkpolicies",
        "replicasets",
        "replicasets/scale",
        "replicationcontrollers/scale",
    ),
    _rule(WRITE, ("policy",), "poddisruptionbudgets"),
    _rule(WRITE, ("networking.k8s.io",), "ingresses", "networkpolicies"),
    _rule(READ_WRITE, ("coordination.k8s.io",), "leases"),
]

AGGREGATE_TO_VIEW_RULES = [
    _rule(
        READ,
        CORE,
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "pods",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/status",
    ),
    _rule(
        READ,
        CORE,
        "bindings",
        "events",
        "limitranges",
        "namespaces/status",
        "pods/log",
        "pods/status",
        "replicationcontrollers/status",
        "resourcequotas",
        "resourcequotas/status",
    ),
    _rule(READ, CORE, "namespaces"),
    _rule(READ, ("discovery.k8s.io",), "endpointslices"),
    _rule(
        READ,
        APPS,
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ),
    _rule(READ, ("autoscaling",), "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    _rule(READ, ("batch",), "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
    _rule(
        READ,
        EXTENSIONS,
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "ingresses",
        "ingresses/status",
        "networkpolicies",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "replicationcontrollers/scale",
    ),
    _rule(READ, ("policy",), "poddisruptionbudgets", "poddisruptionbudgets/status"),
    _rule(READ, ("networking.k8s.io",), "ingresses", "ingresses/status", "networkpolicies"),
]


def cluster_roles() -> list[KubeObject]:
    """Fresh copies, in testdata/cluster-roles.yaml's order."""
    return [
        _role("admin", None, aggregate_from=AGGREGATE_TO_ADMIN),
        _role("cluster-admin", [_rule(("*",), ("*",), "*"), _urls(("*",), "*")]),
        _role("edit", None, {AGGREGATE_TO_ADMIN: "true"}, aggregate_from=AGGREGATE_TO_EDIT),
        _role("system:aggregate-to-admin", AGGREGATE_TO_ADMIN_RULES, {AGGREGATE_TO_ADMIN: "true"}),
        _role("system:aggregate-to-edit", AGGREGATE_TO_EDIT_RULES, {AGGREGATE_TO_EDIT: "true"}),
        _role("system:aggregate-to-view", AGGREGATE_TO_VIEW_RULES, {AGGREGATE_TO_VIEW: "true"}),
        _role(
            "system:auth-delegator",
            [
                _rule(("create",), ("authentication.k8s.io",), "tokenreviews"),
                _rule(("create",), ("authorization.k8s.io",), "subjectaccessreviews"),
            ],
        ),
        _role(
            "system:basic-user",
            [
                _rule(
                    ("create",),
                    ("authorization.k8s.io",),
                    "selfsubjectaccessreviews",
                    "selfsubjectrulesreviews",
                ),
                _rule(("create",), ("authentication.k8s.io",), "selfsubjectreviews"),
            ],
        ),
        _role(
            "system:discovery",
            [
                _urls(
                    ("get",),
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                )
            ],
        ),
        _role(
            "system:monitoring",
            [
                _urls(
                    ("get",),
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                )
            ],
        ),
        _role(
            "system:public-info-viewer",
            [_urls(("get",), "/healthz", "/livez", "/readyz", "/version", "/version/")],
        ),
        _role(
            "system:service-account-issuer-discovery",
            [_urls(("get",), "/.well-known/openid-configuration", "/openid/v1/jwks")],
        ),
        _role("view", None, {AGGREGATE_TO_EDIT: "true"}, aggregate_from=AGGREGATE_TO_VIEW),
    ]


def _binding(name: str, *groups: str) -> KubeObject:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": dict(BOOTSTRAPPING),
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


def cluster_role_bindings() -> list[KubeObject]:
    """policy.go ClusterRoleBindings(), for the roles above."""
    return [
        _binding("cluster-admin", SYSTEM_PRIVILEGED_GROUP),
        _binding("system:monitoring", MONITORING_GROUP),
        _binding("system:discovery", ALL_AUTHENTICATED),
        _binding("system:basic-user", ALL_AUTHENTICATED),
        _binding("system:public-info-viewer", ALL_AUTHENTICATED, ALL_UNAUTHENTICATED),
        _binding("system:service-account-issuer-discovery", ALL_SERVICE_ACCOUNTS_GROUP),
    ]
