"""Kubernetes permissions as data: what one request needs, how a table row resolves to it,
and how missing ones are said in one line.

A `Permission` is exactly what a SelfSubjectAccessReview asks (authorization.k8s.io/v1
`ResourceAttributes`: verb, group, resource, subresource, namespace, name). A `Uses` is a
row of the table (`preflight.table`): the requests one activity makes, with the
namespace and name read from its arguments and the experiment's configuration the way
the activity reads them.

    >>> call = Call({"namespace": "harmonyflow"}, {})
    >>> sorted(str(p) for p in resolve(uses("create", "pods/eviction"), call))
    ['create pods/eviction in harmonyflow']
    >>> sorted(str(p) for p in resolve(uses("patch", "nodes", where=CLUSTER), call))
    ['patch nodes']
    >>> message([Permission("create", "", "pods", "eviction", "harmonyflow"),
    ...          Permission("patch", "apps", "deployments", "scale", "harmonyflow")])
    'cannot create pods/eviction in harmonyflow; cannot patch deployments/scale in harmonyflow'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Permission:
    """One request's authorization attributes (what SelfSubjectAccessReview is asked).

    `namespace` None: a cluster-scoped resource (nodes); "": a namespaced resource in
    every namespace (a list across namespaces, which only a ClusterRoleBinding grants).
    Both are sent as the empty namespace, as the API server authorizes them.
    """

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str | None = None
    name: str = ""

    def __str__(self) -> str:
        """`create pods/eviction in harmonyflow`, `patch nodes`, `list pods in every
        namespace`, `create networkchaos.chaos-mesh.org in harmonyflow`: kubectl's way of
        naming a resource, its group left out for Kubernetes' own groups (no dot, or
        `*.k8s.io`, the suffix reserved for them)."""
        resource = self.resource
        if self.group and "." in self.group and not self.group.endswith(".k8s.io"):
            resource = f"{resource}.{self.group}"
        if self.subresource:
            resource = f"{resource}/{self.subresource}"
        named = f" named {self.name}" if self.name else ""
        if self.namespace is None:
            where = ""
        elif self.namespace:
            where = f" in {self.namespace}"
        else:
            where = " in every namespace"
        return f"{self.verb} {resource}{named}{where}"


@dataclass(frozen=True)
class Where:
    """Where an activity's requests go: the first of `arguments` it was given (dotted
    paths into them; a list means several namespaces), else the experiment's
    `configuration` key, else `default`; None in the end means every namespace.
    `cluster`: a cluster-scoped resource, no namespace at all; `first`: only the first
    of several (a Chaos Mesh object lives in the first namespace it selects)."""

    arguments: tuple[str, ...] = ("namespace",)
    configuration: str | None = "namespace"
    default: str | None = None
    cluster: bool = False
    first: bool = False


# The namespace argument, else the experiment's `namespace` (what our activities take).
NAMESPACE = Where()
CLUSTER = Where(arguments=(), configuration=None, cluster=True)
# Only the experiment's (or the suite's) namespace: activities that read it from there.
CONFIGURED = Where(arguments=(), configuration="namespace")
EVERY_NAMESPACE = Where(arguments=(), configuration=None)
# chaostoolkit-kubernetes: `ns`, default "default"; never the configuration.
CHAOSK8S = Where(arguments=("ns",), configuration=None, default="default")


@dataclass(frozen=True)
class Name:
    """A request for one object by name: the `argument`, else `template` formatted with
    the arguments (`{deployment}-chaos-canary`)."""

    argument: str | None = "name"
    template: str | None = None


@dataclass(frozen=True)
class ByArgument:
    """A resource that depends on an argument (`kind: DNSChaos` -> `dnschaos`); a value
    not in `choices` makes the activity fail before any request, so it needs nothing."""

    argument: str
    choices: tuple[tuple[str, str], ...]
    default: str


@dataclass(frozen=True)
class Uses:
    """The requests one activity (or watch, or suite) makes of one resource."""

    verbs: tuple[str, ...]
    resource: str | ByArgument  # "pods", "pods/eviction" (resource/subresource)
    group: str = ""
    where: Where = NAMESPACE
    name: Name | None = None
    # only when every one of these argument (or configuration) keys is set
    when: tuple[str, ...] = ()


def uses(
    verbs: str,
    resource: str | ByArgument,
    group: str = "",
    *,
    where: Where = NAMESPACE,
    name: Name | None = None,
    when: tuple[str, ...] = (),
) -> Uses:
    """A table row: `uses("get list watch", "pods")`."""
    return Uses(tuple(verbs.split()), resource, group, where, name, when)


@dataclass(frozen=True)
class Call:
    """One activity call as the preflight sees it: its arguments and the experiment's
    configuration, both with `${...}` already substituted."""

    arguments: Mapping[str, Any] = field(default_factory=dict)
    configuration: Mapping[str, Any] = field(default_factory=dict)

    def argument(self, path: str) -> Any:
        """A dotted path into the arguments (`target.selector.namespaces`), None if absent."""
        value: Any = self.arguments
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    def is_set(self, key: str) -> bool:
        value = self.argument(key)
        if value is None:
            value = self.configuration.get(key)
        return value not in (None, "", [], {})


def resolve(row: Uses, call: Call) -> frozenset[Permission]:
    """The permissions one table row stands for in this call."""
    if not all(call.is_set(key) for key in row.when):
        return frozenset()
    resource = _resource(row.resource, call)
    if resource is None:
        return frozenset()
    plural, _, subresource = resource.partition("/")
    name = _name(row.name, call)
    return frozenset(
        Permission(verb, row.group, plural, subresource, namespace, name)
        for verb in row.verbs
        for namespace in namespaces(row.where, call)
    )


def namespaces(where: Where, call: Call) -> tuple[str | None, ...]:
    """The namespaces a row's requests go to (see `Where`).

    >>> namespaces(Where(arguments=("namespaces",)), Call({"namespaces": ["a", "b"]}, {}))
    ('a', 'b')
    >>> namespaces(CHAOSK8S, Call({}, {"namespace": "harmonyflow"}))
    ('default',)
    >>> namespaces(Where(configuration=None), Call({}, {"namespace": "harmonyflow"}))
    ('',)
    """
    if where.cluster:
        return (None,)
    for path in where.arguments:
        value = call.argument(path)
        if isinstance(value, str) and value:
            return (value,)
        if isinstance(value, Sequence) and not isinstance(value, str) and value:
            listed = tuple(str(v) for v in value)
            return listed[:1] if where.first else listed
    if where.configuration is not None:
        configured = call.configuration.get(where.configuration)
        if isinstance(configured, str) and configured:
            return (configured,)
    return (where.default or "",)


def _resource(resource: str | ByArgument, call: Call) -> str | None:
    if isinstance(resource, str):
        return resource
    given = call.argument(resource.argument)
    return dict(resource.choices).get(str(given) if given is not None else resource.default)


def _name(name: Name | None, call: Call) -> str:
    if name is None:
        return ""
    if name.argument is not None:
        given = call.argument(name.argument)
        if isinstance(given, str) and given:
            return given
    if name.template is None:
        return ""
    try:
        return name.template.format(**call.arguments)
    except (KeyError, IndexError):
        return ""  # the activity fails on a missing argument before it asks anything


def missing(needs: Iterable[Permission], answers: Mapping[Permission, bool]) -> list[Permission]:
    """The needs not answered "allowed", in a stable order (an unanswered one is missing).

    >>> pods = Permission("list", "", "pods", namespace="harmonyflow")
    >>> nodes = Permission("patch", "", "nodes")
    >>> [str(p) for p in missing([pods, nodes], {pods: True})]
    ['patch nodes']
    """
    return sorted((p for p in set(needs) if not answers.get(p, False)), key=order)


def order(permission: Permission) -> tuple[str, ...]:
    """Sort key: by namespace (cluster-scoped first), resource, verb and name."""
    p = permission
    scope = "" if p.namespace is None else f"~{p.namespace}"
    return (scope, p.group, p.resource, p.subresource, p.verb, p.name)


def message(absent: Sequence[Permission], unknown: Sequence[str] = ()) -> str:
    """One line: every missing permission, then every activity the table does not know.

    >>> message([], ["chaosk8s.secret.actions.delete_secret"])
    'unknown to the permission table: chaosk8s.secret.actions.delete_secret'
    """
    parts = [f"cannot {p}" for p in absent]
    if unknown:
        parts.append(f"unknown to the permission table: {', '.join(sorted(set(unknown)))}")
    return "; ".join(parts)
