"""RDS failover: forced through the RDS API under writes; the gap measured, nothing lost.

`reboot-db-instance --force-failover` through boto3 (AWS_ENDPOINT_URL selects the
sandbox's endpoint; unset, it is AWS), under Locust REST and WebSocket load
(suite-rds-failover.yaml: errors budgeted per window, WebSocket sessions resumed
without a gap or a duplicate, no lost or stale data). The writes acknowledged before the
failover must all be there after it (synchronous standby), the longest pause
between acknowledged writes is measured and held to a limit, and no pod is
restarted by liveness: pods that went not-ready during the switch came back
without a restart.

A failover shorter than readiness's failure window (period x failureThreshold)
does not have to take pods out at all -- that is what the threshold is for -- so
readiness going false is checked where it happened, not required.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from resilience.chaos.probes import rds_instance
from resilience.observe import Monitors, check_readiness_recovered_without_restart, pod_histories
from resilience.policy import IntendedPolicy
from resilience.slo.writes import check_no_lost_writes, write_gap
from resilience.targets.live import LiveTarget, wait_until
from resilience.traffic import LoadSession, SessionTraffic, read_back

pytestmark = pytest.mark.resilience

DB_INSTANCE = "harmonyflow-db"
FAILOVER_TIMEOUT_SECONDS = 300.0


@pytest.mark.timeout(480)
def test_forced_failover_loses_no_committed_write_and_restarts_no_pod(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    traffic: Callable[..., SessionTraffic],
    load: Callable[[str], LoadSession],
    record_property: Callable[[str, object], None],
) -> None:
    rds = boto3.client("rds")
    before = rds_instance(DB_INSTANCE)
    assert before["status"] == "available", f"{DB_INSTANCE} is {before['status']} before the test"
    writes = traffic(sessions=6)
    with load("rds-failover") as background:
        # loadtests/profiles/suite-rds-failover.yaml: the limit and its reason
        gap_limit = background.limit("write_gap_seconds")
        wait_for_writes(writes, 20, 30)
        with (
            background.fault("rds-failover"),
            monitors.mark("rds-failover", DB_INSTANCE) as mark,
        ):
            fault_at = time.monotonic()
            rds.reboot_db_instance(DBInstanceIdentifier=DB_INSTANCE, ForceFailover=True)
            after = wait_available(FAILOVER_TIMEOUT_SECONDS)
            wait_until(
                lambda: writes.acked_since(fault_at + 1.0) >= 5, 120, "writes acknowledged again"
            )
    outcome = writes.stop()
    gap = write_gap(outcome.acked, fault_at)
    record_property("write_gap_seconds", gap)
    print(
        f"failover {before['zone']} -> {after['zone']}: write gap {gap}s, "
        f"{outcome.failures} of {outcome.requests} requests failed"
    )
    assert gap is not None, f"no write was acknowledged after the failover of {DB_INSTANCE}"
    assert gap <= gap_limit, (
        f"failover of {DB_INSTANCE}: writes paused {gap:.1f}s, more than the limit "
        f"write_gap_seconds {gap_limit:g}s"
    )
    assert after["zone"] == before["secondary_zone"], (
        f"{DB_INSTANCE}: primary in {after['zone']} after the failover, expected the standby's "
        f"zone {before['secondary_zone']}: the failover did not happen"
    )
    final = read_back(target.base_url, writes.sessions)
    check_no_lost_writes(outcome.acked, final, f"failover of {DB_INSTANCE}").raise_if_violated()
    histories = pod_histories(monitors.timeline.states(), dict(intended_policy.selector))
    restarted = {n: h.restarts for n, h in histories.items() if h.restarts}
    assert not restarted, (
        f"pods restarted during the failover of {DB_INSTANCE} (liveness must not follow the "
        "database): "
        + "; ".join(f"{n}: exit {r[0].exit_code} {r[0].reason}" for n, r in restarted.items())
    )
    for history in histories.values():
        if any(not t.ready for t in history.transitions[1:]):
            check_readiness_recovered_without_restart(history, since=mark.start).raise_if_violated()
    background.check(f"failover of {DB_INSTANCE}").raise_if_violated()


def wait_for_writes(writes: Any, count: int, timeout: float) -> None:
    wait_until(
        lambda: len(writes.outcome().acked) >= count, timeout, f"{count} writes before the fault"
    )


def wait_available(timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = "unknown"
    while time.monotonic() < deadline:
        db = rds_instance(DB_INSTANCE)
        seen = db["status"]
        if seen == "available":
            return db
        time.sleep(0.5)
    raise AssertionError(f"{DB_INSTANCE} still {seen} {timeout:.0f}s after the forced failover")
