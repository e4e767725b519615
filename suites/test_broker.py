"""Broker loss: RabbitMQ nodes stopped through EC2 under write traffic; no event is lost.

The service publishes one session event per acknowledged write through its
transactional outbox (deploy/base `AMQP_URLS`). A collector of our own consumes a
quorum queue bound to the exchange; delivery is at least once, so duplicates are
reported and deduplicated by `message_id`, never failed. The checks:

- One broker node lost (`rabbitmq-1` stopped with `ec2 stop-instances`): not one
  request fails, and every acknowledged write's event arrives.
- The whole broker cluster lost: requests still succeed, events wait in the
  outbox (`session_state_outbox_pending` rises in Prometheus), and once the
  brokers are back the outbox drains and every event arrives.
- The twin: a release that marks its outbox rows published without publishing
  them (`drops-events`) fails the same check, naming the missing events.

The brokers are always started again, in a `finally` (and journaled for
`resilience recover`). Needs the brokers' AMQP URLs (`HARMONYFLOW_AMQP_URLS`) and
Prometheus (`PROMETHEUS_URL`): the sandbox runs both `--with rabbitmq --with
monitoring`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from resilience.broker import EventCollector, EventVerdict, event_verdict, urls_from_env
from resilience.chaos.brokers import broker_instances, start_broker_nodes, stop_broker_nodes
from resilience.chaos.prometheus import query_value
from resilience.load.session import suite_profile, witness_budget
from resilience.slo.error_budget import ErrorBudget, TrafficOutcome, check_error_budget
from resilience.targets.live import LiveTarget, wait_until
from resilience.traffic import SessionTraffic

pytestmark = [pytest.mark.resilience, pytest.mark.sandbox_with("rabbitmq", "monitoring")]

OUTAGE_SECONDS = 15.0
# Brokers booting again (Erlang, Mnesia, quorum queue recovery) and the relays'
# backoff (at most 5 s) before the outbox drains.
RECOVERY_SECONDS = 150.0
DELIVERY_SECONDS = 60.0
PENDING = "sum(session_state_outbox_pending)"


def broker_budget() -> ErrorBudget:
    """loadtests/profiles/broker-loss.yaml's fault budget (none: the outbox absorbs it)."""
    return witness_budget(suite_profile("broker-loss"))


@pytest.fixture
def collector() -> Iterator[EventCollector]:
    urls = urls_from_env()
    if not urls or not os.environ.get("PROMETHEUS_URL"):
        pytest.fail(
            "these suites need HARMONYFLOW_AMQP_URLS and PROMETHEUS_URL "
            "(the sandbox: --with rabbitmq --with monitoring)",
            pytrace=False,
        )
    with EventCollector(urls) as events:
        yield events


@pytest.fixture
def brokers_restarted() -> Iterator[None]:
    """Every broker node is running after the test, whatever happened in it."""
    try:
        yield
    finally:
        start_broker_nodes()
        wait_until(lambda: len(broker_instances()) == 3, RECOVERY_SECONDS, "every broker running")


def outbox_pending() -> float:
    return query_value(PENDING)


def events_of(
    collector: EventCollector, outcome: TrafficOutcome, seconds: float = DELIVERY_SECONDS
) -> EventVerdict:
    """Wait (bounded) until every acknowledged write's event is in, then judge."""
    writes = [(ack.session, ack.version) for ack in outcome.acked]
    with contextlib.suppress(TimeoutError):  # the verdict below names what is missing
        collector.wait_for(lambda d: event_verdict(writes, d).ok, timeout=seconds, every=0.5)
    return event_verdict(writes, collector.deliveries())


def check_events(verdict: EventVerdict, what: str) -> None:
    print(f"{what}: {verdict.summary()}")
    assert verdict.ok, f"{what}: " + "; ".join(verdict.failures())


def outage(
    traffic: Callable[..., SessionTraffic], names: Sequence[str]
) -> tuple[TrafficOutcome, float]:
    """Traffic across an outage of the named broker nodes (all when empty); returns the
    outcome and the highest outbox backlog Prometheus saw during it."""
    requests = traffic(sessions=4, max_seconds=OUTAGE_SECONDS + RECOVERY_SECONDS + 60)
    backlog = 0.0
    try:
        time.sleep(3.0)
        stop_broker_nodes(list(names))
        deadline = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < deadline:
            backlog = max(backlog, outbox_pending())
            time.sleep(2.0)
        start_broker_nodes(list(names))
        # Traffic goes on while the brokers boot and the relays reconnect.
        wait_until(lambda: len(broker_instances()) == 3, RECOVERY_SECONDS, "every broker running")
        time.sleep(5.0)
    finally:
        outcome = requests.stop()
    # Under traffic a few events always wait for the next relay round; once it stops,
    # the outbox must empty.
    deadline = time.monotonic() + RECOVERY_SECONDS
    pending = outbox_pending()
    while pending != 0 and time.monotonic() < deadline:
        time.sleep(1.0)
        pending = outbox_pending()
    assert pending == 0, (
        f"{PENDING} is still {pending:.0f}, {RECOVERY_SECONDS:.0f} s after the traffic stopped"
    )
    return outcome, backlog


@pytest.mark.timeout(420)
def test_one_broker_node_lost_under_traffic_fails_no_request_and_loses_no_event(
    target: LiveTarget,
    collector: EventCollector,
    brokers_restarted: None,
    traffic: Callable[..., SessionTraffic],
) -> None:
    outcome, backlog = outage(traffic, ["rabbitmq-1"])
    print(f"rabbitmq-1 down {OUTAGE_SECONDS:.0f} s: highest outbox backlog {backlog:.0f}")
    check_error_budget(outcome, broker_budget(), "loss of rabbitmq-1").raise_if_violated()
    check_events(events_of(collector, outcome), "loss of rabbitmq-1")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_whole_broker_cluster_lost_delays_events_but_loses_none(
    target: LiveTarget,
    collector: EventCollector,
    brokers_restarted: None,
    traffic: Callable[..., SessionTraffic],
) -> None:
    outcome, backlog = outage(traffic, [])
    print(f"every broker down {OUTAGE_SECONDS:.0f} s: highest outbox backlog {backlog:.0f}")
    check_error_budget(outcome, broker_budget(), "loss of every broker").raise_if_violated()
    assert backlog > 0, "no event waited in the outbox while every broker was down"
    check_events(events_of(collector, outcome), "loss of every broker")


@pytest.mark.destructive
@pytest.mark.timeout(300)
def test_twin_a_release_that_drops_events_fails_the_event_check(
    target: LiveTarget, collector: EventCollector, traffic: Callable[..., SessionTraffic]
) -> None:
    target.set_fault("drops-events")
    target.kubectl("rollout", "status", f"deployment/{target.deployment}", "--timeout=120s")
    requests = traffic(sessions=2, max_seconds=60)
    time.sleep(5.0)
    outcome = requests.stop()
    with pytest.raises(AssertionError) as failed:
        check_events(events_of(collector, outcome, seconds=10.0), "drops-events release")
    message = str(failed.value)
    assert "acknowledged writes have no event" in message, message
    print(f"the twin failed as it must: {message[:300]}")
