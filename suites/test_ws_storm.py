"""WebSocket sessions by the thousand: a reconnect storm through a pod kill, and whether
sockets rebalance after a scale-out (issue 20).

The storm (loadtests/profiles/ws-storm.yaml, 10,000 sessions by default): once every
session is subscribed, one pod is deleted with its grace period; its third of the
sockets is closed with 1001 and reconnects at once to the pods that stayed. What must
hold:

- every session resumes with no gap or duplicate, and no write is lost (the profile's
  SLOs: the load's own sequence and ledger checks);
- the p99 reconnect time is within HF_WAIT_MAX + HF_TIMEOUT of the profile, the
  client's backoff plus one client timeout (resilience/suites/storm.py `reconnect_bound`);
- the pods that stayed stay Ready and are never restarted (the watch monitors);
- the ingress refuses nothing for want of connections: no connect fails, and, when
  its error log is at hand ($HARMONYFLOW_INGRESS_ERROR_LOG: `resilience sandbox env`
  exports it; on staging, a file of `kubectl logs` of the ingress controller), nginx
  never says it ran short of worker connections, descriptors or ports.

It prints the distribution of reconnect times and of sockets per pod before and after
(the service's `session_state_websocket_connections`, per pod, from Prometheus).

Rebalancing (loadtests/profiles/ws-rebalance.yaml): under socket load the HPA scales
the Deployment out (its minReplicas raised by two, so the HPA controller scales it:
one machine cannot push the reference service over its CPU target without the
burns-cpu build, which would not be the release under test); one max connection age
after the new pods are Ready, each must hold at least `rebalance_min_share` of its fair
share of the sockets. A release without a max age (the reference 1.0.0) leaves them
nearly empty: recorded as a finding, the fix being the service's. Run it on another
release with HARMONYFLOW_REBALANCE_IMAGE (e.g. ghcr.io/harmonyflow/session-state:1.2.0,
which rebalances). The check's can-fail twin, on the `never-rebalances` tag's measured
numbers: tests/sandbox/session_state/test_rebalancing.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from resilience.chaos.deployments import restore_image, rollout_seconds, set_image
from resilience.chaos.pods import kill_one_pod
from resilience.load.certify import PROFILES
from resilience.load.profile import Profile, load_profile, resolve_profile
from resilience.load.session import LocustLoad
from resilience.observe import Monitors
from resilience.observe.probes import pod_histories
from resilience.policy import IntendedPolicy
from resilience.safety.refusals import blast_radius_refusal, disruption_budget, enforce
from resilience.suites.podsockets import (
    check_rebalanced,
    connected_share,
    describe_spread,
    read_sockets_by_pod,
)
from resilience.suites.storm import (
    RECONNECT,
    Distribution,
    check_ingress_refused_nothing,
    check_reconnect_time,
    check_survivors_steady,
    connect_errors,
    entry_distribution,
    exhaustion_in_log,
    reconnect_bound,
    refusals_by_mechanism,
)
from resilience.targets.live import REQUEST_TIMEOUT, LiveTarget
from resilience.traffic import LoadSession

pytestmark = [
    pytest.mark.resilience,
    pytest.mark.slow,
    pytest.mark.full_sandbox,
    pytest.mark.sandbox_with("monitoring"),
]

SEED = 8
ERROR_LOG_VARIABLE = "HARMONYFLOW_INGRESS_ERROR_LOG"
REBALANCE_IMAGE_VARIABLE = "HARMONYFLOW_REBALANCE_IMAGE"
# Reading a fresh scrape: Prometheus scrapes every 5 s on the sandbox, 15-30 s on staging.
SCRAPE_TIMEOUT_SECONDS = 90.0
# Beyond spawning every user (users / spawn_rate): connects queued behind the spawn.
SUBSCRIBE_SLACK_SECONDS = 120.0
ROLLOUT_TIMEOUT_SECONDS = 240.0
SCALE_OUT_TIMEOUT_SECONDS = 240.0
SCALE_OUT_PODS = 2
HISTOGRAM_EDGES_MS = (500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 15_000.0, 20_000.0, 30_000.0)


def profile_named(name: str) -> Profile:
    """The profile the `load` fixture runs for `name` (its sessions, spawn rate, client env)."""
    return load_profile(resolve_profile(name, PROFILES))


def wait_all_subscribed(
    target: LiveTarget, sessions: int, timeout: float, share: float = 1.0
) -> dict[str, int]:
    """Until the pods hold a socket for `share` of the sessions (all by default; bounded);
    sockets per pod then."""
    deadline = time.monotonic() + timeout
    while True:
        by_pod = read_sockets_by_pod(target.namespace, time.time(), SCRAPE_TIMEOUT_SECONDS)
        if sum(by_pod.values()) >= sessions * share:
            return by_pod
        if time.monotonic() >= deadline:
            pytest.fail(
                f"only {sum(by_pod.values())} of {sessions} sessions subscribed within "
                f"{timeout:.0f}s (wanted {share:.0%}): {describe_spread(by_pod)}",
                pytrace=False,
            )


def log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def log_lines_from(path: Path | None, offset: int) -> list[str] | None:
    """The error log's lines written since `offset`; None when there is no log to read."""
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None


@pytest.mark.timeout(2400)
def test_ws_storm_every_session_resumes_in_time_and_nothing_is_refused(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    load: Callable[[str], LoadSession],
) -> None:
    enforce([blast_radius_refusal(1, disruption_budget(intended_policy), "pod kill")])
    error_log = Path(os.environ[ERROR_LOG_VARIABLE]) if os.environ.get(ERROR_LOG_VARIABLE) else None
    log_offset = log_size(error_log)
    profile = profile_named("ws-storm")
    with load("ws-storm") as background:
        sessions = profile.load.users
        bound = reconnect_bound(profile.load.env)
        spawn_seconds = sessions / profile.load.spawn_rate
        before = wait_all_subscribed(target, sessions, spawn_seconds + SUBSCRIBE_SLACK_SECONDS)
        recovery_limit = background.limit("recovery_seconds")
        with background.fault("kill-pod"), monitors.mark("kill-pod") as mark:
            killed = kill_one_pod(
                target.namespace,
                target.label_selector,
                target.deployment,
                recovery_timeout=recovery_limit,
                seed=SEED,
            )
            # The storm is the fault's effect: its window ends once the pods hold every
            # session again. The recovery window after it also lets the Locust workers'
            # last reports arrive: events of a run's last seconds are lost when Locust
            # --processes stops (measured: tests/load/test_ws_storm_local.py).
            after = wait_all_subscribed(target, sessions, bound.seconds + SCRAPE_TIMEOUT_SECONDS)
    fault = monitors.timeline.marks[mark.id]
    assert isinstance(background, LocustLoad)
    records = background.result.timeline.records
    reconnects, failed = entry_distribution(records, RECONNECT, fault.start - 1, time.time() + 1)
    held = before.get(killed["pod"], 0)
    print(f"killed {killed['pod']} in {killed['zone']}, which held {held} sockets")
    print(f"sockets per pod before: {describe_spread(before)}")
    print(f"sockets per pod after:  {describe_spread(after)}")
    print(
        f"reconnect times: {reconnects.describe()} ({failed} failed; about {held} expected, "
        f"the sockets the killed pod held); bound {bound.seconds:g}s"
    )
    print("\n".join(Distribution(reconnects.histogram).bars(HISTOGRAM_EDGES_MS)))

    survivors = set(before) - {killed["pod"]}
    histories = pod_histories(monitors.timeline.states(), {"app": target.deployment})
    lines = log_lines_from(error_log, log_offset)
    # every connect of the run counts, the 10,000 at the spawn as much as the storm's
    refused = refusals_by_mechanism(connect_errors(records, 0.0))
    exhausted = exhaustion_in_log(lines or [])
    print(
        f"connects refused by mechanism: {dict(refused) or 'none'}; nginx ran short: "
        f"{dict(exhausted) or 'never'} (error log {'read' if lines is not None else 'not set'})"
    )

    what = f"storm after the kill of {killed['pod']}"
    background.check(what).raise_if_violated()
    check_reconnect_time(reconnects, bound, what).raise_if_violated()
    check_survivors_steady(histories, survivors, fault.start).raise_if_violated()
    check_ingress_refused_nothing(exhausted, refused, lines is not None).raise_if_violated()


@pytest.mark.destructive
@pytest.mark.timeout(1800)
def test_sockets_rebalance_onto_new_pods_after_a_scale_out(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    load: Callable[[str], LoadSession],
    finding: Callable[[str, str], None],
    recovery_journal: None,
) -> None:
    image = os.environ.get(REBALANCE_IMAGE_VARIABLE, "").strip()
    hpas = client.AutoscalingV2Api(target.api)
    name = intended_policy.hpa.name
    minimum = intended_policy.hpa.min_replicas
    raised = minimum + SCALE_OUT_PODS
    try:
        if image:
            set_image(target.deployment, target.namespace, image)
            rollout_seconds(target.deployment, target.namespace, timeout=ROLLOUT_TIMEOUT_SECONDS)
        profile = profile_named("ws-rebalance")
        load_began = time.monotonic()
        with load("ws-rebalance") as background:
            sessions = profile.load.users
            max_age = background.limit("socket_max_age_seconds")
            min_share = background.limit("rebalance_min_share")
            spawn_seconds = sessions / profile.load.spawn_rate
            # a release that ages sockets out has some always on their way back
            reconnect = reconnect_bound(profile.load.env).seconds
            share = connected_share(max_age, reconnect)
            before = wait_all_subscribed(
                target, sessions, spawn_seconds + SUBSCRIBE_SLACK_SECONDS, share
            )
            time.sleep(max(0.0, spawn_seconds - (time.monotonic() - load_began)))
            with background.fault("scale-out"), monitors.mark("scale-out", f"{minimum}->{raised}"):
                hpas.patch_namespaced_horizontal_pod_autoscaler(
                    name,
                    target.namespace,
                    {"spec": {"minReplicas": raised}},
                    _request_timeout=REQUEST_TIMEOUT,
                )
                state = monitors.timeline.wait_for(
                    lambda s: (
                        (d := s.deployments.get(target.deployment)) is not None
                        and d.spec_replicas >= raised
                        and d.ready >= d.spec_replicas
                    ),
                    SCALE_OUT_TIMEOUT_SECONDS,
                    f"the HPA scaled {target.deployment} to {raised} Ready replicas",
                )
            pods = {p for p, o in state.pods.items() if o.ready and p.startswith(target.deployment)}
            # one max age (with its jitter) and one reconnect after the new pods were Ready
            settle = max_age * 1.1 + reconnect
            time.sleep(settle)
            after = read_sockets_by_pod(target.namespace, time.time(), SCRAPE_TIMEOUT_SECONDS, pods)
    finally:
        hpas.patch_namespaced_horizontal_pod_autoscaler(
            name,
            target.namespace,
            {"spec": {"minReplicas": minimum}},
            _request_timeout=REQUEST_TIMEOUT,
        )
        if image:
            restore_image(target.deployment, target.namespace)
            rollout_seconds(target.deployment, target.namespace, timeout=ROLLOUT_TIMEOUT_SECONDS)
    print(f"sockets per pod before the scale-out: {describe_spread(before)}")
    print(f"sockets per pod {settle:.0f}s after it: {describe_spread(after)}")
    background.check(f"scale-out of {target.deployment} under socket load").raise_if_violated()
    verdict = check_rebalanced(after, before, min_share)
    if not verdict.ok:
        finding(
            "Sockets do not rebalance onto the pods a scale-out adds",
            "; ".join(v.message for v in verdict.violations)
            + f" ({settle:.0f}s after the new pods were Ready; the old pods stay as hot: "
            f"{describe_spread(after)}). The fix is the service's: a max connection age "
            "that closes sockets with 1001/1012 so that clients reconnect through the "
            "ingress (release 1.2.0 does).",
        )
