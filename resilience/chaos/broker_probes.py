"""Probes of the broker side: are the brokers up, has the outbox drained.

The brokers' state comes from EC2 (their instances), the outbox from Prometheus
(every pod's `session_state_outbox_pending`), so that the same probes work on
the sandbox and on AWS.
"""

from __future__ import annotations

from typing import Any

from resilience.chaos.brokers import broker_instances
from resilience.chaos.prometheus import query_value
from resilience.chaos.waiting import seconds_until
from resilience.safety.refusals import broker_quorum_refusal

__all__ = ["broker_quorum_running", "outbox_drained_seconds", "running_brokers"]
OUTBOX_PENDING = "sum(session_state_outbox_pending)"
OUTBOX_OLDEST = "max(session_state_outbox_oldest_pending_seconds)"
# A relay that keeps up publishes an event within a round or two (it polls every 0.2 s
# when idle), so under a steady write load its oldest pending event is about a second
# old; an outage's backlog is as old as the outage. 5 s tells the two apart and leaves
# room for a relay's reconnect backoff.
DRAINED_LAG_SECONDS = 5.0


def running_brokers(
    configuration: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None
) -> int:
    """How many broker instances are running (3 when the cluster is whole)."""
    return len(broker_instances(configuration=configuration, secrets=secrets))


def broker_quorum_running(
    keep_running: int = 2,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> bool:
    """True while at least `keep_running` broker instances run: the majority that quorum
    queues need to go on taking messages. A steady state that holds through the loss of
    one node of three, checked before, during and after it."""
    running = list(broker_instances(configuration=configuration, secrets=secrets))
    return broker_quorum_refusal(running, [], int(keep_running)) is None


def outbox_drained_seconds(
    timeout: float = 180.0,
    max_lag_seconds: float = DRAINED_LAG_SECONDS,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> float:
    """Seconds until the outage's backlog is gone: no event in any pod's outbox has waited
    longer than `max_lag_seconds` (`max(session_state_outbox_oldest_pending_seconds)` in
    Prometheus, `PROMETHEUS_URL`).

    After a broker outage the relays publish the backlog by themselves; this measures how
    long that takes, and fails past `timeout` with the backlog left. Not "no event
    pending": under live traffic a few always are, on staging as on the sandbox.
    """

    def drained() -> tuple[bool, str]:
        oldest = query_value(OUTBOX_OLDEST, configuration=configuration)
        pending = query_value(OUTBOX_PENDING, configuration=configuration)
        return (
            oldest <= float(max_lag_seconds),
            f"{pending:.0f} events pending, the oldest {oldest:.1f} s old",
        )

    return seconds_until(drained, timeout, f"no outbox event older than {max_lag_seconds:g} s")
