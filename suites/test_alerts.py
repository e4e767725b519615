"""Alerts and PromQL steady state: what on-call would have seen, against deploy/monitoring.

- A PromQL steady-state probe built from the high-error-rate alert's own
  expression (query and bound read from deploy/monitoring/rules) holds on a
  healthy service under traffic, and fails during a seeded error storm (every
  replica answering one API request in five with a 500).
- With the PodDisruptionBudget removed, draining a zone leaves the service short
  of a replica (the replacement cannot schedule against the cordoned zone, see
  test_az_drain); SessionStateTooFewReadyPods must then fire once the shortfall
  has lasted its `for:`, in Prometheus and in Alertmanager. If the shortfall heals
  sooner, the alert must not have fired.

Needs Prometheus and Alertmanager (`PROMETHEUS_URL`, `ALERTMANAGER_URL`): the
sandbox runs them `--with monitoring`; on staging, set both.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.chaos.nodes import drain_zone, uncordon_zone
from resilience.chaos.prometheus import alerts_firing, query_within
from resilience.observe import Monitors
from resilience.observe.zones import busiest_zone
from resilience.policy import IntendedPolicy
from resilience.slo.alert_rules import alert_rule
from resilience.targets.live import REQUEST_TIMEOUT, LiveTarget, wait_until
from resilience.traffic import SessionTraffic

pytestmark = [pytest.mark.resilience, pytest.mark.sandbox_with("monitoring")]

ERROR_ALERT = "SessionStateHighErrorRate"
SHORTFALL_ALERT = "SessionStateTooFewReadyPods"
# Prometheus needs a few scrapes and a rule evaluation before a 1m rate means anything.
SIGNAL_SECONDS = 120.0
# Beyond an alert's `for:`: scrape and evaluation intervals, and Alertmanager's intake.
ALERT_SLACK_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 90.0
# Two scrape-and-evaluate periods of the sandbox's Prometheus (5 s each), with margin.
SAMPLING_SLACK_SECONDS = 15.0


def require_monitoring() -> None:
    missing = [name for name in ("PROMETHEUS_URL", "ALERTMANAGER_URL") if not os.environ.get(name)]
    if missing:
        pytest.fail(f"these suites need {' and '.join(missing)} (the sandbox: --with monitoring)")


@pytest.mark.destructive
@pytest.mark.timeout(480)
def test_promql_steady_state_holds_when_healthy_and_fails_in_an_error_storm(
    target: LiveTarget, traffic: Callable[..., SessionTraffic]
) -> None:
    require_monitoring()
    bound = alert_rule(ERROR_ALERT).threshold()
    assert bound.comparison in (">", ">="), f"{ERROR_ALERT}: expected an upper bound, got {bound}"

    def healthy() -> bool:
        return query_within(bound.query, maximum=bound.value)

    requests = traffic(sessions=4, max_seconds=360)
    try:
        seconds = wait_until(healthy, SIGNAL_SECONDS, f"{bound.query} <= {bound.value}")
        print(f"healthy: {bound.query} <= {bound.value} after {seconds:.0f} s of traffic")
        target.set_fault("errors")
        seconds = wait_until(
            lambda: not healthy(),
            SIGNAL_SECONDS + 60,
            f"the error storm to show in {bound.query} (above {bound.value})",
        )
        print(f"error storm: the steady-state probe failed after {seconds:.0f} s")
    finally:
        requests.stop()


def shortfall(target: LiveTarget) -> int:
    """Replicas the Deployment wants minus those available (0 when whole)."""
    deployment = target.read_deployment()
    wanted = int(deployment.get("spec", {}).get("replicas") or 0)
    available = int(deployment.get("status", {}).get("availableReplicas") or 0)
    return max(0, wanted - available)


def alertmanager_has(name: str) -> bool:
    url = f"{os.environ['ALERTMANAGER_URL']}/api/v2/alerts?filter=alertname%3D%22{name}%22"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as answer:
        return bool(json.loads(answer.read()))


@pytest.mark.destructive
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_too_few_ready_pods_fires_during_an_az_drain_without_a_pdb(
    target: LiveTarget, intended_policy: IntendedPolicy, monitors: Monitors
) -> None:
    require_monitoring()
    rule = alert_rule(SHORTFALL_ALERT)
    assert alerts_firing(SHORTFALL_ALERT) == [], f"{SHORTFALL_ALERT} fires before any fault"
    policy = client.PolicyV1Api(target.api)
    for pdb in target.read_pdbs():
        try:
            policy.delete_namespaced_pod_disruption_budget(
                pdb["metadata"]["name"], target.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 404:
                raise
    # An earlier rollout may have left the spread uneven; draining an empty zone tests nothing.
    zone = busiest_zone(monitors.timeline.current, intended_policy)
    short_since: float | None = None
    fired_after: float | None = None
    began = time.monotonic()
    try:
        drain_zone(zone, target.namespace, timeout=DRAIN_TIMEOUT_SECONDS)
        deadline = began + rule.for_seconds + ALERT_SLACK_SECONDS + 30
        while time.monotonic() < deadline:
            now = time.monotonic()
            if shortfall(target) > 0:
                short_since = short_since if short_since is not None else now
            else:
                short_since = None
            if alerts_firing(SHORTFALL_ALERT):
                fired_after = now - began
                break
            time.sleep(2.0)
        shortfall_seconds = 0.0 if short_since is None else time.monotonic() - short_since
        if fired_after is None:
            assert shortfall_seconds < rule.for_seconds + ALERT_SLACK_SECONDS, (
                f"{SHORTFALL_ALERT} did not fire: available replicas stayed below spec for "
                f"{shortfall_seconds:.0f} s after draining {zone} without a PDB; its for: is "
                f"{rule.for_seconds:.0f} s"
            )
            print(f"the shortfall healed after the drain of {zone}: no alert, as intended")
            return
        print(f"{SHORTFALL_ALERT} fired {fired_after:.0f} s after draining {zone}")
        # Prometheus sees the Deployment once per scrape: a shortfall that ended between
        # two scrapes just before the drain counts as continuous, hence the sampling slack.
        assert fired_after >= rule.for_seconds - SAMPLING_SLACK_SECONDS, (
            f"{SHORTFALL_ALERT} fired after {fired_after:.0f} s, before its for: of "
            f"{rule.for_seconds:.0f} s"
        )
        wait_until(
            lambda: alertmanager_has(SHORTFALL_ALERT),
            ALERT_SLACK_SECONDS,
            f"{SHORTFALL_ALERT} to reach Alertmanager",
        )
    finally:
        uncordon_zone(zone)
