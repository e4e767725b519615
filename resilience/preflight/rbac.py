"""RBAC rule matching over manifests (pure): would these Roles and bindings allow a need?

Follows upstream's authorizer: `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`,
`APIGroupMatches`, `ResourceMatches` with `*/subresource`, `ResourceNameMatches`) and
`pkg/registry/rbac/validation/rule.go` (`VisitRulesFor`: every ClusterRoleBinding of
the subject applies everywhere, a RoleBinding only to requests in its own namespace,
whether it refers to a Role or a ClusterRole). So a Role never grants a cluster-scoped
resource (nodes) nor a request across every namespace: those requests carry no
namespace, and no RoleBinding is consulted for them.

Used by the tests to show that deploy/gameday/rbac.yaml covers what the scheduled game
day needs, and which of its rules nothing needs. The live check is SelfSubjectAccessReview
(`preflight.review`), which asks the real authorizer.

    >>> rule = Rule(("get",), ("",), ("pods",), ())
    >>> grant = Grant(rule, "harmonyflow", "Role/r rule 0")
    >>> grant.allows(Permission("get", "", "pods", namespace="harmonyflow"))
    True
    >>> grant.allows(Permission("get", "", "pods", namespace=""))
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.preflight.permissions import Permission


@dataclass(frozen=True)
class Rule:
    """One PolicyRule of a Role or ClusterRole."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Rule:
        return cls(
            tuple(raw.get("verbs") or ()),
            tuple(raw.get("apiGroups") or ()),
            tuple(raw.get("resources") or ()),
            tuple(raw.get("resourceNames") or ()),
        )

    def allows(self, permission: Permission) -> bool:
        """RuleAllows for a resource request (evaluation_helpers.go)."""
        combined = permission.resource
        if permission.subresource:
            combined = f"{permission.resource}/{permission.subresource}"
        return (
            _matches(self.verbs, permission.verb)
            and _matches(self.api_groups, permission.group)
            and any(
                r in ("*", combined)
                or (permission.subresource and r == f"*/{permission.subresource}")
                for r in self.resources
            )
            and (not self.resource_names or permission.name in self.resource_names)
        )


def _matches(listed: Sequence[str], wanted: str) -> bool:
    return "*" in listed or wanted in listed


@dataclass(frozen=True)
class Grant:
    """A rule as bound to the subject: in one namespace (a RoleBinding) or everywhere
    (`namespace` None: a ClusterRoleBinding). `where` names the rule for messages."""

    rule: Rule
    namespace: str | None
    where: str

    def allows(self, permission: Permission) -> bool:
        if self.namespace is not None and permission.namespace != self.namespace:
            return False
        return self.rule.allows(permission)


@dataclass(frozen=True)
class Subject:
    kind: str  # ServiceAccount, User, Group
    name: str
    namespace: str = ""

    def bound_by(self, subjects: Iterable[Mapping[str, Any]]) -> bool:
        for subject in subjects:
            if subject.get("kind") != self.kind or subject.get("name") != self.name:
                continue
            if self.kind != "ServiceAccount" or subject.get("namespace") == self.namespace:
                return True
        return False


def grants(documents: Iterable[Mapping[str, Any]], subject: Subject) -> list[Grant]:
    """Every rule bound to `subject` by the bindings among `documents`."""
    docs = list(documents)
    roles = {
        (d.get("kind"), _meta(d, "namespace"), _meta(d, "name")): d
        for d in docs
        if d.get("kind") in ("Role", "ClusterRole")
    }
    found: list[Grant] = []
    for binding in docs:
        kind = binding.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not subject.bound_by(binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        scope = _meta(binding, "namespace") if kind == "RoleBinding" else None
        role_namespace = scope if ref.get("kind") == "Role" else None
        role = roles.get((ref.get("kind"), role_namespace, ref.get("name")))
        if role is None:
            continue  # a dangling roleRef grants nothing
        for index, raw in enumerate(role.get("rules") or []):
            where = f"{role['kind']}/{_meta(role, 'name')} rule {index}"
            found.append(Grant(Rule.of(raw), scope, where))
    return found


def _meta(document: Mapping[str, Any], key: str) -> str | None:
    value = (document.get("metadata") or {}).get(key)
    return None if value is None else str(value)


def uncovered(needs: Iterable[Permission], granted: Sequence[Grant]) -> list[Permission]:
    """The needs no grant allows."""
    return [p for p in needs if not any(g.allows(p) for g in granted)]


def unused(needs: Iterable[Permission], granted: Sequence[Grant]) -> list[Grant]:
    """The grants that allow none of the needs."""
    wanted = list(needs)
    return [g for g in granted if not any(g.allows(p) for p in wanted)]
