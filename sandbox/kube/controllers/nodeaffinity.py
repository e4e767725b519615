"""Node selector terms against a node: the matching nodeAffinity, PersistentVolume
nodeAffinity and StorageClass allowedTopologies share (`v1helper.MatchNodeSelectorTerms`,
`component-helpers/scheduling/corev1/nodeaffinity`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def node_selector_requirement_matches(
    requirement: Mapping[str, Any], values_by_key: Mapping[str, str]
) -> bool:
    """One matchExpressions entry against node labels (In, NotIn, Exists, DoesNotExist, Gt, Lt).

    >>> node_selector_requirement_matches(
    ...     {"key": "cores", "operator": "Gt", "values": ["4"]}, {"cores": "8"})
    True
    """
    key, operator = requirement.get("key", ""), requirement.get("operator", "")
    values = [str(v) for v in requirement.get("values") or []]
    present, value = key in values_by_key, values_by_key.get(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, want = int(str(value)), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def node_selector_term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """All expressions and fields of one term; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    node_fields = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
    return all(node_selector_requirement_matches(e, labels) for e in expressions) and all(
        node_selector_requirement_matches(f, node_fields) for f in fields
    )
