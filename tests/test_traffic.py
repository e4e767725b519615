"""Table tests of the suites' pure helpers: traffic verdicts, drift, steady state, canaries,
sandbox exports, the load's SLO verdicts and the HPA helpers -- and SessionTraffic and
the suites' Locust load against tiny loopback services."""

from __future__ import annotations

import copy
import doctest
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from resilience.load import session as suite_load
from resilience.load.profile import load_profile
from resilience.load.requests import parse_lines, window_stats
from resilience.load.session import (
    LoadNotFlowingError,
    LocustLoad,
    failure_lines_by_window,
    locust_left,
    outcome_of,
    suite_profile,
)
from resilience.observe import State, hpa_steps
from resilience.observe.records import (
    Condition,
    DeploymentObservation,
    EventType,
    HpaObservation,
    MetricObservation,
    ResourceKind,
)
from resilience.observe.timeline import TimelineEvent, fold
from resilience.slo.error_budget import ErrorBudget, TrafficOutcome, check_error_budget
from resilience.slo.objectives import Slo, SloKind, Status, Verdict, Window, slo_check
from resilience.slo.writes import Ack, check_no_lost_writes, lost_writes, write_gap
from resilience.suites import hpa as suite_hpa
from resilience.suites.canary import canary_deployment
from resilience.suites.drift import deployment_drift, pdb_drift
from resilience.suites.hpa import (
    at_minimum,
    ceiling_reached,
    check_scale_down_waited,
    hpa_drift,
    scale_times,
    scaled_up,
    with_live_behavior,
)
from resilience.targets.live import CANARY_LABEL, health_problems, terminating_pods
from resilience.targets.sandbox import parse_exports
from resilience.traffic import SessionTraffic
from tests.load.seeded import serving


@pytest.mark.parametrize(
    ("outcome", "budget", "violated"),
    [
        pytest.param(TrafficOutcome(100, 0), ErrorBudget(0.0), False, id="clean"),
        pytest.param(TrafficOutcome(100, 1), ErrorBudget(0.01), False, id="at-the-budget"),
        pytest.param(TrafficOutcome(100, 2), ErrorBudget(0.01), True, id="over"),
        pytest.param(TrafficOutcome(5, 0), ErrorBudget(0.5, min_requests=20), True, id="too-few"),
        pytest.param(TrafficOutcome(900, 0), ErrorBudget(max_failures=0), False, id="none-failed"),
        pytest.param(TrafficOutcome(900, 1), ErrorBudget(max_failures=0), True, id="one-failed"),
        pytest.param(TrafficOutcome(90, 2), ErrorBudget(max_failures=2), False, id="at-count"),
    ],
)
def test_error_budget(outcome: TrafficOutcome, budget: ErrorBudget, violated: bool) -> None:
    result = check_error_budget(outcome, budget, "phase")
    assert (not result.ok) == violated
    if violated:
        assert result.first is not None and result.first.limit == "traffic.errorRate"


def test_a_counted_budget_names_the_count_and_its_slo() -> None:
    budget = ErrorBudget.from_slo(Slo("fault-window-error-budget", SloKind.FAILURES, 0))
    result = check_error_budget(TrafficOutcome(400, 1), budget, "kill of pod-a")
    assert result.first is not None
    assert (result.first.limit_value, result.first.observed) == (0, 1)
    assert result.first.message == (
        "kill of pod-a: 1 of 400 requests through the ingress failed (0.25%), more than the "
        "budget of 0 failed requests (fault-window-error-budget)"
    )
    with pytest.raises(ValueError, match="a latency SLO, not an error budget"):
        ErrorBudget.from_slo(Slo("p95", SloKind.LATENCY, 100))


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
        pytest.param([], {"a": (0, {}), "b": (1, {})}, 1, id="created-then-gone"),
        pytest.param([Ack("a", 2, {})], {"a": (0, {})}, 1, id="written-then-gone"),
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


def pod(name: str, deleting: bool) -> Any:
    deleted_at = "2026-11-27T00:00:00Z" if deleting else None
    return SimpleNamespace(metadata=SimpleNamespace(name=name, deletion_timestamp=deleted_at))


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param([pod("b", False), pod("a", False)], [], id="all-running"),
        pytest.param([pod("b", True), pod("c", False), pod("a", True)], ["a", "b"], id="two"),
    ],
)
def test_terminating_pods_by_name(pods: list[Any], expected: list[str]) -> None:
    assert terminating_pods(pods) == expected


@pytest.mark.parametrize(
    ("terminating", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param(["web-a", "web-b"], ["pods still terminating: web-a, web-b"], id="two"),
    ],
)
def test_terminating_pods_keep_the_target_from_its_steady_state(
    terminating: list[str], expected: list[str]
) -> None:
    problems = health_problems(deployment_status(), [], 3, [], terminating)
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


# ---- Locust load of the suites (resilience.load.session) ----


def verdict(name: str, window: Window, status: Status, observed: float, detail: str) -> Verdict:
    return Verdict(Slo(name, SloKind.ERROR_RATE, 0.02, window), status, observed, detail)


@pytest.mark.parametrize(
    ("verdicts", "problems", "limits"),
    [
        pytest.param(
            [verdict("fault-window-error-budget", Window.FAULT, Status.PASS, 0.01, "ok")],
            [],
            [],
            id="all-pass",
        ),
        pytest.param(
            [verdict("fault-window-error-budget", Window.FAULT, Status.SKIPPED, 0, "no fault")],
            [],
            [],
            id="skipped-is-not-a-failure",
        ),
        pytest.param(
            [
                verdict("baseline-error-rate", Window.BASELINE, Status.PASS, 0.0, "ok"),
                verdict("recovery-error-rate", Window.RECOVERY, Status.FAIL, 0.1, "rate 0.1"),
            ],
            [],
            ["load.slo.recovery-error-rate"],
            id="one-fails",
        ),
        pytest.param([], ["no request was recorded"], ["load.run"], id="run-problem"),
    ],
)
def test_slo_check(verdicts: list[Verdict], problems: list[str], limits: list[str]) -> None:
    result = slo_check(verdicts, "kill of pod-a", [("GET /s", "HTTPError 503", 4)], problems)
    assert [v.limit for v in result.violations] == limits


def test_slo_check_names_the_slo_the_window_the_value_and_the_errors() -> None:
    failed = verdict(
        "fault-window-error-budget",
        Window.FAULT,
        Status.FAIL,
        0.1,
        "error rate in window fault = 0.1000 (4/40), limit <= 0.02",
    )
    result = slo_check([failed], "kill of pod-a", [("GET /api/v1/sessions/[id]", "HTTP 503", 4)])
    message = result.violations[0].message
    for phrase in (
        "kill of pod-a",
        "load SLO fault-window-error-budget failed (window fault)",
        "= 0.1000 (4/40), limit <= 0.02",
        "GET /api/v1/sessions/[id]: HTTP 503 (x4)",
    ):
        assert phrase in message
    assert result.violations[0].observed == 0.1


def test_window_figures_and_outcome_leave_the_ledger_out() -> None:
    timeline = parse_lines(
        [
            '{"kind":"requests","t":10,"type":"GET","name":"/s","ok":8,"fail":2,"lat":{}}',
            '{"kind":"requests","t":10,"type":"LEDGER","name":"read verified","ok":5,"fail":0}',
        ]
    )
    assert outcome_of(timeline, 3.0) == TrafficOutcome(requests=10, failures=2, seconds=3.0)
    windows = window_stats(timeline, [], 10.0, 11.0)
    assert failure_lines_by_window(windows) == {
        "all": "2/10 failed in 1.0s",
        "baseline": "2/10 failed in 1.0s",
    }


def test_every_suite_has_its_profile() -> None:
    for suite in ("rolling-update", "pod-kill", "az-drain", "rds-failover", "hpa"):
        profile = suite_profile(suite)
        assert profile.name == f"suite-{suite}"
        assert {"no-lost-or-stale-data", "no-sequence-gaps-or-duplicates"} <= {
            s.name for s in profile.slos
        }
    assert suite_profile("smoke").name == "smoke"  # no suite-smoke: the shared one


def ws_profile(tmp_path: Path) -> Any:
    path = tmp_path / "ws.yaml"
    path.write_text(
        """description: WebSocket users on the seeded server
load:
  locustfiles: [sessions_ws.py]
  users: 2
  spawn_rate: 2
  run_time: 60s
  env: {HF_WAIT_MIN: "0.05", HF_WAIT_MAX: "0.1", HF_TIMEOUT: "3"}
slos:
  - name: fault-window-error-budget
    kind: error_rate
    window: fault
    max_ratio: 0.05
  - name: no-sequence-gaps-or-duplicates
    kind: failures
    max_failures: 0
    types: [WS]
    names: [seq gap, seq duplicate]
"""
    )
    return load_profile(path)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("mode", "violated"),
    [
        pytest.param("healthy", [], id="healthy"),
        pytest.param("skip", ["load.slo.no-sequence-gaps-or-duplicates"], id="seq-gap"),
    ],
)
def test_locust_load_marks_the_fault_judges_per_window_and_leaves_nothing(
    tmp_path: Path, mode: str, violated: list[str]
) -> None:
    with serving(mode) as url:
        load = LocustLoad(
            ws_profile(tmp_path), url, tmp_path / "load", baseline_seconds=1, recovery_seconds=1
        )
        with load as background, background.fault("kill"):
            time.sleep(1.0)
        assert not load.run.running
    result = load.check("the fault")
    assert [v.limit for v in result.violations] == violated, result.summary()
    assert {"baseline", "fault", "recovery"} <= set(load.figures())
    windows = load.result.windows()
    # About the 1 s asked: the fault's end is marked on our clock, the run's end by Locust
    # after the stop reaches it (a CI run measured 0.976 s), so tens of ms either way.
    assert windows[Window.RECOVERY].seconds >= 0.9
    assert not locust_left([load.out_dir])
    if violated:
        assert "failed (window all): failures in window all = " in result.violations[0].message
        assert "WS seq gap" in result.violations[0].message


def test_an_exception_in_the_fault_stops_locust_at_once(tmp_path: Path) -> None:
    with serving("healthy") as url:
        load = LocustLoad(
            ws_profile(tmp_path), url, tmp_path / "load", baseline_seconds=0, recovery_seconds=30
        )
        began = time.monotonic()
        with pytest.raises(RuntimeError), load as background, background.fault("kill"):
            raise RuntimeError("the fault went wrong")
        assert time.monotonic() - began < 25  # no recovery wait on the way out
    assert not load.run.running and not locust_left([load.out_dir])


def test_locust_load_that_cannot_reach_the_target_says_so(tmp_path: Path) -> None:
    load = LocustLoad(
        ws_profile(tmp_path), "http://127.0.0.1:9", tmp_path / "load", flowing_timeout=6
    )
    with pytest.raises(LoadNotFlowingError, match=r"fewer than \d+ requests succeeded.*refused"):
        load.start()
    assert not load.run.running and not locust_left([load.out_dir])


# ---- the HPA suite's helpers (resilience.suites.hpa) ----


def live_hpa(base_manifests: Any) -> dict[str, Any]:
    [hpa] = [o for o in base_manifests.objects if o.kind == "HorizontalPodAutoscaler"]
    return copy.deepcopy(dict(hpa.body))


def hpa_max_3(body: dict[str, Any]) -> None:
    body["spec"]["maxReplicas"] = 3


def hpa_cpu_90(body: dict[str, Any]) -> None:
    body["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = 90


def hpa_no_memory(body: dict[str, Any]) -> None:
    body["spec"]["metrics"] = body["spec"]["metrics"][:1]


def hpa_other_target(body: dict[str, Any]) -> None:
    body["spec"]["scaleTargetRef"]["name"] = "other"


def hpa_sandbox_behavior(body: dict[str, Any]) -> None:
    body["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        pytest.param(None, [], id="as-deployed"),
        pytest.param(hpa_sandbox_behavior, [], id="behavior-windows-are-no-drift"),
        pytest.param(hpa_max_3, ["spec.maxReplicas"], id="max-lowered"),
        pytest.param(hpa_cpu_90, ["spec.metrics[cpu]"], id="cpu-target"),
        pytest.param(hpa_no_memory, ["spec.metrics[memory]"], id="memory-metric-gone"),
        pytest.param(hpa_other_target, ["spec.scaleTargetRef"], id="scales-something-else"),
    ],
)
def test_hpa_drift(
    base_manifests: Any, intended_policy: Any, change: Any, fields: list[str]
) -> None:
    body = live_hpa(base_manifests)
    if change is not None:
        change(body)
    assert [d.field for d in hpa_drift(body, intended_policy)] == fields


def test_the_checks_use_the_live_behavior(base_manifests: Any, intended_policy: Any) -> None:
    body = live_hpa(base_manifests)
    assert with_live_behavior(intended_policy, body).hpa.scale_down_stabilization_seconds == 300
    hpa_sandbox_behavior(body)
    policy = with_live_behavior(intended_policy, body)
    assert policy.hpa.scale_down_stabilization_seconds == 30
    assert policy.hpa.max_replicas == intended_policy.hpa.max_replicas


def observed_hpa(
    current: int,
    desired: int,
    cpu: int | None = None,
    maximum: int = 10,
    limited: str = "",
    scaled_at: float | None = None,
) -> HpaObservation:
    conditions = [Condition("ScalingActive", "True")]
    if limited:
        conditions.append(Condition("ScalingLimited", "True", limited))
    return HpaObservation(
        name="session-state-service-hpa",
        min_replicas=3,
        max_replicas=maximum,
        current_replicas=current,
        desired_replicas=desired,
        last_scale_time=scaled_at,
        metrics=() if cpu is None else (MetricObservation("Resource", "cpu", cpu),),
        conditions=tuple(conditions),
    )


@pytest.mark.parametrize(
    ("observed", "message"),
    [
        pytest.param(
            observed_hpa(3, 3, cpu=140, maximum=3, limited="TooManyReplicas"),
            "the load needs 6 replicas (cpu at 140% of the 70% target on 3 pods), but "
            "maxReplicas is 3 on the cluster (deploy/base says 10): desiredReplicas stays at 3",
            id="capped-below-the-need",
        ),
        pytest.param(observed_hpa(3, 6, cpu=140), None, id="free-to-scale"),
        pytest.param(
            observed_hpa(5, 5, cpu=60, maximum=5, limited="TooManyReplicas"), None, id="no-need"
        ),
        pytest.param(
            observed_hpa(3, 6, cpu=140, maximum=6, limited="TooManyReplicas"),
            None,
            id="still-growing",
        ),
        pytest.param(observed_hpa(3, 3, maximum=3, limited="TooManyReplicas"), None, id="no-cpu"),
    ],
)
def test_ceiling_reached(intended_policy: Any, observed: Any, message: str | None) -> None:
    found = ceiling_reached(observed, intended_policy.hpa)
    assert (found.message if found else None) == (
        None
        if message is None
        else f"hpa session-state-service-hpa: {message}, "
        "ScalingLimited TooManyReplicas; the service cannot grow to what the load needs"
    )
    if found is not None:
        assert found.limit == "hpa.maxReplicas" and found.observed == 6


T0 = 1_700_000_000.0


def hpa_states(*moments: tuple[float, HpaObservation]) -> list[State]:
    events = [
        TimelineEvent(i, T0 + wall, wall, EventType.MODIFIED, ResourceKind.HPA, observation)
        for i, (wall, observation) in enumerate(moments)
    ]
    return fold(events)


@pytest.mark.parametrize(
    ("down_at", "violated"),
    [
        pytest.param(12.0, True, id="too-soon"),
        pytest.param(31.5, False, id="after-the-window"),
    ],
)
def test_scale_down_waits_the_stabilization_window(
    intended_policy: Any, down_at: float, violated: bool
) -> None:
    states = hpa_states(
        (0.0, observed_hpa(3, 3, cpu=40, scaled_at=None)),
        (1.0, observed_hpa(3, 6, cpu=140, scaled_at=T0 + 1)),
        (2.0, observed_hpa(6, 6, cpu=100, scaled_at=T0 + 1)),  # asks for 9: the last high one
        (5.0, observed_hpa(6, 6, cpu=20, scaled_at=T0 + 1)),
        (down_at, observed_hpa(6, 3, cpu=20, scaled_at=T0 + down_at)),
    )
    result = check_scale_down_waited(states, intended_policy, 30)
    assert (not result.ok) == violated, result.summary()
    if violated:
        assert "sooner than the scale-down stabilization window of 30s" in result.summary()
    times = scale_times(
        states, hpa_steps(states, intended_policy.hpa.name), intended_policy, T0, T0
    )
    assert times.peak_replicas == 6 and times.first_scale_up == 1.0
    assert times.first_scale_down == down_at


@pytest.mark.parametrize("module", [suite_load, suite_hpa], ids=lambda m: m.__name__)
def test_docstring_examples(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(
    ("spec", "ready", "hpa", "up", "at_min"),
    [
        pytest.param(3, 3, (3, 3), False, True, id="steady-at-min"),
        pytest.param(6, 4, (3, 6), False, False, id="new-pods-starting"),
        pytest.param(6, 6, (3, 6), True, False, id="new-pods-ready"),
        pytest.param(3, 3, (6, 3), False, False, id="hpa-not-synced-yet"),
    ],
)
def test_scaled_up_and_at_minimum(
    intended_policy: Any,
    spec: int,
    ready: int,
    hpa: tuple[int, int],
    up: bool,
    at_min: bool,
) -> None:
    deployment = DeploymentObservation(
        name=intended_policy.deployment, spec_replicas=spec, replicas=spec, ready=ready
    )
    state = State(
        deployments={deployment.name: deployment},
        hpas={intended_policy.hpa.name: observed_hpa(*hpa)},
    )
    assert (scaled_up(state, intended_policy), at_minimum(state, intended_policy)) == (up, at_min)
