"""The outbox relay: committed events from PostgreSQL to RabbitMQ, at least once.

Every pod runs one `Relay` when AMQP_URLS is set. A round claims up to `batch`
unpublished outbox rows in id order with `FOR UPDATE SKIP LOCKED` (so the pods
share the work and never publish a row at the same time), publishes each to the
durable topic exchange `harmonyflow.sessions` as a persistent message whose
`message_id` is the event id, waits for the broker's publisher confirm, and sets
`published_at` on the confirmed rows in the same transaction that locked them.

At least once, not exactly once: a crash (or a lost database) after a confirm and
before COMMIT leaves the row unpublished, and the next round publishes it again.
Consumers dedupe by `message_id`. Nothing is lost in the other direction: a row is
marked only after its confirm, so a broker outage leaves the rows waiting (the
`session_state_outbox_pending` gauge grows) while writes go on untouched, since the
request path never talks to AMQP.

The broker is a list of nodes. `aio_pika.connect_robust` reconnects to one URL only,
so `BrokerLink` does the failover itself: it starts from the node that last worked,
tries the others in turn, and after a round in which none answered the relay waits
a bounded, doubling backoff. State changes are logged once (not every retry), and
only `AmqpTarget.describe()` is ever logged: never a URL with its password.

    >>> failover_order(3, preferred=1)
    [1, 2, 0]
    >>> [next_backoff(b) for b in (0.0, 0.2, 3.0, 5.0)]
    [0.2, 0.4, 5.0, 5.0]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import asyncpg
from pamqp.commands import Basic

from sandbox.images.session_state.config import AmqpTarget
from sandbox.images.session_state.db import (
    EXCHANGE,
    Database,
    OutboxRow,
    claim_outbox,
    mark_published,
)
from sandbox.images.session_state.errors import DB_UNAVAILABLE
from sandbox.images.session_state.faults import Fault
from sandbox.images.session_state.metrics import Metrics

log = logging.getLogger("session_state.relay")
# aiormq logs every failed connect and every remote close at ERROR; the link logs the
# state changes itself, once, so the client libraries' own lines are only noise.
QUIET_LOGGERS = ("aiormq", "aio_pika")
BATCH = 100
IDLE_INTERVAL = 0.2  # between rounds when the outbox is empty
CONNECT_TIMEOUT = 3.0
PUBLISH_TIMEOUT = 5.0  # per message, confirm included: bounds how long rows stay locked
MIN_BACKOFF, MAX_BACKOFF = 0.2, 5.0
# Published rows are kept an hour (to inspect a run), then deleted, so the table stays
# small; every pod prunes at most once a minute (concurrent deletes are harmless).
RETAIN_PUBLISHED, PRUNE_INTERVAL = 3600.0, 60.0
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    *aio_pika.exceptions.CONNECTION_EXCEPTIONS,
    asyncio.TimeoutError,
)

DB_ERRORS: tuple[type[BaseException], ...] = (*DB_UNAVAILABLE, asyncpg.PostgresError)


class BrokerUnavailable(Exception):
    """No node of the list accepted a connection in this round; the message names them."""


class PublishRefused(Exception):
    """The broker answered a publish with something else than a confirm (nack, reject)."""


PUBLISH_ERRORS: tuple[type[BaseException], ...] = (PublishRefused, *BROKER_ERRORS)


class BrokerFailed(Exception):
    """A publish failed mid-batch (after the confirmed rows were committed); the error name."""


def failover_order(nodes: int, preferred: int) -> list[int]:
    """The node indexes to try: the one that worked last, then the others in list order."""
    start = preferred % nodes if nodes else 0
    return [(start + step) % nodes for step in range(nodes)]


def next_backoff(previous: float) -> float:
    """The wait after `previous`: doubling from MIN_BACKOFF, never above MAX_BACKOFF."""
    return min(max(previous * 2, MIN_BACKOFF), MAX_BACKOFF)


@dataclass(frozen=True)
class LinkState:
    """What the log reports about the broker: which node, or why none."""

    node: str = ""  # describe() of the connected node; "" when not connected
    problem: str = ""  # the last failure, without any URL


def transition_message(before: LinkState, after: LinkState) -> str | None:
    """The one log line for a change of state, None when nothing changed (a retry).

    >>> transition_message(LinkState(), LinkState(node="amqp://u@h:5672/"))
    'connected to RabbitMQ amqp://u@h:5672/'
    >>> transition_message(LinkState(problem="x"), LinkState(problem="x")) is None
    True
    """
    if after.node and after.node != before.node:
        return f"connected to RabbitMQ {after.node}"
    if not after.node and before.node:
        return f"lost RabbitMQ {before.node} ({after.problem}); failing over to the other nodes"
    if not after.node and after.problem != before.problem:
        return f"no RabbitMQ node reachable ({after.problem}); outbox rows wait, retrying"
    return None


def error_name(error: BaseException) -> str:
    """The error's type only: an AMQP error's text may quote a URL (and its password)."""
    return type(error).__name__


def message_for(row: OutboxRow) -> aio_pika.Message:
    """A persistent JSON message whose message_id is the event id (the consumers' dedupe key)."""
    return aio_pika.Message(
        json.dumps(row.payload, separators=(",", ":")).encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=row.event_id,
        type=row.routing_key,
    )


class BrokerLink:
    """One connection (with a confirming channel) to one node of the list at a time."""

    def __init__(self, nodes: Sequence[AmqpTarget], metrics: Metrics) -> None:
        if not nodes:
            raise ValueError("BrokerLink needs at least one node")
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.nodes = tuple(nodes)
        self.metrics = metrics
        self.preferred = 0
        self.state = LinkState()
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def exchange(self) -> aio_pika.abc.AbstractExchange:
        """The exchange on a live connection, connecting (with failover) when there is none."""
        if self._exchange is not None and self._connection is not None:
            # A plain (non-robust) connection closed by the broker only clears `connected`.
            if not self._connection.is_closed and self._connection.connected.is_set():
                return self._exchange
            await self.lost("connection closed by the broker")
        problems = []
        for index in failover_order(len(self.nodes), self.preferred):
            node = self.nodes[index]
            try:
                self._exchange = await asyncio.wait_for(self._connect(node), CONNECT_TIMEOUT * 2)
            except BROKER_ERRORS as error:
                self.metrics.broker_errors.inc()
                await self._close()
                problems.append(f"{node.host}:{node.port} {error_name(error)}")
                continue
            self.preferred = index
            self._set_state(LinkState(node=node.describe()))
            return self._exchange
        problem = "; ".join(problems)
        self._set_state(LinkState(problem=problem))
        raise BrokerUnavailable(problem)

    async def _connect(self, node: AmqpTarget) -> aio_pika.abc.AbstractExchange:
        self._connection = await aio_pika.connect(node.url, timeout=CONNECT_TIMEOUT)
        channel = await self._connection.channel(publisher_confirms=True)
        return await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, timeout=CONNECT_TIMEOUT
        )

    async def publish(self, exchange: aio_pika.abc.AbstractExchange, row: OutboxRow) -> None:
        """Returns once the broker confirmed the message (persisted, for a durable queue)."""
        # mandatory=False: an event nobody subscribed to is not an error of the relay.
        confirm = await exchange.publish(
            message_for(row), row.routing_key, mandatory=False, timeout=PUBLISH_TIMEOUT
        )
        if not isinstance(confirm, Basic.Ack):
            raise PublishRefused(type(confirm).__name__)

    async def lost(self, problem: str) -> None:
        """Forget the connection after a failure; the next `exchange()` fails over."""
        self.metrics.broker_errors.inc()
        await self._close()
        self.preferred += 1  # the node that failed is tried last next time
        self._set_state(LinkState(problem=problem))

    async def close(self) -> None:
        await self._close()
        self.metrics.broker_connected.set(0)

    async def _close(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await asyncio.wait_for(connection.close(), 2.0)

    def _set_state(self, state: LinkState) -> None:
        message = transition_message(self.state, state)
        if message is not None:
            (log.info if state.node else log.warning)(message)
        self.state = state
        self.metrics.broker_connected.set(1 if state.node else 0)


class Relay:
    """The loop: refresh the pending gauge, relay one batch, back off on errors, never die."""

    def __init__(
        self,
        db: Database,
        link: BrokerLink,
        metrics: Metrics,
        fault: Fault,
        ready: Callable[[], bool],
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.link = link
        self.metrics = metrics
        self.fault = fault
        self.ready = ready
        self.batch = batch
        self._db_problem = ""
        self._pruned_at = 0.0

    async def run_forever(self) -> None:
        backoff = 0.0
        try:
            while True:
                if not self.ready():  # the migrations have not run yet
                    await asyncio.sleep(IDLE_INTERVAL)
                    continue
                try:
                    await self._refresh_pending()
                    relayed = await self.relay_once()  # connects also when idle: true gauge
                except (BrokerUnavailable, BrokerFailed) as error:
                    if isinstance(error, BrokerFailed):
                        await self.link.lost(str(error))
                    backoff = next_backoff(backoff)
                    await asyncio.sleep(backoff)
                    continue
                except DB_ERRORS as error:
                    self.metrics.db_errors.labels("outbox").inc()
                    self._db_state(error_name(error))
                    backoff = next_backoff(backoff)
                    await asyncio.sleep(backoff)
                    continue
                except Exception:  # the relay's outermost loop: log and go on
                    log.exception("outbox relay round failed")
                    await asyncio.sleep(MAX_BACKOFF)
                    continue
                backoff = 0.0
                self._db_state("")
                if relayed < self.batch:
                    await asyncio.sleep(IDLE_INTERVAL)
        finally:
            await self.link.close()

    async def relay_once(self) -> int:
        """One batch: claim, publish with confirms, mark the confirmed; the count marked.

        A publish failure ends the batch: the rows confirmed before it are still marked
        (COMMIT), then `BrokerFailed` is raised so that the loop fails over. Broker
        errors never escape as OSError, which the loop would take for a database error.
        """
        failure = ""
        done: list[int] = []
        exchange = await self.link.exchange()  # before the locks: a failover holds no rows
        async with self.db.pool.acquire(timeout=self.db.timeout) as conn, conn.transaction():
            rows = await claim_outbox(conn, self.batch)
            if not rows:
                return 0
            for row in rows:
                try:
                    if not self.fault.drops_events:  # the seeded fault: mark, never publish
                        await self.link.publish(exchange, row)
                except PUBLISH_ERRORS as error:
                    failure = error_name(error)
                    break
                done.append(row.id)
            await mark_published(conn, done)
        self.metrics.outbox_published.inc(len(done))
        if failure:
            raise BrokerFailed(failure)
        return len(done)

    async def _refresh_pending(self) -> None:
        self.metrics.outbox_pending.set(await self.db.outbox_pending())
        self.metrics.outbox_oldest_pending.set(await self.db.outbox_oldest_pending_seconds())
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = now
            await self.db.prune_outbox(RETAIN_PUBLISHED)

    def _db_state(self, problem: str) -> None:
        if problem and not self._db_problem:
            log.warning("outbox relay: PostgreSQL unavailable (%s); retrying", problem)
        elif not problem and self._db_problem:
            log.info("outbox relay: PostgreSQL available again")
        self._db_problem = problem
