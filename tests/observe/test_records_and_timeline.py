"""Reducers from raw API JSON, the timeline's states and marks, and the JSON-lines round trip."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from resilience.errors import InvalidInputError
from resilience.observe.codec import load_jsonl, read_jsonl, write_jsonl
from resilience.observe.records import EventType, NodeObservation, PodObservation
from resilience.observe.reduce import (
    reduce_deployment,
    reduce_endpoint_slice,
    reduce_hpa,
    reduce_node,
    reduce_pod,
)
from resilience.observe.timeline import Timeline


def raw_pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-abc-1",
            "labels": {"app": "web"},
            "resourceVersion": "7",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": True}],
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "img:1"}]},
        "status": {"phase": "Running", **status},
    }


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(raw_pod(), {"ready": False, "active": True}, id="no-conditions"),
        pytest.param(
            raw_pod(
                conditions=[
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:10Z",
                    }
                ]
            ),
            {"ready": True, "ready_since": 1767225610.0},
            id="ready",
        ),
        pytest.param(
            {**raw_pod(), "metadata": {**raw_pod()["metadata"], "deletionTimestamp": "x"}},
            {"deleting": True, "active": False},
            id="terminating-is-not-active",
        ),
        pytest.param(raw_pod(phase="Succeeded"), {"active": False}, id="terminal"),
        pytest.param(
            raw_pod(
                conditions=[
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "EvictionByEvictionAPI",
                    }
                ]
            ),
            {"disruption_target": "EvictionByEvictionAPI"},
            id="evicted",
        ),
        pytest.param(
            raw_pod(
                containerStatuses=[
                    {
                        "name": "web",
                        "ready": False,
                        "restartCount": 2,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {
                            "terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:00:00Z"}
                        },
                    }
                ]
            ),
            {"restart_count": 2, "owner_rs": "web-abc", "node": "n1", "image": "img:1"},
            id="restarted",
        ),
    ],
)
def test_reduce_pod(pod: dict[str, Any], expected: dict[str, Any]) -> None:
    observed = reduce_pod(pod)
    assert {key: getattr(observed, key) for key in expected} == expected


def test_omitted_zero_counters_read_as_zero() -> None:
    deployment = reduce_deployment(
        {"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3}, "status": {}}
    )
    assert (deployment.ready, deployment.available, deployment.observed_generation) == (0, 0, 0)
    assert not deployment.complete


def test_endpoint_slice_nil_ready_means_ready() -> None:
    observed = reduce_endpoint_slice(
        {
            "metadata": {"name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [
                {"addresses": ["127.0.2.1"], "conditions": {}},
                {"addresses": ["127.0.2.2"], "conditions": {"ready": False, "terminating": True}},
            ],
        }
    )
    assert observed.service == "web" and observed.ready_addresses == ("127.0.2.1",)


def test_hpa_and_node_reducers() -> None:
    hpa = reduce_hpa(
        {
            "metadata": {"name": "h"},
            "spec": {"maxReplicas": 10, "scaleTargetRef": {"name": "web"}},
            "status": {
                "desiredReplicas": 4,
                "currentMetrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "current": {"averageUtilization": 91}},
                    }
                ],
                "conditions": [{"type": "ScalingActive", "status": "True"}],
            },
        }
    )
    assert (hpa.min_replicas, hpa.desired_replicas, hpa.current_replicas) == (1, 4, 0)
    assert hpa.metrics[0].name == "cpu" and hpa.metrics[0].average_utilization == 91
    assert hpa.scaling_active
    node = reduce_node(
        {
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "us-west-2a"}},
            "spec": {
                "unschedulable": True,
                "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
            },
            "status": {"conditions": [{"type": "Ready", "status": "False"}]},
        }
    )
    assert (node.zone, node.ready, node.unschedulable, len(node.taints)) == (
        "us-west-2a",
        "False",
        True,
        1,
    )


class StepClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def wall(self) -> float:
        self.now += 0.25
        return self.now

    def monotonic(self) -> float:
        return self.now - 1_700_000_000.0


def small_timeline() -> Timeline:
    timeline = Timeline(StepClock())
    timeline.record(EventType.LISTED, NodeObservation("n1", zone="us-west-2a", ready="True"))
    timeline.record(EventType.LISTED, PodObservation("p1", node="n1", ready=True))
    timeline.set_synced()
    with timeline.mark("kill-pod", "p1"):
        timeline.record(EventType.MODIFIED, PodObservation("p1", node="n1", deleting=True))
    timeline.record(EventType.DELETED, PodObservation("p1", node="n1", deleting=True))
    return timeline


def test_states_snapshots_and_zone_from_the_node_watch() -> None:
    timeline = small_timeline()
    assert timeline.state_after(-1).pods == {}
    assert timeline.state_after(1).pods["p1"].zone == "us-west-2a"
    assert timeline.state_after(2).pods["p1"].deleting
    assert "p1" not in timeline.state_after(3).pods
    assert [s.index for s in timeline.states()] == [1, 2, 3]  # from the sync point
    assert len(timeline.states(0)) == 4
    (mark,) = timeline.marks_named("kill-pod")
    assert mark.end is not None and mark.start < timeline.events[2].wall < mark.end


def test_wait_for_is_bounded_and_wakes_on_record() -> None:
    timeline = Timeline()
    with pytest.raises(TimeoutError, match="waiting for p9"):
        timeline.wait_for(lambda s: "p9" in s.pods, timeout=0.2, what="p9")
    timer = threading.Timer(0.1, lambda: timeline.record(EventType.ADDED, PodObservation("p9")))
    timer.start()
    try:
        state = timeline.wait_for(lambda s: "p9" in s.pods, timeout=5, what="p9")
    finally:
        timer.join()
    assert state.index == 0


def test_jsonl_round_trip_keeps_events_states_marks_and_sync(tmp_path: Any) -> None:
    timeline = small_timeline()
    out = io.StringIO()
    lines = write_jsonl(timeline, out)
    assert lines == 1 + len(timeline) + len(timeline.marks)
    loaded = read_jsonl(out.getvalue().splitlines())
    assert loaded.events == timeline.events
    assert loaded.marks == timeline.marks
    assert loaded.synced_index == timeline.synced_index
    assert loaded.states() == timeline.states()
    path = tmp_path / "timeline.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    assert load_jsonl(path).events == timeline.events


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"format": "other"}\n', "not a harmonyflow-timeline file", id="format"),
        pytest.param(
            '{"format": "harmonyflow-timeline"}\n{"event": {"index": 0}}\n',
            ":2: unreadable timeline line",
            id="broken-event",
        ),
    ],
)
def test_bad_timeline_files_are_invalid_input(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_jsonl(text.splitlines(), "t.jsonl")


def test_missing_timeline_file(tmp_path: Any) -> None:
    with pytest.raises(InvalidInputError, match="no such timeline file"):
        load_jsonl(tmp_path / "absent.jsonl")
