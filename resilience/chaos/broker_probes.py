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
from resilience.interlocks import broker_quorum_refusal

__all__ = ["broker_quorum_running", "outbox_drained_seconds", "running_brokers"]
OUTBOX_PENDING = "sum(session_state_outbox_pending)"


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
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> float:
    """Seconds until no session event waits in any pod's outbox
    (`sum(session_state_outbox_pending)` is 0 in Prometheus, `PROMETHEUS_URL`).

    After a broker outage the relays publish the backlog by themselves; this
    measures how long that takes, and fails past `timeout` with the backlog left.
    """

    def drained() -> tuple[bool, str]:
        pending = query_value(OUTBOX_PENDING, configuration=configuration)
        return pending == 0, f"{pending:.0f} events pending"

    return seconds_until(drained, timeout, "an empty outbox")
