"""Drift of the NetworkPolicies: the live ones in the namespace against deploy/base's.

Every NetworkPolicy deploy/base renders must be live with the same spec, and no
other may be: an extra policy widens (or narrows) what the pods may reach just as
a changed rule does. Both sides get upstream's defaults first (`policyTypes` from
the rules, `protocol: TCP`, an absent selector as `{}`), and empty fields are
dropped, so that what the API server fills in is no drift.

What overlays may change is no drift either, as long as the live value is one an
overlay of deploy/ sets: the conformance rules let them change an egress
ipBlock's CIDR (the sandbox's databases are on loopback, not in the VPC), so the
live CIDR may be deploy/base's or an overlay's, and nothing else.

A drift reads: "NetworkPolicy harmonyflow/allow-session-state-egress:
spec.egress[1].to[0].ipBlock.cidr is 0.0.0.0/0 on the cluster, deploy/base says
10.0.0.0/16 (an overlay may set 127.0.0.0/8)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience import objectpath
from resilience.conformance import overlay_may_change
from resilience.manifests import RenderedManifests
from resilience.suites.drift import ABSENT, Drift

KIND = "NetworkPolicy"
PRESENT = "present"


@dataclass(frozen=True)
class IntendedNetworkPolicies:
    """deploy/base's NetworkPolicies (flattened, defaults applied) and the values
    overlays set where they may change them."""

    namespace: str
    fields: Mapping[str, Mapping[str, Any]]  # name -> flattened path -> value
    overlay_values: Mapping[tuple[str, str], tuple[Any, ...]]  # (name, path) -> values


def intended_network_policies(
    base: RenderedManifests, overlays: Sequence[RenderedManifests], namespace: str
) -> IntendedNetworkPolicies:
    fields = {obj.name: _flat(obj.body) for obj in base.of_kind(KIND)}
    overlay_values: dict[tuple[str, str], list[Any]] = {}
    for overlay in overlays:
        for obj in overlay.of_kind(KIND):
            intended = fields.get(obj.name, {})
            for path, value in _flat(obj.body).items():
                if value != intended.get(path) and overlay_may_change(KIND, path):
                    values = overlay_values.setdefault((obj.name, path), [])
                    if value not in values:
                        values.append(value)
    return IntendedNetworkPolicies(
        namespace, fields, {key: tuple(values) for key, values in overlay_values.items()}
    )


def network_policy_drift(
    live: Sequence[Mapping[str, Any]], intended: IntendedNetworkPolicies
) -> tuple[Drift, ...]:
    """Every intended policy missing or different on the cluster, and every extra one.

    `live`: the namespace's NetworkPolicies as API JSON (camelCase).
    """
    live_fields = {str((p.get("metadata") or {}).get("name")): _flat(p) for p in live}
    found: list[Drift] = []
    for name in sorted(set(intended.fields) | set(live_fields)):
        where = f"{KIND} {intended.namespace}/{name}"
        want, have = intended.fields.get(name), live_fields.get(name)
        if want is None or have is None:
            found.append(
                Drift(where, "(the object)", ABSENT if want is None else PRESENT, _present(have))
            )
            continue
        for path in sorted(set(want) | set(have)):
            wanted, seen = want.get(path, ABSENT), have.get(path, ABSENT)
            if wanted == seen:
                continue
            alternatives = intended.overlay_values.get((name, path), ())
            if seen in alternatives:
                continue
            shown = wanted
            if alternatives:
                shown = f"{wanted} (an overlay may set {', '.join(map(str, alternatives))})"
            found.append(Drift(where, path, shown, seen))
    return tuple(found)


def normalized_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with upstream's defaults and without empty fields.

    >>> normalized_spec({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]})
    {'egress': [{'ports': [{'protocol': 'TCP', 'port': 53}]}], 'policyTypes': '[Egress, Ingress]'}
    """
    spec = dict(spec)
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    for direction in ("ingress", "egress"):
        spec[direction] = [
            {
                **rule,
                "ports": [{"protocol": "TCP", **port} for port in rule.get("ports") or []],
            }
            for rule in spec.get(direction) or []
        ]
    pruned: dict[str, Any] = _pruned(spec)
    return pruned


def _flat(policy: Mapping[str, Any]) -> dict[str, Any]:
    body = {"spec": normalized_spec(policy.get("spec") or {})}
    return dict(objectpath.flatten(body))


def _pruned(value: Any) -> Any:
    """None, [] and {} dropped from mappings (absent and empty mean the same there);
    list items kept as they are (an empty rule `{}` allows everything). A list of
    plain values (policyTypes, except, matchExpressions' values) is a set: one sorted
    value, `[Egress, Ingress]`, so that a drift shows it whole."""
    if isinstance(value, Mapping):
        kept = {key: _pruned(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, [], {})}
    if isinstance(value, list):
        if value and not any(isinstance(item, Mapping | list) for item in value):
            return "[" + ", ".join(sorted(str(item) for item in value)) + "]"
        return [_pruned(item) for item in value]
    return value


def _present(fields: Mapping[str, Any] | None) -> str:
    return ABSENT if fields is None else PRESENT
