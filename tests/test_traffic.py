"""Table tests of the suites' pure helpers: traffic verdicts, drift, steady state, canaries,
sandbox exports -- and SessionTraffic against a tiny loopback service."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from resilience.suite_canary import canary_deployment
from resilience.suite_drift import deployment_drift, pdb_drift
from resilience.suite_sandbox import parse_exports
from resilience.suite_target import CANARY_LABEL, health_problems
from resilience.traffic import (
    Ack,
    ErrorBudget,
    SessionTraffic,
    TrafficOutcome,
    check_error_budget,
    check_no_lost_writes,
    lost_writes,
    write_gap,
)


@pytest.mark.parametrize(
    ("outcome", "budget", "violated"),
    [
        pytest.param(TrafficOutcome(100, 0), ErrorBudget(0.0), False, id="clean"),
        pytest.param(TrafficOutcome(100, 1), ErrorBudget(0.01), False, id="at-the-budget"),
        pytest.param(TrafficOutcome(100, 2), ErrorBudget(0.01), True, id="over"),
        pytest.param(TrafficOutcome(5, 0), ErrorBudget(0.5, min_requests=20), True, id="too-few"),
    ],
)
def test_error_budget(outcome: TrafficOutcome, budget: ErrorBudget, violated: bool) -> None:
    result = check_error_budget(outcome, budget, "phase")
    assert (not result.ok) == violated
    if violated:
        assert result.first is not None and result.first.limit == "traffic.errorRate"


@pytest.mark.parametrize(
    ("times", "fault_at", "gap"),
    [
        pytest.param([1.0, 2.0, 3.0], 1.5, 1.0, id="steady"),
        pytest.param([1.0, 2.0, 7.5, 8.0], 2.5, 5.5, id="outage-after-the-call"),
        pytest.param([1.0, 2.0], 3.0, None, id="never-recovered"),
        pytest.param([4.0, 5.0], 3.0, None, id="nothing-before"),
    ],
)
def test_write_gap(times: list[float], fault_at: float, gap: float | None) -> None:
    assert write_gap([Ack("s", i, {}, t) for i, t in enumerate(times)], fault_at) == gap


@pytest.mark.parametrize(
    ("acked", "final", "lost"),
    [
        pytest.param([Ack("a", 2, {"n": 2})], {"a": (2, {"n": 2})}, 0, id="kept"),
        pytest.param([Ack("a", 2, {"n": 2})], {"a": (3, {"n": 9})}, 0, id="written-after"),
        pytest.param([Ack("a", 2, {"n": 2})], {"a": (1, {"n": 1})}, 1, id="version-lost"),
        pytest.param([Ack("a", 2, {"n": 2})], {"a": (2, {"n": 1})}, 1, id="state-differs"),
        pytest.param([Ack("a", 1, {}), Ack("b", 1, {})], {}, 2, id="sessions-gone"),
    ],
)
def test_lost_writes(acked: list[Ack], final: dict[str, Any], lost: int) -> None:
    assert len(lost_writes(acked, final)) == lost
    assert check_no_lost_writes(acked, final, "kill").ok == (lost == 0)


def test_parse_exports_ignores_other_lines() -> None:
    text = "export KUBECONFIG=/k\nsandbox: note\nexport A=b=c\n"
    assert parse_exports(text) == {"KUBECONFIG": "/k", "A": "b=c"}


# ---- drift ----


def live_deployment(base_manifests: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(
        dict(base_manifests.get("Deployment", "session-state-service").body)
    )
    body["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = "abc"
    return body


def container(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["spec"]["template"]["spec"]["containers"][0]
    return found


def set_max_unavailable(body: dict[str, Any]) -> None:
    body["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 3


def readiness_on_live(body: dict[str, Any]) -> None:
    container(body)["readinessProbe"]["httpGet"]["path"] = "/health/live"


def no_liveness(body: dict[str, Any]) -> None:
    del container(body)["livenessProbe"]


def schedule_anyway(body: dict[str, Any]) -> None:
    body["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["whenUnsatisfiable"] = (
        "ScheduleAnyway"
    )


def replicas_and_image(body: dict[str, Any]) -> None:
    body["spec"]["replicas"] = 7  # the HPA moves it
    container(body)["image"] = "ghcr.io/harmonyflow/session-state:1.0.1"  # releases move it


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        pytest.param(lambda body: None, [], id="as-deployed"),
        pytest.param(replicas_and_image, [], id="replicas-and-image-are-not-drift"),
        pytest.param(
            set_max_unavailable, ["spec.strategy.rollingUpdate.maxUnavailable"], id="maxUnavailable"
        ),
        pytest.param(
            readiness_on_live,
            ["spec.template.spec.containers[session-state-service].readinessProbe.httpGet.path"],
            id="readiness-path",
        ),
        pytest.param(
            no_liveness,
            ["spec.template.spec.containers[session-state-service].livenessProbe"],
            id="no-liveness",
        ),
        pytest.param(
            schedule_anyway,
            ["spec.template.spec.topologySpreadConstraints.whenUnsatisfiable"],
            id="spread",
        ),
    ],
)
def test_deployment_drift(
    base_manifests: Any, intended_policy: Any, change: Any, fields: list[str]
) -> None:
    body = live_deployment(base_manifests)
    change(body)
    drift = deployment_drift(body, intended_policy)
    assert [d.field for d in drift] == fields
    for found in drift:
        assert "on the cluster, deploy/base says" in found.message


def test_drift_message_names_both_values(base_manifests: Any, intended_policy: Any) -> None:
    body = live_deployment(base_manifests)
    set_max_unavailable(body)
    [drift] = deployment_drift(body, intended_policy)
    assert drift.message == (
        "Deployment harmonyflow/session-state-service: spec.strategy.rollingUpdate."
        "maxUnavailable is 3 on the cluster, deploy/base says 1"
    )


@pytest.mark.parametrize(
    ("pdbs", "fields"),
    [
        pytest.param(
            [{"metadata": {"name": "session-state-service"}, "spec": {"minAvailable": 2}}],
            [],
            id="intended",
        ),
        pytest.param([], ["(the object)"], id="removed"),
        pytest.param(
            [{"metadata": {"name": "session-state-service"}, "spec": {"minAvailable": 1}}],
            ["spec.minAvailable"],
            id="weakened",
        ),
    ],
)
def test_pdb_drift(intended_policy: Any, pdbs: list[dict[str, Any]], fields: list[str]) -> None:
    assert [d.field for d in pdb_drift(pdbs, intended_policy)] == fields


# ---- steady state ----


def deployment_status(**status: int) -> dict[str, Any]:
    full = {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    full.update(status)
    return {"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 3}, "status": full}


def node(name: str, ready: bool = True, cordoned: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.mark.parametrize(
    ("deployment", "nodes", "endpoints", "canaries", "expected"),
    [
        pytest.param(deployment_status(), [node("n1")], 3, [], [], id="steady"),
        pytest.param(
            deployment_status(availableReplicas=2), [node("n1")], 3, [], ["2 of 3"], id="short"
        ),
        pytest.param(
            deployment_status(observedGeneration=0), [], 3, [], ["not seen"], id="not-observed"
        ),
        pytest.param(
            deployment_status(), [node("n1", cordoned=True)], 3, [], ["cordoned: n1"], id="cordon"
        ),
        pytest.param(
            deployment_status(), [node("n1", ready=False)], 3, [], ["not Ready: n1"], id="node"
        ),
        pytest.param(deployment_status(), [], 2, [], ["only 2 ready endpoints"], id="endpoints"),
        pytest.param(deployment_status(), [], 3, ["pod/x"], ["canaries left"], id="canary"),
    ],
)
def test_health_problems(
    deployment: dict[str, Any],
    nodes: list[dict[str, Any]],
    endpoints: int,
    canaries: list[str],
    expected: list[str],
) -> None:
    problems = health_problems(deployment, nodes, endpoints, canaries)
    assert len(problems) == len(expected), problems
    for problem, phrase in zip(problems, expected, strict=True):
        assert phrase in problem


def test_canary_keeps_the_live_probes_and_adds_its_label(base_manifests: Any) -> None:
    live = live_deployment(base_manifests)
    body = canary_deployment(live, "session-state-service", "hang", "img:hang", {"X": "1"})
    made = container(body)
    assert made["image"] == "img:hang"
    assert made["livenessProbe"] == container(live)["livenessProbe"]
    assert {"name": "X", "value": "1"} in made["env"]
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "session-state-service" and labels[CANARY_LABEL] == "hang"
    assert "pod-template-hash" not in labels
    assert body["spec"]["replicas"] == 1
    assert live["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "abc"


# ---- SessionTraffic against a loopback service ----


class _Sessions(BaseHTTPRequestHandler):
    versions: ClassVar[dict[str, int]] = {}
    fail_every = 0
    calls = 0

    def do_PUT(self) -> None:
        type(self).calls += 1
        session = self.path.rsplit("/", 1)[-1]
        if self.fail_every and type(self).calls % self.fail_every == 0:
            self._answer(503, {"error": {"message": "not ready"}})
            return
        self.versions[session] = self.versions.get(session, 0) + 1
        self._answer(200, {"version": self.versions[session]})

    def do_GET(self) -> None:
        self._answer(200, {"version": 1, "state": {}})

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    _Sessions.versions, _Sessions.calls, _Sessions.fail_every = {}, 0, 4
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sessions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_session_traffic_stops_when_asked(service: str) -> None:
    with SessionTraffic(service, ["a", "b"], max_requests=10_000, interval=0.01) as run:
        pass
    assert run.outcome().requests < 10_000


def test_session_traffic_counts_acks_and_failures_within_its_bounds(service: str) -> None:
    finished = SessionTraffic(service, ["s"], max_requests=20, interval=0.0, backoff=0.0).start()
    finished._thread.join(10)  # runs to its request bound on its own
    result = finished.stop()
    assert result.requests == 20
    assert result.failures == 2  # every 4th PUT answers 503; 10 PUTs
    assert len(result.acked) == 8
    assert [a.version for a in result.acked] == list(range(1, 9))
    assert "HTTP 503 not ready" in result.samples[0].describe()
