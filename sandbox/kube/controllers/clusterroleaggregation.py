"""ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the rules of every
ClusterRole its selectors match (how `admin`, `edit` and `view` get theirs).

Upstream: pkg/controller/clusterroleaggregation/clusterroleaggregation_controller.go
(`syncClusterRole`): for each selector in order, the matching ClusterRoles sorted by
name (the role itself skipped), their rules appended unless an equal rule is already
there; written only when the result differs. Any ClusterRole change re-queues every
aggregated role, so chains (`view` is aggregated into `edit`, `edit` into `admin`)
settle in a few passes.

>>> roles = [
...     {"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
...         {"matchLabels": {"aggregate-to-view": "true"}}]}},
...     {"metadata": {"name": "b", "labels": {"aggregate-to-view": "true"}},
...      "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]},
...     {"metadata": {"name": "a", "labels": {"aggregate-to-view": "true"}},
...      "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
...                {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]},
... ]
>>> [r["verbs"] for r in aggregated_rules(roles[0], roles)]
[['list'], ['get']]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from sandbox.kube.clock import Clock
from sandbox.kube.selectors import selector_from_match
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]
CLUSTER_ROLES = "rbac.authorization.k8s.io/clusterroles"


def aggregated_rules(
    role: Mapping[str, Any], cluster_roles: Sequence[Mapping[str, Any]]
) -> list[KubeObject]:
    """The rules `role` should hold: each selector's matches by name, rules deduplicated."""
    rules: list[KubeObject] = []
    name = role["metadata"]["name"]
    ordered = sorted(cluster_roles, key=lambda r: str(r["metadata"]["name"]))
    for raw in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        selector = selector_from_match(raw)
        if selector is None:  # a selector that matches nothing
            continue
        for candidate in ordered:
            metadata = candidate["metadata"]
            if metadata["name"] == name or not selector.matches(metadata.get("labels")):
                continue
            for rule in candidate.get("rules") or []:
                if rule not in rules:
                    rules.append(dict(rule))
    return rules


class ClusterRoleAggregationController:
    """Keeps every aggregated ClusterRole's `rules` equal to `aggregated_rules`."""

    name = "clusterrole-aggregation"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        return self.all_keys() if change.resource == CLUSTER_ROLES else []

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(
            r["metadata"]["name"]
            for r in self.store.snapshot(CLUSTER_ROLES)
            if r.get("aggregationRule") is not None
        )

    def reconcile(self, key: Hashable) -> float | None:
        role = self.store.find(CLUSTER_ROLES, "", str(key))
        if role is None or role.get("aggregationRule") is None:
            return None
        rules = aggregated_rules(role, self.store.snapshot(CLUSTER_ROLES))
        if rules != (role.get("rules") or []):
            self.store.mutate(CLUSTER_ROLES, "", str(key), lambda obj: obj.update(rules=rules))
        return None
