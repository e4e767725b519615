"""A table row resolves to the permissions SelfSubjectAccessReview is asked, and the
missing ones are said in one line."""

from __future__ import annotations

import doctest

import pytest

from resilience.preflight import needs, permissions, rbac
from resilience.preflight.permissions import (
    CHAOSK8S,
    CLUSTER,
    CONFIGURED,
    ByArgument,
    Call,
    Name,
    Permission,
    Where,
    message,
    missing,
    resolve,
    uses,
)

IN_HF = {"namespace": "harmonyflow"}
KIND = ByArgument(
    "kind", (("NetworkChaos", "networkchaos"), ("DNSChaos", "dnschaos")), "NetworkChaos"
)


@pytest.mark.parametrize(
    ("row", "call", "expected"),
    [
        pytest.param(
            uses("create", "pods/eviction"),
            Call(IN_HF, {}),
            ["create pods/eviction in harmonyflow"],
            id="subresource-in-the-argument-namespace",
        ),
        pytest.param(
            uses("list patch", "nodes", where=CLUSTER),
            Call(IN_HF, IN_HF),
            ["list nodes", "patch nodes"],
            id="cluster-scoped-has-no-namespace",
        ),
        pytest.param(
            uses("get", "deployments", "apps"),
            Call({}, IN_HF),
            ["get deployments in harmonyflow"],
            id="configuration-when-no-argument",
        ),
        pytest.param(
            uses("list", "pods", where=Where(configuration=None)),
            Call({}, IN_HF),
            ["list pods in every namespace"],
            id="no-namespace-anywhere-means-every-namespace",
        ),
        pytest.param(
            uses("list", "pods", where=CHAOSK8S),
            Call({}, IN_HF),
            ["list pods in default"],
            id="chaosk8s-ns-defaults-to-default-not-the-configuration",
        ),
        pytest.param(
            uses("list", "pods", where=Where(arguments=("namespaces",))),
            Call({"namespaces": ["a", "b"]}, IN_HF),
            ["list pods in a", "list pods in b"],
            id="a-list-of-namespaces",
        ),
        pytest.param(
            uses(
                "create", "networkchaos", "chaos-mesh.org", where=Where(("namespaces",), first=True)
            ),
            Call({"namespaces": ["a", "b"]}, {}),
            ["create networkchaos.chaos-mesh.org in a"],
            id="only-the-first-namespace",
        ),
        pytest.param(
            uses("delete", "deployments", "apps", name=Name("name", "{deployment}-chaos-canary")),
            Call({"deployment": "web"}, IN_HF),
            ["delete deployments named web-chaos-canary in harmonyflow"],
            id="name-from-a-template",
        ),
        pytest.param(
            uses("delete", "deployments", "apps", name=Name("name", "{deployment}-chaos-canary")),
            Call({"deployment": "web", "name": "mine"}, IN_HF),
            ["delete deployments named mine in harmonyflow"],
            id="name-argument-wins",
        ),
        pytest.param(
            uses("get", KIND, "chaos-mesh.org"),
            Call({"kind": "DNSChaos", "namespace": "x"}, {}),
            ["get dnschaos.chaos-mesh.org in x"],
            id="resource-chosen-by-an-argument",
        ),
        pytest.param(
            uses("get", KIND, "chaos-mesh.org"),
            Call({"kind": "PodChaos", "namespace": "x"}, {}),
            [],
            id="an-unknown-choice-fails-before-any-request",
        ),
        pytest.param(
            uses("list", "pods", where=CONFIGURED, when=("max_disrupted_pods",)),
            Call({}, IN_HF),
            [],
            id="conditional-row-not-taken",
        ),
        pytest.param(
            uses("list", "pods", where=CONFIGURED, when=("max_disrupted_pods",)),
            Call({}, {**IN_HF, "max_disrupted_pods": 1}),
            ["list pods in harmonyflow"],
            id="conditional-row-taken",
        ),
        pytest.param(
            uses("list", "pods", where=Where(arguments=("target.selector.namespaces",))),
            Call({"target": {"selector": {"namespaces": ["t"]}}}, {}),
            ["list pods in t"],
            id="dotted-argument-path",
        ),
    ],
)
def test_a_row_resolves_to_permissions(row, call, expected) -> None:  # type: ignore[no-untyped-def]
    assert sorted(str(p) for p in resolve(row, call)) == expected


def test_missing_is_every_need_not_answered_allowed_in_a_stable_order() -> None:
    evict = Permission("create", "", "pods", "eviction", "harmonyflow")
    scale = Permission("patch", "apps", "deployments", "scale", "harmonyflow")
    nodes = Permission("patch", "", "nodes")
    pods = Permission("list", "", "pods", namespace="harmonyflow")
    answers = {evict: False, pods: True}  # scale and nodes never answered
    assert missing([scale, pods, evict, nodes], answers) == [nodes, evict, scale]
    assert message([evict, scale]) == (
        "cannot create pods/eviction in harmonyflow; cannot patch deployments/scale in harmonyflow"
    )


def test_the_message_is_one_line_and_names_unknown_activities() -> None:
    line = message([Permission("patch", "", "nodes")], ["process kubectl", "x.y", "x.y"])
    assert line == "cannot patch nodes; unknown to the permission table: process kubectl, x.y"
    assert "\n" not in line


def test_the_worked_examples_in_the_docstrings() -> None:
    for module in (permissions, needs, rbac):
        assert doctest.testmod(module).failed == 0, module.__name__
