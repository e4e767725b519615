"""RBAC as upstream evaluates it: pure functions over rules, bindings and a request.

Upstream: plugin/pkg/auth/authorizer/rbac/rbac.go (`RBACAuthorizer.Authorize`,
`RuleAllows`, `RulesFor`), pkg/registry/rbac/validation/rule.go
(`DefaultRuleResolver.VisitRulesFor`, `appliesTo`, `GetRoleReferenceRules`) and
pkg/apis/rbac/v1/evaluation_helpers.go (`VerbMatches`, `ResourceMatches`, ...).
Objects are plain API JSON; `Policy` is where the evaluator reads roles and
bindings (the API server's store, or a dict in tests).

Worked example: a RoleBinding in `ns` of Role `pod-reader` (get pods) to
ServiceAccount `ns/sa` allows `system:serviceaccount:ns:sa` to get pods in `ns`,
nowhere else, and nothing but get:

>>> policy = StaticPolicy(
...     roles={("ns", "pod-reader"): {"rules": [
...         {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}},
...     bindings=({"metadata": {"name": "rb", "namespace": "ns"},
...         "roleRef": {"kind": "Role", "name": "pod-reader"},
...         "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]},))
>>> sa = UserInfo("system:serviceaccount:ns:sa")
>>> get = Attributes("get", True, resource="pods", namespace="ns", name="x")
>>> authorize(policy, sa, get).allowed
True
>>> authorize(policy, sa, Attributes("delete", True, resource="pods", namespace="ns")).allowed
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.kube.auth.attributes import Attributes
from sandbox.kube.auth.user import UserInfo, split_service_account_username

KubeObject = Mapping[str, Any]
ALL = "*"
RBAC_GROUP = "rbac.authorization.k8s.io"


class Policy(Protocol):
    """The roles and bindings the authorizer reads (upstream: the RBAC informers' listers)."""

    def cluster_role_bindings(self) -> Iterable[KubeObject]: ...

    def role_bindings(self, namespace: str) -> Iterable[KubeObject]: ...

    def cluster_role(self, name: str) -> KubeObject | None: ...

    def role(self, namespace: str, name: str) -> KubeObject | None: ...


@dataclass(frozen=True)
class StaticPolicy:
    """A Policy from plain data (tests, and the worked examples here)."""

    cluster_roles: Mapping[str, KubeObject] = field(default_factory=dict)
    roles: Mapping[tuple[str, str], KubeObject] = field(default_factory=dict)
    cluster_bindings: tuple[KubeObject, ...] = ()
    bindings: tuple[KubeObject, ...] = ()

    def cluster_role_bindings(self) -> Iterable[KubeObject]:
        return self.cluster_bindings

    def role_bindings(self, namespace: str) -> Iterable[KubeObject]:
        return [b for b in self.bindings if (b.get("metadata") or {}).get("namespace") == namespace]

    def cluster_role(self, name: str) -> KubeObject | None:
        return self.cluster_roles.get(name)

    def role(self, namespace: str, name: str) -> KubeObject | None:
        return self.roles.get((namespace, name))


# ---- rule matching (evaluation_helpers.go) ----


def verb_matches(rule: KubeObject, verb: str) -> bool:
    return any(v in (ALL, verb) for v in rule.get("verbs") or ())


def api_group_matches(rule: KubeObject, group: str) -> bool:
    return any(g in (ALL, group) for g in rule.get("apiGroups") or ())


def resource_matches(rule: KubeObject, combined: str, subresource: str) -> bool:
    """`*`, the exact `resource[/subresource]`, or `*/subresource` for any resource's one."""
    for wanted in rule.get("resources") or ():
        if wanted in (ALL, combined):
            return True
        if (
            subresource
            and len(wanted) == len(subresource) + 2
            and wanted.startswith("*/")
            and wanted.endswith(subresource)
        ):
            return True
    return False


def resource_name_matches(rule: KubeObject, name: str) -> bool:
    """No resourceNames: any name. Otherwise the request's name must be listed, so a rule
    with resourceNames never allows create, list, watch or deletecollection of a
    collection (their name is empty)."""
    names = rule.get("resourceNames") or ()
    return not names or name in names


def non_resource_url_matches(rule: KubeObject, path: str) -> bool:
    """`*`, the exact path, or a prefix ending in `*` (`/healthz/*`)."""
    for url in rule.get("nonResourceURLs") or ():
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attributes: Attributes, rule: KubeObject) -> bool:
    """rbac.go RuleAllows."""
    if not attributes.resource_request:
        return verb_matches(rule, attributes.verb) and non_resource_url_matches(
            rule, attributes.path
        )
    combined = attributes.resource
    if attributes.subresource:
        combined = f"{attributes.resource}/{attributes.subresource}"
    return (
        verb_matches(rule, attributes.verb)
        and api_group_matches(rule, attributes.api_group)
        and resource_matches(rule, combined, attributes.subresource)
        and resource_name_matches(rule, attributes.name)
    )


# ---- subjects and bindings (rule.go) ----


def applies_to_user(user: UserInfo, subject: KubeObject, namespace: str) -> bool:
    """A ServiceAccount subject without a namespace means the binding's namespace."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        if not sa_namespace:
            return False
        return split_service_account_username(user.name) == (sa_namespace, name)
    return False


def applies_to(user: UserInfo, subjects: Iterable[KubeObject], namespace: str) -> KubeObject | None:
    """The first subject of a binding that names the user (None: the binding does not)."""
    return next((s for s in subjects if applies_to_user(user, s, namespace)), None)


class RuleError(Exception):
    """A binding whose role cannot be read: RBAC reports it and keeps evaluating."""


def role_reference_rules(
    policy: Policy, role_ref: KubeObject, binding_namespace: str
) -> list[KubeObject]:
    """GetRoleReferenceRules; a missing role is the listers' NotFound, as its message."""
    kind, name = role_ref.get("kind"), str(role_ref.get("name", ""))
    if kind == "Role":
        role = policy.role(binding_namespace, name)
        if role is None:
            raise RuleError(f'role.{RBAC_GROUP} "{name}" not found')
        return list(role.get("rules") or [])
    if kind == "ClusterRole":
        cluster_role = policy.cluster_role(name)
        if cluster_role is None:
            raise RuleError(f'clusterrole.{RBAC_GROUP} "{name}" not found')
        return list(cluster_role.get("rules") or [])
    raise RuleError(f'unsupported role reference kind: "{kind}"')


@dataclass(frozen=True)
class Source:
    """Which binding gave a rule: what `allowed by ...` names (rule.go describers)."""

    binding: KubeObject
    subject: KubeObject
    cluster: bool

    def __str__(self) -> str:
        metadata = self.binding.get("metadata") or {}
        ref = self.binding.get("roleRef") or {}
        namespace = str(metadata.get("namespace", ""))
        if self.cluster:
            head = f'ClusterRoleBinding "{metadata.get("name", "")}"'
        else:
            head = f'RoleBinding "{metadata.get("name", "")}/{namespace}"'
        subject = _subject(self.subject, namespace)
        return f'{head} of {ref.get("kind")} "{ref.get("name")}" to {subject}'


def _subject(subject: KubeObject, binding_namespace: str) -> str:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


Visitor = Callable[[Source | None, KubeObject | None, RuleError | None], bool]


def visit_rules_for(policy: Policy, user: UserInfo, namespace: str, visit: Visitor) -> None:
    """Every rule that applies to the user: cluster role bindings, then role bindings of the
    namespace; `visit` returns False to stop (DefaultRuleResolver.VisitRulesFor)."""
    scopes: list[tuple[Iterable[KubeObject], str, bool]] = [
        (policy.cluster_role_bindings(), "", True)
    ]
    if namespace:
        scopes.append((policy.role_bindings(namespace), namespace, False))
    for bindings, where, cluster in scopes:
        for binding in bindings:
            subject = applies_to(user, binding.get("subjects") or (), where)
            if subject is None:
                continue
            try:
                rules = role_reference_rules(policy, binding.get("roleRef") or {}, where)
            except RuleError as error:
                if not visit(None, None, error):
                    return
                continue
            source = Source(binding, subject, cluster)
            for rule in rules:
                if not visit(source, rule, None):
                    return


@dataclass(frozen=True)
class Decision:
    """authorizer.Decision with its reason: allow, or no opinion (RBAC never denies)."""

    allowed: bool
    reason: str = ""


def authorize(policy: Policy, user: UserInfo, attributes: Attributes) -> Decision:
    """RBACAuthorizer.Authorize: allowed by the first rule that allows; otherwise no
    opinion, with `RBAC: <errors>` as the reason when a binding's role was missing."""
    found: list[Decision] = []
    errors: list[str] = []

    def visit(source: Source | None, rule: KubeObject | None, error: RuleError | None) -> bool:
        if error is not None:
            errors.append(str(error))
        elif rule is not None and rule_allows(attributes, rule):
            found.append(Decision(True, f"RBAC: allowed by {source}"))
            return False
        return True

    visit_rules_for(policy, user, attributes.namespace, visit)
    if found:
        return found[0]
    return Decision(False, f"RBAC: {_aggregate(errors)}" if errors else "")


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message alone, several in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


@dataclass(frozen=True)
class Rules:
    """What SelfSubjectRulesReview answers: rules as stored, and whether some were missed."""

    resource_rules: tuple[KubeObject, ...]
    non_resource_rules: tuple[KubeObject, ...]
    errors: tuple[str, ...]


def rules_for(policy: Policy, user: UserInfo, namespace: str) -> Rules:
    """RBACAuthorizer.RulesFor: each rule split into its resource and non-resource halves."""
    resource: list[KubeObject] = []
    non_resource: list[KubeObject] = []
    errors: list[str] = []

    def visit(_source: Source | None, rule: KubeObject | None, error: RuleError | None) -> bool:
        if error is not None:
            errors.append(str(error))
        elif rule is not None:
            verbs = list(rule.get("verbs") or [])
            if rule.get("resources"):
                entry: dict[str, Any] = {
                    "verbs": verbs,
                    "apiGroups": list(rule.get("apiGroups") or []),
                    "resources": list(rule.get("resources") or []),
                }
                if rule.get("resourceNames"):
                    entry["resourceNames"] = list(rule["resourceNames"])
                resource.append(entry)
            if rule.get("nonResourceURLs"):
                non_resource.append(
                    {"verbs": verbs, "nonResourceURLs": list(rule["nonResourceURLs"])}
                )
        return True

    visit_rules_for(policy, user, namespace, visit)
    return Rules(tuple(resource), tuple(non_resource), tuple(errors))


def forbidden_message(user: UserInfo, attributes: Attributes) -> str:
    """responsewriters.forbiddenMessage (without NewForbidden's `<resource> "name" is
    forbidden: ` head, which `forbidden_status_message` adds)."""
    if not attributes.resource_request:
        return f'User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    head = (
        f'User "{user.name}" cannot {attributes.verb} resource "{resource}" '
        f'in API group "{attributes.api_group}"'
    )
    if attributes.namespace:
        return f'{head} in the namespace "{attributes.namespace}"'
    return f"{head} at the cluster scope"


def forbidden_status_message(user: UserInfo, attributes: Attributes, reason: str) -> str:
    """responsewriters.Forbidden -> apierrors.NewForbidden(resource.group, name, message).

    >>> user = UserInfo("system:serviceaccount:ns:sa")
    >>> message = forbidden_status_message(user, Attributes("delete", True, resource="pods",
    ...     namespace="ns", name="x"), "")
    >>> message.split(": ")[0]
    'pods "x" is forbidden'
    >>> message.split(": ")[1]  # doctest: +NORMALIZE_WHITESPACE
    'User "system:serviceaccount:ns:sa" cannot delete resource "pods"
     in API group "" in the namespace "ns"'
    """
    message = forbidden_message(user, attributes)
    if reason:
        message = f"{message}: {reason}"
    qualified = attributes.resource
    if qualified and attributes.api_group:
        qualified = f"{qualified}.{attributes.api_group}"
    if not qualified:
        return f"forbidden: {message}"
    if not attributes.name:
        return f"{qualified} is forbidden: {message}"
    return f'{qualified} "{attributes.name}" is forbidden: {message}'
