"""The consumer side of the session events: collect every delivery, then judge them.

The service publishes one event per acknowledged write (created, updated, deleted)
to the durable topic exchange `harmonyflow.sessions`, at least once, with the event
id as `message_id`. `EventCollector` is a consumer like any other: it reaches the
brokers only through AMQP (the URLs in `HARMONYFLOW_AMQP_URLS`, one per node, which
`resilience sandbox env` exports), never through the sandbox. It declares a durable
quorum queue of its own, bound with `#`, before the traffic starts, so it sees every
event published after `start()`; when its node goes away it reconnects to the next
node of the list, and the quorum queue (replicated across the cluster) still holds
what was published meanwhile.

`event_verdict` compares the writes a run saw acknowledged with the deliveries:

    >>> d = [Delivery("e1", "s", 1, "created", 0.0, False),
    ...      Delivery("e1", "s", 1, "created", 0.1, True)]
    >>> v = event_verdict([("s", 1), ("s", 2)], d)
    >>> v.missing, v.duplicates
    ((('s', 2),), (('e1', 2),))
    >>> v.failures()
    ['1 of 2 acknowledged writes have no event: s v2']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc
import aio_pika.exceptions

log = logging.getLogger("resilience.broker")
URLS_ENV = "HARMONYFLOW_AMQP_URLS"
EXCHANGE = "harmonyflow.sessions"
BINDING = "#"
CONNECT_TIMEOUT = 3.0
MAX_BACKOFF = 2.0
SHOWN = 10  # missing events named in a failure line; the count covers the rest
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    *aio_pika.exceptions.CONNECTION_EXCEPTIONS,
    asyncio.TimeoutError,
)

Write = tuple[str, int]  # (session id, version) of one acknowledged write


@dataclass(frozen=True)
class Delivery:
    """One message as the collector received it (`delivered_at`: wall-clock seconds)."""

    message_id: str
    session_id: str
    version: int
    kind: str
    delivered_at: float
    redelivered: bool


def parse_urls(text: str) -> tuple[str, ...]:
    """A comma-separated list of amqp:// URLs; `ValueError` (one line, no password) when bad.

    >>> parse_urls("amqp://u:pw@127.0.0.1:5672/, amqps://u@h/")
    ('amqp://u:pw@127.0.0.1:5672/', 'amqps://u@h/')
    >>> parse_urls("http://u:pw@h/")
    Traceback (most recent call last):
    ...
    ValueError: HARMONYFLOW_AMQP_URLS: URL 1: scheme must be amqp or amqps, got 'http'
    """
    urls = tuple(part.strip() for part in text.split(",") if part.strip())
    if not urls:
        raise ValueError(f"{URLS_ENV}: no AMQP URL given")
    for position, url in enumerate(urls, 1):
        where = f"{URLS_ENV}: URL {position}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"{where}: not a URL of the form amqp://user@host:port/") from None
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"{where}: scheme must be amqp or amqps, got {parts.scheme!r}")
        if not parts.hostname or port == 0:
            raise ValueError(f"{where}: expected amqp://user@host:port/")
    return urls


def urls_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return parse_urls((os.environ if env is None else env).get(URLS_ENV, ""))


def describe_url(url: str) -> str:
    """`host:port` of a URL: what a log or an error may show (never the password)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


def delivery_from_body(
    body: bytes, message_id: str | None, redelivered: bool, at: float
) -> Delivery | None:
    """The delivery a message body describes, or None when it is not a session event.

    >>> delivery_from_body(b'{"session_id": "s", "version": 3, "kind": "updated"}',
    ...                    "e", False, 1.0)
    Delivery(message_id='e', session_id='s', version=3, kind='updated', delivered_at=1.0, \
redelivered=False)
    >>> delivery_from_body(b"not json", "e", False, 1.0) is None
    True
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    session, version, kind = payload.get("session_id"), payload.get("version"), payload.get("kind")
    if not isinstance(session, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    event_id = message_id or str(payload.get("event_id") or "")
    if not event_id:
        return None
    return Delivery(event_id, session, version, str(kind), at, redelivered)


@dataclass(frozen=True)
class EventVerdict:
    """Acknowledged writes against delivered events.

    `missing`: acknowledged writes without any event (a lost event: the failure).
    `duplicates`: event ids delivered more than once, with the count (at-least-once
    allows them; consumers dedupe by message_id). `unexpected`: events of writes the
    run did not see acknowledged, e.g. a write committed whose answer was lost in a
    fault; reported, not failed, because a committed write must have its event.
    """

    expected: int
    delivered: int  # distinct event ids
    missing: tuple[Write, ...]
    duplicates: tuple[tuple[str, int], ...]
    unexpected: tuple[Write, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def failures(self) -> list[str]:
        """One line naming the missing events (the first SHOWN) with the counts; [] if none."""
        if not self.missing:
            return []
        shown = ", ".join(f"{session} v{version}" for session, version in self.missing[:SHOWN])
        more = len(self.missing) - SHOWN
        tail = f" and {more} more" if more > 0 else ""
        return [
            f"{len(self.missing)} of {self.expected} acknowledged writes have no event: "
            f"{shown}{tail}"
        ]

    def summary(self) -> str:
        return (
            f"{self.expected} acknowledged writes, {self.delivered} distinct events, "
            f"{len(self.missing)} missing, {len(self.duplicates)} delivered more than once, "
            f"{len(self.unexpected)} unexpected"
        )


def event_verdict(expected: Iterable[Write], deliveries: Iterable[Delivery]) -> EventVerdict:
    """Which acknowledged writes have no event, which events came twice, which were unasked.

    `expected` may repeat a write (counted once); the order of `missing` and
    `unexpected` is sorted, so that messages are stable.
    """
    wanted = set(expected)
    all_deliveries = list(deliveries)
    times = Counter(d.message_id for d in all_deliveries)
    seen = {(d.session_id, d.version) for d in all_deliveries}
    return EventVerdict(
        expected=len(wanted),
        delivered=len(times),
        missing=tuple(sorted(wanted - seen)),
        duplicates=tuple(sorted((m, n) for m, n in times.items() if n > 1)),
        unexpected=tuple(sorted(seen - wanted)),
    )


class EventCollector:
    """Records every event delivered to a queue of its own, in a thread with its own loop.

        with EventCollector(urls_from_env()) as collector:   # start(): bound and consuming
            ...write...
            collector.wait_for(lambda d: len(d) >= n, timeout=30)
        verdict = event_verdict(acknowledged, collector.deliveries())

    Each delivery is recorded, then acknowledged; an ack lost with a node comes back
    as a redelivery (a duplicate, flagged `redelivered`). `stop()` deletes the queue.
    """

    def __init__(
        self,
        urls: Sequence[str],
        queue: str = "",
        connect_timeout: float = CONNECT_TIMEOUT,
        delete_queue_on_stop: bool = True,
    ) -> None:
        if not urls:
            raise ValueError("EventCollector needs at least one AMQP URL")
        self.urls = tuple(urls)
        self.queue = queue or f"resilience-events-{uuid.uuid4().hex[:12]}"
        self.connect_timeout = connect_timeout
        self.delete_queue_on_stop = delete_queue_on_stop
        self.node = ""  # host:port of the node consuming now ("" while reconnecting)
        self.connections = 0  # successful connections: more than 1 means it failed over
        self._deliveries: list[Delivery] = []
        self._ignored = 0
        self._lock = threading.Lock()
        self._consuming = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure = ""

    # ---- the caller's thread ----

    def start(self, timeout: float = 30.0) -> EventCollector:
        """Start consuming; returns once the queue is bound, or raises TimeoutError."""
        if self._thread is not None:
            raise RuntimeError("EventCollector already started")
        self._thread = threading.Thread(target=self._run, name="event-collector", daemon=True)
        self._thread.start()
        if not self._consuming.wait(timeout):
            self.stop()
            problem = f" (last error: {self._failure})" if self._failure else ""
            raise TimeoutError(f"no AMQP node accepted the collector within {timeout}s{problem}")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the event collector did not stop within {timeout}s")
        self._thread = None

    def __enter__(self) -> EventCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def ignored(self) -> int:
        """Messages on the exchange that were not session events."""
        with self._lock:
            return self._ignored

    def wait_for(
        self, check: Callable[[list[Delivery]], bool], timeout: float, every: float = 0.1
    ) -> list[Delivery]:
        """The deliveries once `check` holds; TimeoutError naming how many arrived otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.deliveries()
            if check(seen):
                return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout}s the collector holds {len(seen)} deliveries")
            time.sleep(every)

    # ---- the collector's thread ----

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        backoff, index = 0.1, 0
        while not self._stop.is_set():
            url = self.urls[index % len(self.urls)]
            try:
                await self._consume(url)
                backoff = 0.1
            except BROKER_ERRORS as error:
                self._failure = f"{describe_url(url)} {type(error).__name__}"
                self.node = ""
            except Exception as error:  # the collector's outermost loop: log, try the next node
                log.exception("event collector failed on %s", describe_url(url))
                self._failure = f"{describe_url(url)} {type(error).__name__}"
                self.node = ""
            if self._stop.is_set():
                break
            index += 1  # the node failed or went away: the next one of the list
            if index % len(self.urls) == 0:  # a whole round failed: back off, bounded
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _consume(self, url: str) -> None:
        """Connect, declare, consume until the connection drops or `stop()`; then clean up."""
        assert self._stop is not None
        connection = await asyncio.wait_for(
            aio_pika.connect(url, timeout=self.connect_timeout), self.connect_timeout * 2
        )
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=200)
            exchange = await channel.declare_exchange(
                EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                self.queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind(exchange, BINDING)
            cancelled = asyncio.Event()  # the broker cancelled the consumer (queue deleted)
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(lambda frame: cancelled.set())
            await queue.consume(self._on_message)
            self.node = describe_url(url)
            self.connections += 1
            log.info("event collector consuming %s on %s", self.queue, self.node)
            self._consuming.set()
            # A plain connection closed by the broker only clears `connected`; either that
            # or a cancelled consumer sends the collector to the next node, declaring again.
            while (
                not self._stop.is_set() and connection.connected.is_set() and not cancelled.is_set()
            ):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.2)
            if self._stop.is_set() and self.delete_queue_on_stop and connection.connected.is_set():
                with contextlib.suppress(*BROKER_ERRORS):
                    await asyncio.wait_for(queue.delete(if_unused=False, if_empty=False), 5.0)
        finally:
            with contextlib.suppress(*BROKER_ERRORS):
                await asyncio.wait_for(connection.close(), 2.0)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        delivery = delivery_from_body(
            message.body, message.message_id, bool(message.redelivered), time.time()
        )
        with self._lock:
            if delivery is None:
                self._ignored += 1
            else:
                self._deliveries.append(delivery)
        with contextlib.suppress(*BROKER_ERRORS):
            await message.ack()
