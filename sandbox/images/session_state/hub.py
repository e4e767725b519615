"""Local fan-out: every WebSocket subscription gets every event of its session, in seq
order, with no gap and no duplicate.

A `Subscription` has one pump task, the only sender: it replays the event log after
`since`, then sends live events (from pub/sub, or from this replica's own writes)
as `model.next_step` decides: from its buffer when the next seq is there, from
PostgreSQL when a later seq is known (a gap), never a seq already sent. The `Hub`
routes live events to subscriptions and, on a timer, asks PostgreSQL for the latest
seq of every subscribed session, so that an event whose pub/sub message was lost
(Redis down, a publisher that failed after COMMIT) still arrives: every
`poll_interval` while pub/sub is down, every `resync_interval` while it is up.

Every read of the event log on behalf of subscribers goes through a `ReplayGate`, which
lets at most half the pool's connections serve them (`replay_slots`). A reconnect storm
resumes thousands of subscriptions at once (a third of all sockets when a pod goes);
unbounded, their replays queue ahead of the request path on the pool and requests wait
out DB_TIMEOUT_SECONDS to a 503. Measured before the gate: `suites/test_ws_storm.py`,
1,217 PUTs answered 503 in the storm's first 16 s, with
`session_state_db_errors{operation="request"}` on both pods that stayed. A replay waits
at the gate instead, without a timeout: it is late, never lost.

The `ws-resume-from-head` fault only moves where a resumed subscription starts (its
newest event instead of `since`); everything after that is the healthy delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from sandbox.images.session_state.errors import DB_UNAVAILABLE
from sandbox.images.session_state.metrics import Metrics
from sandbox.images.session_state.model import Event, Fetch, Send, next_step, should_deliver

log = logging.getLogger("session_state.hub")
FETCH_BATCH = 500
MAX_BUFFERED = 1000
HEADS_CHUNK = 1000


class EventSource(Protocol):
    async def events_after(self, session_id: str, after: int, limit: int) -> list[Event]: ...

    async def heads(self, session_ids: Sequence[str]) -> dict[str, int]: ...


Sender = Callable[[Event], Awaitable[None]]


def replay_slots(pool_size: int) -> int:
    """Connections the subscribers' reads may hold at once: half the pool, at least one,
    so the request path always has the other half.

    >>> [replay_slots(n) for n in (1, 2, 3, 10)]
    [1, 1, 1, 5]
    """
    return max(1, pool_size // 2)


class ReplayGate:
    """The event log as subscribers read it: at most `slots` reads at a time."""

    def __init__(self, source: EventSource, slots: int) -> None:
        self.source = source
        self.slots = slots
        self._gate = asyncio.Semaphore(slots)

    async def events_after(self, session_id: str, after: int, limit: int) -> list[Event]:
        async with self._gate:
            return await self.source.events_after(session_id, after, limit)

    async def heads(self, session_ids: Sequence[str]) -> dict[str, int]:
        async with self._gate:
            return await self.source.heads(session_ids)


class Subscription:
    def __init__(
        self,
        session_id: str,
        since: int,
        send: Sender,
        source: EventSource,
        metrics: Metrics,
        retry_delay: float = 1.0,
        from_head: bool = False,
    ) -> None:
        self.session_id = session_id
        self.last_sent = since
        self.from_head = from_head  # the `ws-resume-from-head` fault: skip to the newest event
        self.head: int | None = None  # None: not yet replayed, so ask the database
        self.buffer: dict[int, Event] = {}
        self.send = send
        self.source = source
        self.metrics = metrics
        self.retry_delay = retry_delay
        self.wake = asyncio.Event()

    def offer(self, event: Event) -> None:
        """A live event; kept only if it is still to be sent."""
        if event.seq <= self.last_sent:
            return
        if len(self.buffer) < MAX_BUFFERED:
            self.buffer[event.seq] = event
        self.note_head(event.seq)

    def note_head(self, seq: int) -> None:
        """The log holds `seq`: if it is new to us, the pump fetches what it missed."""
        if self.head is not None and seq > self.head:
            self.head = seq
        if seq > self.last_sent:
            self.wake.set()

    async def run(self) -> None:
        """Send until cancelled or until the socket refuses a send."""
        if self.from_head:
            await self._skip_to_head()
        while True:
            step = next_step(self.last_sent, set(self.buffer), self.head)
            if isinstance(step, Send):
                await self._deliver(self.buffer.pop(step.seq))
            elif isinstance(step, Fetch):
                await self._fetch(step.after)
            else:
                self.wake.clear()
                await self.wake.wait()

    async def _deliver(self, event: Event) -> None:
        if should_deliver(self.last_sent, event.seq):
            await self.send(event)
            self.last_sent = event.seq
            self.metrics.events_pushed.inc()

    async def _skip_to_head(self) -> None:
        """Count every event up to the session's newest as sent, so only later ones go out:
        what a server does that resumes a subscriber live instead of from its `since`."""
        while True:
            try:
                heads = await self.source.heads([self.session_id])
            except DB_UNAVAILABLE as error:
                self.metrics.db_errors.labels("events").inc()
                log.warning(
                    "reading the head of %s failed: %s", self.session_id, type(error).__name__
                )
                await asyncio.sleep(self.retry_delay)
                continue
            self.last_sent = max(self.last_sent, heads.get(self.session_id, 0))
            for seq in [seq for seq in self.buffer if seq <= self.last_sent]:
                del self.buffer[seq]
            return

    async def _fetch(self, after: int) -> None:
        if self.head is not None:
            self.metrics.gap_fills.inc()
        try:
            events = await self.source.events_after(self.session_id, after, FETCH_BATCH)
        except DB_UNAVAILABLE as error:
            self.metrics.db_errors.labels("events").inc()
            log.warning("reading events of %s failed: %s", self.session_id, type(error).__name__)
            await asyncio.sleep(self.retry_delay)
            return
        for event in events:
            await self._deliver(event)
        for seq in [seq for seq in self.buffer if seq <= self.last_sent]:
            del self.buffer[seq]
        if len(events) == FETCH_BATCH:
            return
        if self.head is None or self.head <= self.last_sent:
            self.head = self.last_sent
        elif not events:
            # A seq we were told of is not in the log yet: wait rather than spin.
            await asyncio.sleep(self.retry_delay)


class Hub:
    def __init__(self, source: EventSource, metrics: Metrics) -> None:
        self.source = source
        self.metrics = metrics
        self.subscriptions: dict[str, set[Subscription]] = {}
        self._kick = asyncio.Event()

    def add(self, subscription: Subscription) -> None:
        self.subscriptions.setdefault(subscription.session_id, set()).add(subscription)
        self.metrics.subscriptions.inc()

    def remove(self, subscription: Subscription) -> None:
        found = self.subscriptions.get(subscription.session_id)
        if found is not None and subscription in found:
            found.discard(subscription)
            self.metrics.subscriptions.dec()
            if not found:
                del self.subscriptions[subscription.session_id]

    def dispatch(self, event: Event) -> None:
        for subscription in self.subscriptions.get(event.session, ()):
            subscription.offer(event)

    def kick(self) -> None:
        """Resync now (pub/sub just (re)connected: it may have missed messages)."""
        self._kick.set()

    async def resync_once(self) -> None:
        ids = list(self.subscriptions)
        for start in range(0, len(ids), HEADS_CHUNK):
            heads = await self.source.heads(ids[start : start + HEADS_CHUNK])
            for session_id, seq in heads.items():
                for subscription in self.subscriptions.get(session_id, ()):
                    subscription.note_head(seq)

    async def resync_forever(
        self, pubsub_up: Callable[[], bool], poll_interval: float, resync_interval: float
    ) -> None:
        while True:
            interval = resync_interval if pubsub_up() else poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), interval)
            self._kick.clear()
            if not self.subscriptions:
                continue
            try:
                await self.resync_once()
            except DB_UNAVAILABLE as error:
                self.metrics.db_errors.labels("resync").inc()
                log.warning("resync of subscriptions failed: %s", type(error).__name__)
            except Exception:  # the resync's outermost loop: log and go on
                self.metrics.db_errors.labels("resync").inc()
                log.exception("resync of subscriptions failed")
