"""One Chaos Mesh object planned: selection kept in its records, faults, status, expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from sandbox.cni.chaosmesh import INJECTED, NOT_INJECTED, RUN, STOP
from sandbox.cni.chaosplan import DNSCHAOS, NETWORKCHAOS, PlanInputs, plan
from sandbox.cni.faults import PodEndpoint
from sandbox.kube.clock import parse_time, rfc3339

T0 = parse_time("2026-01-01T00:00:00Z")


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "hf", "labels": labels, "uid": f"u-{name}"},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running"},
    }


def endpoint(name: str, ip: str) -> PodEndpoint:
    return PodEndpoint("hf", name, ip, f"unified/x/podu-{name}", 3)


PODS = [pod("web-a", app="web"), pod("web-b", app="web"), pod("db-0", app="db")]
ENDPOINTS = {
    "u-web-a": endpoint("web-a", "127.0.2.2"),
    "u-web-b": endpoint("web-b", "127.0.2.3"),
    "u-db-0": endpoint("db-0", "127.0.2.4"),
}


def resolve(targets: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    known = {"db.example": ("127.0.3.11",)}
    found = tuple(a for t in targets for a in known.get(t, (t,) if t[0].isdigit() else ()))
    return found, [t for t in targets if t not in known and not t[0].isdigit()]


def inputs(pods: Sequence[dict[str, Any]] = PODS, endpoints: Any = None) -> PlanInputs:
    return PlanInputs(pods, [], ENDPOINTS if endpoints is None else endpoints, resolve)


def chaos(
    status: dict[str, Any] | None = None,
    duration: str | None = "60s",
    deleted: bool = False,
    targets: Sequence[str] = ("db.example",),
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "slow",
        "namespace": "hf",
        "uid": "c1",
        "creationTimestamp": rfc3339(T0),
    }
    if deleted:
        metadata["deletionTimestamp"] = rfc3339(T0 + timedelta(seconds=5))
    spec: dict[str, Any] = {
        "action": "delay",
        "mode": "all",
        "direction": "to",
        "selector": {"namespaces": ["hf"], "labelSelectors": {"app": "web"}},
        "delay": {"latency": "50ms"},
        "externalTargets": list(targets),
    }
    if duration:
        spec["duration"] = duration
    return {"metadata": metadata, "spec": spec, **({"status": status} if status else {})}


def phases(status: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["phase"] for r in status["experiment"].get("containerRecords") or []}


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_a_new_object_selects_injects_and_says_so_once_applied() -> None:
    planned = plan(NETWORKCHAOS, chaos(), inputs(), T0 + timedelta(seconds=1))
    assert planned.desired == RUN
    assert [f.key.rsplit("/", 1)[1] for f in planned.faults] == ["web-a", "web-b"]
    assert {p.destinations for f in planned.faults for p in f.paths} == {("127.0.3.11",)}
    assert planned.recheck_seconds == pytest.approx(59.01)
    status = planned.status(applied=True, apply_error="", now=T0 + timedelta(seconds=1))
    assert phases(status) == {"hf/web-a": INJECTED, "hf/web-b": INJECTED}
    assert conditions(status) == {
        "Selected": "True",
        "AllInjected": "True",
        "AllRecovered": "False",
        "Paused": "False",
    }
    assert status["instances"] == {"hf/web-a": 1, "hf/web-b": 1}


def test_the_selection_is_kept_in_the_records_when_pods_come_and_go() -> None:
    first = plan(NETWORKCHAOS, chaos(), inputs(), T0).status(True, "", T0)
    newcomer = [*PODS, pod("web-c", app="web")]
    later = plan(NETWORKCHAOS, chaos(first), inputs(newcomer), T0 + timedelta(seconds=2))
    assert [f.key.rsplit("/", 1)[1] for f in later.faults] == ["web-a", "web-b"]


def test_a_pod_gone_is_recovered_and_the_others_stay_injected() -> None:
    first = plan(NETWORKCHAOS, chaos(), inputs(), T0).status(True, "", T0)
    without_b = {k: v for k, v in ENDPOINTS.items() if k != "u-web-b"}
    later = plan(NETWORKCHAOS, chaos(first), inputs(PODS[::2], without_b), T0)
    status = later.status(True, "", T0)
    assert phases(status) == {"hf/web-a": INJECTED, "hf/web-b": NOT_INJECTED}
    assert conditions(status)["AllInjected"] == "False"
    assert [f.key.rsplit("/", 1)[1] for f in later.faults] == ["web-a"]


@pytest.mark.parametrize(
    ("duration", "deleted", "at"),
    [
        pytest.param("60s", False, 61, id="duration-over"),
        pytest.param(None, True, 6, id="deleted"),
    ],
)
def test_stop_recovers_every_record(duration: str | None, deleted: bool, at: int) -> None:
    injected = plan(NETWORKCHAOS, chaos(duration=duration), inputs(), T0).status(True, "", T0)
    now = T0 + timedelta(seconds=at)
    stopped = plan(NETWORKCHAOS, chaos(injected, duration, deleted), inputs(), now)
    assert stopped.desired == STOP and stopped.faults == () and stopped.recheck_seconds is None
    status = stopped.status(True, "", now)
    assert set(phases(status).values()) == {NOT_INJECTED}
    assert conditions(status)["AllRecovered"] == "True"
    events = status["experiment"]["containerRecords"][0]["events"]
    assert [(e["type"], e["operation"]) for e in events] == [
        ("Succeeded", "Apply"),
        ("Succeeded", "Recover"),
    ]


def test_a_status_waits_for_the_kernel() -> None:
    planned = plan(NETWORKCHAOS, chaos(), inputs(), T0)
    status = planned.status(applied=False, apply_error="", now=T0)
    assert set(phases(status).values()) == {NOT_INJECTED}


@pytest.mark.parametrize(
    ("targets", "apply_error", "says"),
    [
        pytest.param(("nowhere.example",), "", "not resolved: nowhere.example", id="unresolved"),
        pytest.param(("db.example",), "nft failed", "nft failed", id="the-kernel-refused"),
    ],
)
def test_a_failure_is_one_failed_event_per_record(
    targets: Sequence[str], apply_error: str, says: str
) -> None:
    planned = plan(NETWORKCHAOS, chaos(targets=targets), inputs(), T0)
    status = planned.status(True, apply_error, T0)
    again = plan(NETWORKCHAOS, chaos(status, targets=targets), inputs(), T0).status(
        True, apply_error, T0
    )
    for record in again["experiment"]["containerRecords"]:
        assert record["phase"] == NOT_INJECTED
        assert [e["type"] for e in record["events"]] == ["Failed"]
        assert says in record["events"][0]["message"]


def test_nothing_selected_is_said_and_nothing_injected() -> None:
    planned = plan(NETWORKCHAOS, chaos(), inputs([PODS[2]]), T0)
    assert planned.records is None and planned.faults == ()
    assert "no pod is selected" in planned.error
    assert conditions(planned.status(True, "", T0))["Selected"] == "False"


def test_dnschaos_records_name_a_container_and_faults_the_pods_ips() -> None:
    dns = chaos()
    dns["spec"] = {
        "action": "error",
        "mode": "all",
        "patterns": ["db.*"],
        "selector": {"namespaces": ["hf"], "labelSelectors": {"app": "web"}},
    }
    planned = plan(DNSCHAOS, dns, inputs(), T0)
    assert [r.id for r in planned.records or ()] == ["hf/web-a/app", "hf/web-b/app"]
    [fault] = planned.dns_faults
    assert (fault.action, fault.client_ips, fault.patterns) == (
        "error",
        ("127.0.2.2", "127.0.2.3"),
        ("db.*",),
    )
    assert "instances" not in planned.status(True, "", T0)
