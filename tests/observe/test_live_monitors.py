"""The monitors against a live control-plane-only sandbox: what they saw, what the checkers say."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubernetes import client

from resilience.observe import (
    Monitors,
    MonitorScope,
    State,
    check_liveness_restart,
    check_rollout_limits,
    load_jsonl,
    pod_histories,
)
from resilience.observe.records import EventObservation
from resilience.observe.rollout import SURGE_LIMIT
from resilience.policy import IntendedPolicy, ProbeKind, probe_policies, rollout_policy
from tests.observe.builders import base_policy
from tests.sandbox.cluster_harness import SandboxHarness, app_deployment

CREATED = re.compile(r"Created pod: (\S+)")


def policy_for(namespace: str, body: dict[str, Any], **rollout: Any) -> IntendedPolicy:
    """The intended policy of a test Deployment, read from its own manifest."""
    spec = {**body["spec"]}
    if rollout:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": rollout}
    container = body["spec"]["template"]["spec"]["containers"][0]
    return replace(
        base_policy(),
        namespace=namespace,
        deployment=body["metadata"]["name"],
        selector=dict(body["spec"]["selector"]["matchLabels"]),
        rollout=rollout_policy(spec),
        probes=probe_policies(container),
        disruption=None,
    )


def start(sandbox: SandboxHarness, body: dict[str, Any]) -> tuple[str, Monitors]:
    namespace = sandbox.new_namespace()
    client.AppsV1Api(sandbox.api_client()).create_namespaced_deployment(namespace, body)
    sandbox.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=120s")
    scope = MonitorScope(namespace, deployment="web", pod_selector="app=web", events=True)
    return namespace, Monitors(sandbox.api_client(), scope).start(sync_timeout=15)


def set_image(sandbox: SandboxHarness, namespace: str, image: str) -> None:
    client.AppsV1Api(sandbox.api_client()).patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}},
    )


def rolled_out(image: str) -> Any:
    def done(state: State) -> bool:
        deployment = state.deployments.get("web")
        old = [p for p in state.pods.values() if p.image != image]
        return bool(deployment and deployment.image == image and deployment.complete and not old)

    return done


def test_rollout_seen_by_the_monitors_passes_the_rollout_limits(
    sandbox: SandboxHarness, tmp_path: Path
) -> None:
    body = app_deployment("web", 3)
    namespace, monitors = start(sandbox, body)
    image = "sandbox.local/testapp:healthy"
    try:
        with monitors.mark("rollout", image):
            set_image(sandbox, namespace, image)
            monitors.timeline.wait_for(rolled_out(image), 120, "the rollout to finish")
        # The timeline catches up with what the API lists, object for object (pods may still
        # get status updates after the rollout, so "caught up" is: same pods, no older copy).
        listed = client.CoreV1Api(sandbox.api_client()).list_namespaced_pod(namespace).items
        now = {p.metadata.name: int(p.metadata.resource_version) for p in listed}
        monitors.timeline.wait_for(
            lambda state: (
                state.pods.keys() == now.keys()
                and all(int(state.pods[name].resource_version) >= rv for name, rv in now.items())
            ),
            30,
            "the timeline to catch up with the API's pod list",
        )
    finally:
        monitors.stop(timeout=10)
    policy = policy_for(namespace, body)
    result = check_rollout_limits(monitors.timeline.states(), policy)
    assert result.ok, result.summary()
    assert result.details["max_pods"] == policy.rollout.fenceposts.max_total_pods, "never surged"
    assert result.details["min_available"] >= policy.rollout.fenceposts.min_available

    # The twin: the same observations against an intended policy the cluster does not follow.
    strict = policy_for(namespace, body, maxSurge=0, maxUnavailable=1)
    first = check_rollout_limits(monitors.timeline.states(), strict).first
    assert first is not None and first.limit == SURGE_LIMIT, "a misconfigured cluster passed"
    assert first.observed == policy.rollout.fenceposts.max_total_pods

    # Every pod a ReplicaSet created (its SuccessfulCreate events) is in the timeline.
    events = [e.observation for e in monitors.timeline.events]
    created = {
        m.group(1)
        for e in events
        if isinstance(e, EventObservation) and (m := CREATED.match(e.message))
    }
    seen = {e.observation.name for e in monitors.timeline.events if e.kind.value == "Pod"}
    assert created and created <= seen, created - seen

    exported = monitors.export_jsonl(tmp_path / "timeline.jsonl")
    loaded = load_jsonl(exported)
    assert loaded.events == monitors.timeline.events
    assert [m.name for m in loaded.marks] == ["rollout"]


def test_never_ready_release_stalls_within_the_limits(sandbox: SandboxHarness) -> None:
    body = app_deployment("web", 3, progressDeadlineSeconds=10)
    namespace, monitors = start(sandbox, body)

    def timed_out(state: State) -> bool:
        deployment = state.deployments.get("web")
        progressing = deployment and deployment.condition("Progressing")
        return bool(progressing and progressing.reason == "ProgressDeadlineExceeded")

    try:
        set_image(sandbox, namespace, "sandbox.local/testapp:never-ready")
        stalled = monitors.timeline.wait_for(timed_out, 90, "ProgressDeadlineExceeded")
    finally:
        monitors.stop(timeout=10)
    policy = policy_for(namespace, body)
    result = check_rollout_limits(monitors.timeline.states(), policy)
    assert result.ok, result.summary()
    assert result.details["min_available"] == policy.rollout.fenceposts.min_available
    available = stalled.deployments["web"].condition("Available")
    assert available is not None and available.status == "True"


def test_liveness_restart_seen_within_period_times_threshold(sandbox: SandboxHarness) -> None:
    hang_after = 4
    body = app_deployment("web", 1, image="sandbox.local/testapp:liveness-hang")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "HANG_AFTER_SECONDS", "value": str(hang_after)}]
    namespace, monitors = start(sandbox, body)
    try:
        monitors.timeline.wait_for(
            lambda s: any(p.restart_count >= 1 for p in s.pods.values()), 60, "a restart"
        )
    finally:
        monitors.stop(timeout=10)
    histories = pod_histories(monitors.timeline.states(), {"app": "web"})
    (history,) = [h for h in histories.values() if h.restarts]
    restart = history.restarts[0]
    container_state = monitors.timeline.current.pods[history.pod].containers[0]
    assert container_state.last_started_at is not None
    hang_began = container_state.last_started_at + hang_after
    policy = policy_for(namespace, body)
    result = check_liveness_restart(
        history,
        policy.probes[ProbeKind.LIVENESS],
        hang_began,
        termination_seconds=body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
    )
    assert result.ok, result.summary()
    assert restart.container == "web"
