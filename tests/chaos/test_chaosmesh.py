"""Chaos Mesh faults: the objects the experiments create are valid Chaos Mesh objects
(the CRDs' published schema), the safety decisions as tables, and, against an API
server that does not serve Chaos Mesh, a one-line refusal and a journal that deletes
what it lists (404 is recovered)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chaoslib import substitute
from chaoslib.exceptions import InterruptExecution, InvalidActivity
from kubernetes import client
from kubernetes.config import kube_config

from resilience.chaos import chaosmesh, undo
from resilience.chaos.chaosmesh_spec import (
    ChaosObject,
    PodSelection,
    condition,
    dependency_hosts,
    dns_chaos,
    most_selected,
    network_chaos,
    planned_disruptions,
    refusal,
)
from resilience.safety import undo_journal
from tests.builders import REPO_ROOT
from tests.sandbox.harness import ApiHarness

SCHEMAS = REPO_ROOT / "schemas" / "chaos-mesh"
CHAOS_MESH_EXPERIMENTS = [
    "dependency-latency",
    "dependency-partition",
    "ingress-packet-loss",
    "dns-failure",
]
ALLOW = ("harmonyflow", "harmonyflow-staging")


def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / f"chaos-mesh.org_{kind.lower()}.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def assert_valid(chaos: ChaosObject) -> None:
    jsonschema.Draft7Validator(crd_schema(chaos.kind)).validate(chaos.body)


def seed_env() -> dict[str, str]:
    """The session-state container's env in deploy/base (the endpoints on staging)."""
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "base" / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


# what `resilience sandbox env` exports, for the `{type: env}` values without a default
ENV_STAND_INS = {
    "HARMONYFLOW_INGRESS_URL": "http://127.0.0.1:9",
    "HARMONYFLOW_INGRESS_SOURCES": "127.0.3.60",
}


def configuration_of(experiment: dict[str, Any]) -> dict[str, Any]:
    """Declared values; `{type: env}` ones take their default (or a stand-in)."""
    values = {}
    for key, declared in (experiment.get("configuration") or {}).items():
        if isinstance(declared, dict):
            values[key] = declared.get("default", ENV_STAND_INS[declared["key"]])
        else:
            values[key] = declared
    return values


def objects_of(name: str, variables: dict[str, Any] | None = None) -> list[ChaosObject]:
    """The Chaos Mesh objects the experiment's method would create, as the actions build
    them (endpoints read from deploy/base's env instead of the live Deployment)."""
    experiment = yaml.safe_load((REPO_ROOT / "experiments" / f"{name}.yaml").read_text())
    configuration = {**configuration_of(experiment), **(variables or {})}
    built = []
    for activity in experiment["method"]:
        func = activity["provider"].get("func")
        if activity["provider"].get("module") != "resilience.chaos.chaosmesh":
            continue
        if func not in ("inject_network_fault", "inject_dns_fault"):
            continue
        args = substitute(activity["provider"]["arguments"], configuration, {})
        selection = PodSelection.of(
            args.get("namespaces") or [configuration["namespace"]],
            args.get("label_selectors"),
            args.get("mode", "all"),
            args.get("value"),
        )
        env = seed_env()
        if func == "inject_dns_fault":
            patterns = list(args.get("patterns", [])) + dependency_hosts(
                env, args.get("patterns_from_env", [])
            )
            built.append(
                dns_chaos(
                    args["name"], "t0", selection, args["action"], patterns, args.get("duration")
                )
            )
            continue
        hosts = list(args.get("external_targets", [])) + dependency_hosts(
            env, args.get("targets_from_env", [])
        )
        action = args["action"]
        built.append(
            network_chaos(
                args["name"],
                "t0",
                selection,
                action,
                args.get("direction", "to"),
                hosts,
                None,
                args.get(action),
                args.get("duration"),
            )
        )
    return built


@pytest.mark.parametrize(
    ("experiment", "variables", "expected"),
    [
        pytest.param(
            "dependency-latency",
            {},
            [
                ("NetworkChaos", "delay", ["harmonyflow-db.xxxx.us-west-2.rds.amazonaws.com"]),
                ("NetworkChaos", "delay", ["harmonyflow-db.xxxx.us-west-2.rds.amazonaws.com"]),
                ("NetworkChaos", "delay", ["harmonyflow-redis.xxxx.use1.cache.amazonaws.com"]),
                ("NetworkChaos", "delay", ["harmonyflow-redis.xxxx.use1.cache.amazonaws.com"]),
            ],
            id="latency-database-then-redis-each-at-two-latencies",
        ),
        pytest.param(
            "dependency-partition",
            {},
            [("NetworkChaos", "partition", ["harmonyflow-redis.xxxx.use1.cache.amazonaws.com"])],
            id="partition-from-redis",
        ),
        pytest.param(
            "dependency-partition",
            {"fault_action": "loss"},
            [("NetworkChaos", "loss", ["harmonyflow-redis.xxxx.use1.cache.amazonaws.com"])],
            id="the-same-as-loss-100",
        ),
        pytest.param(
            "ingress-packet-loss",
            {},
            [("NetworkChaos", "loss", ["127.0.3.60"])],
            id="loss-toward-the-ingress",
        ),
        pytest.param(
            "dns-failure",
            {},
            [("DNSChaos", "error", ["harmonyflow-db.xxxx.us-west-2.rds.amazonaws.com"])],
            id="dns-error-for-the-database",
        ),
    ],
)
def test_every_object_an_experiment_creates_is_valid_for_chaos_mesh(
    experiment: str, variables: dict[str, Any], expected: list[tuple[str, str, list[str]]]
) -> None:
    objects = objects_of(experiment, variables)
    for chaos in objects:
        assert_valid(chaos)
    seen = [
        (
            c.kind,
            c.body["spec"]["action"],
            c.body["spec"].get("externalTargets") or c.body["spec"].get("patterns"),
        )
        for c in objects
    ]
    assert seen == expected


def test_the_loss_at_100_percent_is_the_partition_s_twin() -> None:
    [loss] = objects_of("dependency-partition", {"fault_action": "loss"})
    [partition] = objects_of("dependency-partition")
    assert loss.body["spec"]["loss"] == {"loss": "100"}
    assert "loss" not in partition.body["spec"]
    same = ("selector", "mode", "direction", "externalTargets", "duration")
    assert all(loss.body["spec"][k] == partition.body["spec"][k] for k in same)


def test_the_schema_catches_what_chaos_mesh_would_reject() -> None:
    """The can-fail twin: a misspelt mode or a delay without latency is invalid."""
    [chaos] = objects_of("ingress-packet-loss")
    bad_mode = {**chaos.body, "spec": {**chaos.body["spec"], "mode": "some"}}
    no_latency = {**chaos.body, "spec": {**chaos.body["spec"], "delay": {"jitter": "5ms"}}}
    for body in (bad_mode, no_latency):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(crd_schema("NetworkChaos")).validate(body)


@pytest.mark.parametrize(
    ("mode", "value", "count", "expected"),
    [
        pytest.param("one", None, 3, 1, id="one"),
        pytest.param("all", None, 3, 3, id="all"),
        pytest.param("fixed", "2", 3, 2, id="fixed"),
        pytest.param("fixed", "5", 3, 3, id="fixed-beyond-the-matched"),
        pytest.param("fixed-percent", "34", 3, 2, id="fixed-percent-rounds-up"),
        pytest.param("fixed-percent", "1", 3, 1, id="fixed-percent-at-least-one"),
        pytest.param("random-max-percent", "50", 4, 2, id="random-max-percent-at-its-max"),
        pytest.param("all", None, 0, 0, id="nothing-matched"),
    ],
)
def test_how_many_pods_a_mode_picks(
    mode: str, value: str | None, count: int, expected: int
) -> None:
    assert most_selected(mode, value, count) == expected


@pytest.mark.parametrize(
    ("mode", "value"),
    [
        pytest.param("fixed", "0", id="fixed-zero"),
        pytest.param("fixed", "two", id="not-a-number"),
        pytest.param("fixed-percent", "101", id="over-100-percent"),
        pytest.param("fixed-percent", "0", id="zero-percent"),
    ],
)
def test_a_value_chaos_mesh_rejects_is_an_invalid_activity(mode: str, value: str) -> None:
    with pytest.raises(InvalidActivity):
        most_selected(mode, value, 3)


@pytest.mark.parametrize(
    ("mode", "value", "matched", "running", "expected"),
    [
        pytest.param("all", None, 4, 3, 3, id="only-running-pods-are-disrupted"),
        pytest.param("fixed-percent", "50", 4, 3, 2, id="percent-of-what-chaos-mesh-counts"),
        pytest.param("one", None, 3, 0, 0, id="none-running"),
    ],
)
def test_planned_disruptions(
    mode: str, value: str | None, matched: int, running: int, expected: int
) -> None:
    selection = PodSelection.of(["harmonyflow"], {"app": "x"}, mode, value)
    assert planned_disruptions(selection, matched, running) == expected


@pytest.mark.parametrize(
    ("namespaces", "running", "planned", "budget", "fragment"),
    [
        pytest.param(["harmonyflow"], 3, 3, 10, None, id="within-everything"),
        pytest.param(["harmonyflow"], 3, 3, None, None, id="no-budget-declared"),
        pytest.param(
            ["kube-system"],
            3,
            1,
            10,
            "'kube-system' is not on the allowlist",
            id="off-the-allowlist",
        ),
        pytest.param(
            ["harmonyflow", "default"],
            3,
            1,
            10,
            "'default' is not on the allowlist",
            id="any-namespace-off-the-list",
        ),
        pytest.param(["harmonyflow"], 0, 0, 10, "matches no running pod", id="selects-nothing"),
        pytest.param(
            ["harmonyflow"],
            3,
            3,
            1,
            "would disrupt 3 pods at once, more than the budget of 1 (max_disrupted_pods)",
            id="over-the-budget",
        ),
        pytest.param(["harmonyflow"], 1, 1, 1, None, id="at-the-budget"),
    ],
)
def test_refusals_are_one_line(
    namespaces: list[str], running: int, planned: int, budget: int | None, fragment: str | None
) -> None:
    refused = refusal("NetworkChaos harmonyflow/x", namespaces, ALLOW, running, planned, budget)
    if fragment is None:
        assert refused is None
    else:
        assert refused is not None and fragment in refused and "\n" not in refused


@pytest.mark.parametrize(
    ("action", "direction", "external", "target", "parameters"),
    [
        pytest.param("delay", "from", ["db"], None, {"latency": "1ms"}, id="netem-from-external"),
        pytest.param("delay", "both", [], None, {"latency": "1ms"}, id="netem-both-no-target"),
        pytest.param("partition", "from", [], None, None, id="partition-from-nothing"),
        pytest.param("delay", "to", ["db"], None, None, id="delay-without-its-block"),
        pytest.param("duplicate", "to", ["db"], None, {"duplicate": "1"}, id="unsupported-action"),
        pytest.param("delay", "sideways", ["db"], None, {"latency": "1ms"}, id="bad-direction"),
    ],
)
def test_what_chaos_mesh_s_webhook_rejects_is_refused_before_creating(
    action: str,
    direction: str,
    external: list[str],
    target: PodSelection | None,
    parameters: dict[str, Any] | None,
) -> None:
    selection = PodSelection.of(["harmonyflow"], {"app": "x"}, "all", None)
    with pytest.raises(InvalidActivity):
        network_chaos("x", "t", selection, action, direction, external, target, parameters)


def test_a_partition_from_a_target_selector_is_valid() -> None:
    selection = PodSelection.of(["harmonyflow"], {"app": "x"}, "one", None)
    target = PodSelection.of(["harmonyflow"], {"app": "y"}, "fixed", 2)
    chaos = network_chaos("x", "t", selection, "partition", "both", (), target)
    assert_valid(chaos)
    assert chaos.body["spec"]["target"] == {
        "selector": {"namespaces": ["harmonyflow"], "labelSelectors": {"app": "y"}},
        "mode": "fixed",
        "value": "2",
    }


@pytest.mark.parametrize(
    ("env", "names", "expected"),
    [
        pytest.param({"DB_URL": "postgresql://u@db.x:5432/h"}, ["DB_URL"], ["db.x"], id="one-url"),
        pytest.param(
            {"A": "amqp://u@r1:5672/,amqp://u@r2:5672/"}, ["A"], ["r1", "r2"], id="a-list"
        ),
        pytest.param(
            {"A": "redis://c:6379", "B": "redis://c:6379"}, ["A", "B"], ["c"], id="no-repeats"
        ),
    ],
)
def test_dependency_hosts(env: dict[str, str], names: list[str], expected: list[str]) -> None:
    assert dependency_hosts(env, names) == expected


def test_a_missing_env_var_is_named() -> None:
    with pytest.raises(InvalidActivity, match="REDIS_URL"):
        dependency_hosts({"DB_URL": "postgresql://db"}, ["REDIS_URL"])


def test_condition_reads_chaos_mesh_s_status() -> None:
    body = {"status": {"conditions": [{"type": "AllInjected", "status": "False"}]}}
    assert condition(body, "AllInjected") == "False"
    assert condition(body, "AllRecovered") is None


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiHarness]:
    """An API server that, like a cluster without Chaos Mesh, serves no chaos-mesh.org."""
    harness = ApiHarness(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(harness.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(harness.kubeconfig))
    monkeypatch.setenv(undo_journal.ENV_VAR, str(tmp_path / "recovery.jsonl"))
    try:
        yield harness
    finally:
        harness.close()


def test_without_chaos_mesh_the_fault_is_refused_in_one_line_and_nothing_is_journaled(
    api: ApiHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox serves chaos-mesh.org/v1alpha1; a version nobody serves stands for a
    cluster without Chaos Mesh (the API server answers 404 for the group version)."""
    assert chaosmesh.served(client.CustomObjectsApi(api.api_client()), "NetworkChaos")
    monkeypatch.setattr(chaosmesh, "VERSION", "v0alpha0")
    with pytest.raises(InterruptExecution) as refused:
        chaosmesh.inject_network_fault(
            "x",
            "delay",
            {"app": "session-state-service"},
            external_targets=["db.example"],
            delay={"latency": "50ms"},
            configuration={"namespace": "harmonyflow", "max_disrupted_pods": 10},
        )
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("NetworkChaos harmonyflow/x: Chaos Mesh is not installed")
    assert undo_journal.read(tmp_path / "recovery.jsonl") == []


def test_the_delete_is_journaled_before_the_create_and_recover_deletes_it(
    api: ApiHarness, tmp_path: Path
) -> None:
    """What a run killed right after its create leaves: the object, and its delete in the
    journal; `resilience recover` deletes it, and then finds nothing more to do."""
    journal = tmp_path / "recovery.jsonl"
    selection = PodSelection.of(["harmonyflow"], {"app": "x"}, "all", None)
    chaos = network_chaos("x", "tok", selection, "partition", "to", ["db.example"])
    chaosmesh._create(chaos, None)
    [pending] = undo_journal.pending(undo_journal.read(journal))
    assert (pending.kind, pending.target["name"], pending.target["token"]) == (
        "delete-chaos-mesh-object",
        "x",
        "tok",
    )
    objects = client.CustomObjectsApi(api.api_client())
    assert objects.list_namespaced_custom_object(
        "chaos-mesh.org", "v1alpha1", "harmonyflow", "networkchaos"
    )["items"]
    [deleted] = undo.recover(journal)
    assert deleted.startswith("NetworkChaos harmonyflow/x deleted in "), deleted
    assert not objects.list_namespaced_custom_object(
        "chaos-mesh.org", "v1alpha1", "harmonyflow", "networkchaos"
    )["items"]
    assert undo_journal.pending(undo_journal.read(journal)) == []
    assert undo.recover(journal) == ["nothing to recover"]


def test_recover_counts_an_object_already_gone_as_recovered(
    api: ApiHarness, tmp_path: Path
) -> None:
    journal = tmp_path / "recovery.jsonl"
    selection = PodSelection.of(["harmonyflow"], {"app": "x"}, "all", None)
    chaos = network_chaos("gone", "tok2", selection, "partition", "to", ["db.example"])
    chaosmesh._create(chaos, None)
    client.CustomObjectsApi(api.api_client()).delete_namespaced_custom_object(
        "chaos-mesh.org", "v1alpha1", "harmonyflow", "networkchaos", "gone"
    )
    assert undo.recover(journal) == ["NetworkChaos harmonyflow/gone: already gone"]


def test_remove_chaos_marks_only_its_own_undos_done(api: ApiHarness, tmp_path: Path) -> None:
    journal = tmp_path / "recovery.jsonl"
    selection = PodSelection.of(["harmonyflow"], {"app": "x"}, "all", None)
    for name in ("a", "b"):
        undo_journal.record(
            "delete-chaos-mesh-object",
            dns_chaos(name, name, selection, "error", ["d"]).undo_target(),
        )
    undo_journal.record("uncordon", {"nodes": ["n1"]})
    before = time.time()
    first = chaosmesh.remove_chaos(name="a")
    assert first["removed"] == ["DNSChaos harmonyflow/a: already gone"]
    # when it was gone: the end of its fault band in the game-day report
    assert [(d["kind"], d["namespace"], d["name"]) for d in first["deleted"]] == [
        ("DNSChaos", "harmonyflow", "a")
    ]
    assert before <= first["deleted"][0]["gone_at"] <= time.time() + 0.001
    assert [u.target.get("name") for u in undo_journal.pending(undo_journal.read(journal))] == [
        "b",
        None,
    ]
    assert chaosmesh.remove_chaos()["removed"] == ["DNSChaos harmonyflow/b: already gone"]
    assert [u.kind for u in undo_journal.pending(undo_journal.read(journal))] == ["uncordon"]
