"""Label and field selectors, parsed once and matched against plain objects.

Label selector syntax as `k8s.io/apimachinery/pkg/labels`: `a=b`, `a==b`,
`a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`. Field selectors accept only the
fields the real API server supports for each resource; anything else is a 400
"field label not supported", as upstream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.kube.errors import bad_request

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # = != in notin exists !
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present  # "!"


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_SET = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text:
        return LabelSelector()
    requirements = []
    for term in _split_terms(text):
        if match := _SET.match(term):
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _EQ.match(term):
            operator = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(match.group(1), operator, (match.group(3),)))
        elif match := _EXISTS.match(term):
            requirements.append(Requirement(match.group(2), "!" if match.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {term!r} in labelSelector {text!r}")
    return LabelSelector(tuple(requirements))


def selector_from_match(selector: Mapping[str, Any] | None) -> LabelSelector | None:
    """A `metav1.LabelSelector` object; None means "matches nothing" (PDB, Service)."""
    if selector is None:
        return None
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        requirements.append(
            Requirement(
                expression["key"],
                operators[expression["operator"]],
                tuple(expression.get("values") or ()),
            )
        )
    return LabelSelector(tuple(requirements))


def service_selector(service: Mapping[str, Any]) -> LabelSelector | None:
    """A Service selects by equality on spec.selector; none (or empty) means unmanaged."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return None
    return selector_from_match({"matchLabels": selector})


def selector_string(match_labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


# ---- field selectors ----

FieldGetter = Callable[[KubeObject], str]


def _path(*keys: str) -> FieldGetter:
    def get(obj: KubeObject) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


_COMMON: dict[str, FieldGetter] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
SUPPORTED_FIELDS: dict[str, dict[str, FieldGetter]] = {
    "pods": {
        **_COMMON,
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": _path("spec", "hostNetwork"),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "nodes": {**_COMMON, "spec.unschedulable": _path("spec", "unschedulable")},
    "events": {
        **_COMMON,
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "events.k8s.io/events": {
        **_COMMON,
        "regarding.kind": _path("regarding", "kind"),
        "regarding.namespace": _path("regarding", "namespace"),
        "regarding.name": _path("regarding", "name"),
        "regarding.uid": _path("regarding", "uid"),
        "reason": _path("reason"),
        "type": _path("type"),
        "reportingController": _path("reportingController"),
    },
    "secrets": {**_COMMON, "type": _path("type")},
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str
    getter: FieldGetter

    def matches(self, obj: KubeObject) -> bool:
        return (self.getter(obj) == self.value) == self.equal


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: KubeObject) -> bool:
        return all(requirement.matches(obj) for requirement in self.requirements)


def parse_field_selector(text: str | None, resource_key: str) -> FieldSelector:
    if not text:
        return FieldSelector()
    supported = SUPPORTED_FIELDS.get(resource_key, _COMMON)
    requirements = []
    for term in text.split(","):
        if not term.strip():
            continue
        match = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if match is None:
            raise bad_request(f"invalid selector: {text!r}; can't understand {term!r}")
        name, operator, value = match.groups()
        getter = supported.get(name)
        if getter is None:
            raise bad_request(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, operator != "!=", value, getter))
    return FieldSelector(tuple(requirements))
