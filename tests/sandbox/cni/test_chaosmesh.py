"""Chaos Mesh's decisions (sandbox/cni/chaosmesh.py) as tables: selection, faults, time, status."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from sandbox.cni import chaosmesh
from sandbox.cni.chaosmesh import (
    INJECTED,
    NOT_INJECTED,
    InvalidChaos,
    NoPodSelected,
    Record,
    RecordEvent,
    SelectorError,
    UnsupportedChaos,
)
from sandbox.cni.faults import NetemParams, PacketPath, PodEndpoint
from sandbox.kube.clock import parse_time

T0 = parse_time("2026-01-01T00:00:00Z")


def make_pod(
    name: str,
    namespace: str = "hf",
    phase: str = "Running",
    node: str = "n1",
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations or {},
        },
        "spec": {"nodeName": node, "containers": [{"name": "app"}, {"name": "sidecar"}]},
        "status": {"phase": phase},
    }


PODS = [
    make_pod("web-b", app="web"),
    make_pod("web-a", app="web", node="n2"),
    make_pod("web-c", app="web", phase="Pending", annotations={"tier": "gold"}),
    make_pod("db-0", app="db"),
    make_pod("web-x", namespace="other", app="web"),
]
NODES = [
    {"metadata": {"name": "n1", "labels": {"zone": "a"}}},
    {"metadata": {"name": "n2", "labels": {"zone": "b"}}},
]


def names(pods: list[Any]) -> list[str]:
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(
            {"namespaces": ["hf"], "labelSelectors": {"app": "web"}},
            ["hf/web-a", "hf/web-b", "hf/web-c"],
            id="labels-in-one-namespace-in-list-order-whatever-the-phase",
        ),
        pytest.param(
            {"labelSelectors": {"app": "web"}},
            ["hf/web-a", "hf/web-b", "hf/web-c", "other/web-x"],
            id="no-namespaces-means-every-namespace",
        ),
        pytest.param(
            {"namespaces": ["other", "hf"], "labelSelectors": {"app": "web"}},
            ["other/web-x", "hf/web-a", "hf/web-b", "hf/web-c"],
            id="namespaces-listed-in-their-order",
        ),
        pytest.param(
            {
                "namespaces": ["hf"],
                "expressionSelectors": [{"key": "app", "operator": "In", "values": ["db"]}],
            },
            ["hf/db-0"],
            id="expression-selectors",
        ),
        pytest.param(
            {"namespaces": ["hf"], "annotationSelectors": {"tier": "gold"}},
            ["hf/web-c"],
            id="annotation-selectors",
        ),
        pytest.param(
            {"namespaces": ["hf"], "fieldSelectors": {"metadata.name": "web-b"}},
            ["hf/web-b"],
            id="field-selectors",
        ),
        pytest.param(
            {
                "namespaces": ["hf"],
                "podPhaseSelectors": ["Running"],
                "labelSelectors": {"app": "web"},
            },
            ["hf/web-a", "hf/web-b"],
            id="phase-included",
        ),
        pytest.param(
            {"namespaces": ["hf"], "podPhaseSelectors": ["!Running"]},
            ["hf/web-c"],
            id="phase-excluded",
        ),
        pytest.param({"namespaces": ["hf"], "nodes": ["n2"]}, ["hf/web-a"], id="nodes-by-name"),
        pytest.param(
            {
                "namespaces": ["hf"],
                "nodeSelectors": {"zone": "a"},
                "labelSelectors": {"app": "web"},
            },
            ["hf/web-b", "hf/web-c"],
            id="nodes-by-labels",
        ),
        pytest.param(
            {"pods": {"hf": ["web-c", "gone", "db-0"]}, "labelSelectors": {"app": "nothing"}},
            ["hf/web-c", "hf/db-0"],
            id="pods-map-replaces-every-other-selector-and-skips-missing",
        ),
    ],
)
def test_select_pods_matches_as_chaos_mesh_selectors_do(
    selector: dict[str, Any], expected: list[str]
) -> None:
    chosen = chaosmesh.select_pods(selector, "all", None, PODS, [], random.Random(0), nodes=NODES)
    assert names(chosen) == expected


def test_select_pods_refuses_when_nothing_matches() -> None:
    with pytest.raises(NoPodSelected, match="no pod is selected"):
        chaosmesh.select_pods(
            {"labelSelectors": {"app": "none"}}, "all", None, PODS, [], random.Random(0)
        )


def test_select_pods_refuses_a_node_that_does_not_exist() -> None:
    with pytest.raises(SelectorError, match='nodes "n9" not found'):
        chaosmesh.select_pods(
            {"nodes": ["n9"]}, "all", None, PODS, [], random.Random(0), nodes=NODES
        )


def test_select_pods_with_filter_namespace_takes_only_namespaces_enabled_for_injection() -> None:
    namespaces = [
        {"metadata": {"name": "hf", "annotations": {"chaos-mesh.org/inject": "enabled"}}},
        {"metadata": {"name": "other"}},
    ]
    chosen = chaosmesh.select_pods(
        {"namespaces": ["hf", "other"], "labelSelectors": {"app": "web"}},
        "all",
        None,
        PODS,
        namespaces,
        random.Random(0),
        enable_filter_namespace=True,
    )
    assert names(chosen) == ["hf/web-a", "hf/web-b", "hf/web-c"]


@pytest.mark.parametrize(
    ("mode", "value", "count", "size"),
    [
        pytest.param("one", None, 5, 1, id="one"),
        pytest.param("all", None, 5, 5, id="all"),
        pytest.param("fixed", "2", 5, 2, id="fixed"),
        pytest.param("fixed", "9", 5, 5, id="fixed-more-than-there-are-takes-all"),
        pytest.param("fixed-percent", "50", 5, 3, id="fixed-percent-rounds-up"),
        pytest.param("fixed-percent", "1", 5, 1, id="fixed-percent-takes-at-least-one"),
        pytest.param("fixed-percent", "100", 5, 5, id="fixed-percent-100"),
    ],
)
def test_modes_pick_how_many_chaos_mesh_picks(
    mode: str, value: str | None, count: int, size: int
) -> None:
    for seed in range(20):
        picked = chaosmesh.filter_indexes(mode, value, count, random.Random(seed))
        assert len(picked) == size
        assert len(set(picked)) == size and all(0 <= i < count for i in picked)


def test_random_max_percent_picks_between_none_and_the_ceiling() -> None:
    sizes = {
        len(chaosmesh.filter_indexes("random-max-percent", "50", 4, random.Random(seed)))
        for seed in range(200)
    }
    assert sizes == {0, 1, 2}  # ceil(4 * p / 100) for p in 0..50


def test_one_picks_every_pod_sometimes_and_is_reproducible_with_a_seed() -> None:
    picks = {chaosmesh.filter_indexes("one", None, 3, random.Random(seed))[0] for seed in range(50)}
    assert picks == {0, 1, 2}
    assert chaosmesh.filter_indexes("fixed", "2", 9, random.Random(7)) == chaosmesh.filter_indexes(
        "fixed", "2", 9, random.Random(7)
    )


@pytest.mark.parametrize(
    ("mode", "value", "message"),
    [
        pytest.param("fixed", "0", "below or equal 0", id="fixed-zero"),
        pytest.param("fixed", "two", "invalid syntax", id="fixed-not-a-number"),
        pytest.param("fixed-percent", "101", "invalid, Must be", id="percent-over-100"),
        pytest.param("random-max-percent", "0", "below or equal 0", id="max-percent-zero"),
        pytest.param("some", None, "mode some not supported", id="unknown-mode"),
    ],
)
def test_modes_refuse_values_chaos_mesh_refuses(mode: str, value: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        chaosmesh.filter_indexes(mode, value, 4, random.Random(0))


def test_record_ids_are_namespaced_names_and_dnschaos_takes_the_first_container() -> None:
    pod = PODS[0]
    assert chaosmesh.pod_record_id(pod) == "hf/web-b"
    assert chaosmesh.container_record_ids(pod) == ["hf/web-b/app"]
    assert chaosmesh.container_record_ids(pod, ["sidecar"]) == ["hf/web-b/sidecar"]


# ---- faults ----

POD = PodEndpoint("hf", "web-a", "127.0.2.10", "unified/harmonyflow/s/poda", 3)
TARGET = PodEndpoint("hf", "redis-0", "127.0.2.20", "unified/harmonyflow/s/podr", 3)


def network_chaos(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "hf", "name": "c", "uid": "u1"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "targets", "external", "action", "paths", "netem"),
    [
        pytest.param(
            {
                "action": "delay",
                "direction": "to",
                "delay": {"latency": "100ms", "jitter": "10ms", "correlation": "25"},
            },
            [],
            ["127.0.3.10"],
            "netem",
            [PacketPath(POD, ("127.0.3.10",))],
            NetemParams(delay_seconds=0.1, jitter_seconds=0.01, delay_correlation=0.25),
            id="delay-to-an-external-target",
        ),
        pytest.param(
            {"action": "loss", "direction": "from", "loss": {"loss": "25", "correlation": "0"}},
            [TARGET],
            [],
            "netem",
            [PacketPath(POD, ("127.0.2.20",), towards_source=True)],
            NetemParams(loss=0.25),
            id="loss-from-a-target-pod",
        ),
        pytest.param(
            {"action": "partition", "direction": "both"},
            [TARGET],
            ["127.0.3.11"],
            "partition",
            [
                PacketPath(POD, ("127.0.2.20", "127.0.3.11")),
                PacketPath(POD, ("127.0.2.20", "127.0.3.11"), towards_source=True),
            ],
            NetemParams(),
            id="partition-both-ways",
        ),
        pytest.param(
            {"action": "partition", "direction": "to"},
            [],
            [],
            "partition",
            [PacketPath(POD, ())],
            NetemParams(),
            id="no-target-means-every-peer",
        ),
        pytest.param(
            {
                "action": "bandwidth",
                "direction": "to",
                "bandwidth": {"rate": "1mbps", "limit": 20971520, "buffer": 10000},
            },
            [],
            [],
            "netem",
            [PacketPath(POD, ())],
            NetemParams(rate_bytes_per_second=1e6, buffer_bytes=10000, limit_bytes=20971520),
            id="bandwidth-in-bytes-per-second",
        ),
        pytest.param(
            {
                "action": "netem",
                "direction": "to",
                "delay": {"latency": "1s"},
                "loss": {"loss": "50"},
                "rate": {"rate": "8kbit"},
            },
            [],
            [],
            "netem",
            [PacketPath(POD, ())],
            NetemParams(delay_seconds=1.0, loss=0.5, rate_bytes_per_second=1000.0),
            id="netem-merges-every-spec-present",
        ),
    ],
)
def test_network_faults_map_actions_directions_and_parameters(
    spec: dict[str, Any],
    targets: list[PodEndpoint],
    external: list[str],
    action: str,
    paths: list[PacketPath],
    netem: NetemParams,
) -> None:
    (fault,) = chaosmesh.network_faults(network_chaos(**spec), [POD], targets, external)
    assert (fault.key, fault.action, list(fault.paths), fault.netem) == (
        "hf/c/u1/hf/web-a",
        action,
        paths,
        netem,
    )


def test_network_faults_give_one_fault_per_selected_pod() -> None:
    faults = chaosmesh.network_faults(network_chaos(action="partition"), [POD, TARGET], [], [])
    assert [f.key for f in faults] == ["hf/c/u1/hf/web-a", "hf/c/u1/hf/redis-0"]


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        pytest.param(
            {"action": "duplicate", "duplicate": {"duplicate": "5"}},
            UnsupportedChaos,
            "duplicate is not emulated by the sandbox",
            id="duplicate",
        ),
        pytest.param(
            {"action": "corrupt", "corrupt": {"corrupt": "5"}},
            UnsupportedChaos,
            "corrupt is not emulated",
            id="corrupt",
        ),
        pytest.param(
            {"action": "delay", "delay": {"latency": "1s", "reorder": {"reorder": "5", "gap": 1}}},
            UnsupportedChaos,
            "reorder is not emulated",
            id="reorder",
        ),
        pytest.param(
            {"action": "delay"},
            InvalidChaos,
            "at least one is required",
            id="netem-without-parameters",
        ),
        pytest.param(
            {"action": "loss", "loss": {"loss": "many"}},
            InvalidChaos,
            'invalid percentage "many"',
            id="loss-not-a-number",
        ),
        pytest.param(
            {"action": "bandwidth", "bandwidth": {"rate": "fast", "limit": 1, "buffer": 1}},
            InvalidChaos,
            "rate",
            id="bad-rate",
        ),
    ],
)
def test_network_faults_refuse_what_is_not_emulated_or_invalid(
    spec: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        chaosmesh.network_faults(network_chaos(**spec), [POD], [], [])


def test_dns_faults_carry_action_patterns_and_client_ips() -> None:
    chaos = {
        "metadata": {"namespace": "hf", "name": "d", "uid": "u2"},
        "spec": {"action": "random", "patterns": ["postgres.*", "redis"]},
    }
    (fault,) = chaosmesh.dns_faults(chaos, [POD, TARGET])
    assert (fault.key, fault.action, fault.client_ips, fault.patterns) == (
        "hf/d/u2",
        "random",
        ("127.0.2.10", "127.0.2.20"),
        ("postgres.*", "redis"),
    )
    assert chaosmesh.dns_faults(chaos, []) == []


# ---- time ----


@pytest.mark.parametrize(
    ("metadata", "duration", "now", "phase"),
    [
        pytest.param({}, "30s", T0 + timedelta(seconds=29), "Run", id="running-within-duration"),
        pytest.param({}, "30s", T0 + timedelta(seconds=30), "Run", id="not-yet-at-the-instant"),
        pytest.param({}, "30s", T0 + timedelta(seconds=31), "Stop", id="expired"),
        pytest.param({}, None, T0 + timedelta(days=9), "Run", id="no-duration-runs-forever"),
        pytest.param(
            {"annotations": {"experiment.chaos-mesh.org/pause": "true"}},
            None,
            T0,
            "Stop",
            id="paused",
        ),
        pytest.param({"deletionTimestamp": "2026-01-01T00:00:01Z"}, None, T0, "Stop", id="deleted"),
    ],
)
def test_desired_phase_follows_duration_pause_and_deletion(
    metadata: dict[str, Any], duration: str | None, now: Any, phase: str
) -> None:
    chaos = {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z", **metadata},
        "spec": {"duration": duration} if duration else {},
    }
    assert chaosmesh.desired_phase(chaos, now) == phase


def test_expires_at_counts_the_go_duration_from_the_start() -> None:
    assert chaosmesh.expires_at({"spec": {"duration": "1m30s"}}, T0) == T0 + timedelta(seconds=90)
    assert chaosmesh.expires_at({"spec": {}}, T0) is None


# ---- status ----


@pytest.mark.parametrize(
    ("phase", "desired", "operation"),
    [
        pytest.param(NOT_INJECTED, "Run", "apply", id="run-applies"),
        pytest.param(INJECTED, "Run", "", id="run-injected-nothing"),
        pytest.param("Not Injected/Wait", "Run", "apply", id="run-waiting-apply-goes-on"),
        pytest.param("Injected/Wait", "Run", "recover", id="run-waiting-recover-finishes-first"),
        pytest.param(INJECTED, "Stop", "recover", id="stop-recovers"),
        pytest.param(NOT_INJECTED, "Stop", "", id="stop-recovered-nothing"),
        pytest.param("Not Injected/Wait", "Stop", "apply", id="stop-waiting-apply-finishes-first"),
    ],
)
def test_record_operation_follows_the_records_cycle(
    phase: str, desired: str, operation: str
) -> None:
    assert chaosmesh.record_operation(Record("hf/p", phase=phase), desired) == operation


def test_record_result_counts_successes_and_records_failures() -> None:
    record = Record("hf/p")
    injected = chaosmesh.record_result(record, "apply", INJECTED, T0)
    assert (injected.phase, injected.injected_count, injected.events) == (
        INJECTED,
        1,
        (RecordEvent("Succeeded", "Apply", T0),),
    )
    failed = chaosmesh.record_result(injected, "recover", INJECTED, T0, error="boom")
    assert (failed.recovered_count, failed.events[-1]) == (
        0,
        RecordEvent("Failed", "Recover", T0, "boom"),
    )
    waiting = chaosmesh.record_result(record, "apply", "Not Injected/Wait", T0)
    assert (waiting.injected_count, waiting.events) == (0, ())


def test_record_events_keep_the_last_hundred() -> None:
    record = Record("hf/p")
    for _ in range(chaosmesh.MAX_EVENTS + 5):
        record = chaosmesh.record_result(record, "apply", NOT_INJECTED, T0, error="again")
    assert len(record.events) == chaosmesh.MAX_EVENTS


@pytest.mark.parametrize(
    ("records", "paused", "expected"),
    [
        pytest.param(None, False, ["False", "False", "False", "False"], id="nothing-selected"),
        pytest.param(
            [], False, ["True", "True", "True", "False"], id="selected-empty-is-vacuously-all"
        ),
        pytest.param(
            [Record("a", phase=INJECTED), Record("b")],
            False,
            ["True", "False", "False", "False"],
            id="half-injected",
        ),
        pytest.param(
            [Record("a"), Record("b")],
            True,
            ["True", "False", "True", "True"],
            id="paused-recovered",
        ),
    ],
)
def test_conditions_as_chaos_mesh_diffs_them(
    records: list[Record] | None, paused: bool, expected: list[str]
) -> None:
    got = chaosmesh.conditions(records, paused)
    assert [c["type"] for c in got] == ["Selected", "AllInjected", "AllRecovered", "Paused"]
    assert [c["status"] for c in got] == expected


def test_chaos_status_is_what_chaos_mesh_writes_and_reads_back() -> None:
    records = [
        Record("hf/web-a", ".", INJECTED, 1, 0, (RecordEvent("Succeeded", "Apply", T0),)),
        Record("hf/redis-0", ".Target", INJECTED, 1, 0),
    ]
    status = chaosmesh.chaos_status(records, "Run", False, {"hf/web-a": 1})
    assert status == {
        "conditions": [
            {"type": "Selected", "status": "True"},
            {"type": "AllInjected", "status": "True"},
            {"type": "AllRecovered", "status": "False"},
            {"type": "Paused", "status": "False"},
        ],
        "experiment": {
            "desiredPhase": "Run",
            "containerRecords": [
                {
                    "id": "hf/web-a",
                    "selectorKey": ".",
                    "phase": "Injected",
                    "injectedCount": 1,
                    "recoveredCount": 0,
                    "events": [
                        {
                            "type": "Succeeded",
                            "operation": "Apply",
                            "timestamp": "2026-01-01T00:00:00Z",
                        }
                    ],
                },
                {
                    "id": "hf/redis-0",
                    "selectorKey": ".Target",
                    "phase": "Injected",
                    "injectedCount": 1,
                    "recoveredCount": 0,
                },
            ],
        },
        "instances": {"hf/web-a": 1},
    }
    assert chaosmesh.records_from_status(status) == records
    assert chaosmesh.records_from_status({"experiment": {"desiredPhase": "Run"}}) is None
