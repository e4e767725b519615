"""The two write paths: committed (the service) and write-behind (the `drops-writes` fault).

`CommittedWrites` answers after COMMIT, then runs `AfterCommit`: the local hub, the
cache, pub/sub, each best effort, none able to fail the write. `WriteBehind` answers
at once with the result it predicts, queues the write and commits it on the next
flush (every `flush_interval`); `drop()` at SIGTERM loses whatever is queued: the
bug a resilience suite must catch.

The changes themselves are pure: `replace_change`, `patch_change`, `delete_change`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sandbox.images.session_state.db import Change, Database, Written
from sandbox.images.session_state.errors import (
    DB_UNAVAILABLE,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unprocessable,
)
from sandbox.images.session_state.model import (
    CreateRequest,
    Event,
    EventKind,
    IfMatch,
    JsonObject,
    ReplaceRequest,
    Session,
    merge_patch,
    precondition_holds,
)

log = logging.getLogger("session_state.writes")
OnCommit = Callable[[Written], Awaitable[None]]


def replace_change(request: ReplaceRequest) -> Change:
    def change(current: Session) -> tuple[EventKind, JsonObject | None]:
        if request.owner is not None and request.owner != current.owner:
            raise Unprocessable("owner cannot change")
        return "updated", request.state

    return change


def patch_change(patch: JsonObject) -> Change:
    def change(current: Session) -> tuple[EventKind, JsonObject | None]:
        state = merge_patch(current.state, patch)
        if not isinstance(state, dict):
            raise Unprocessable("the patched state must be a JSON object")
        return "updated", state

    return change


def delete_change() -> Change:
    def change(current: Session) -> tuple[EventKind, JsonObject | None]:
        return "deleted", None

    return change


class WritePath(Protocol):
    async def create(self, request: CreateRequest) -> Written: ...

    async def change(
        self, session_id: str, if_match: IfMatch | None, change: Change
    ) -> Written: ...

    def pending(self, session_id: str) -> Session | bool | None:
        """A not-yet-committed session (False: nothing pending, None: pending delete)."""
        ...


class CommittedWrites:
    def __init__(self, db: Database, on_commit: OnCommit) -> None:
        self.db = db
        self.on_commit = on_commit

    async def create(self, request: CreateRequest) -> Written:
        written = await self.db.create(request)
        await self.on_commit(written)
        return written

    async def change(self, session_id: str, if_match: IfMatch | None, change: Change) -> Written:
        written = await self.db.change(session_id, if_match, change)
        await self.on_commit(written)
        return written

    def pending(self, session_id: str) -> Session | bool | None:
        return False


@dataclass(frozen=True)
class _Queued:
    session_id: str
    create: CreateRequest | None = None
    change: Change | None = None


class WriteBehind:
    """The `drops-writes` fault: acknowledged before COMMIT, lost at SIGTERM."""

    def __init__(self, db: Database, on_commit: OnCommit, flush_interval: float) -> None:
        self.db = db
        self.on_commit = on_commit
        self.flush_interval = flush_interval
        self.queue: list[_Queued] = []
        self.overlay: dict[str, Session | None] = {}

    def pending(self, session_id: str) -> Session | bool | None:
        return self.overlay.get(session_id, False)

    async def create(self, request: CreateRequest) -> Written:
        session_id = request.id or str(uuid.uuid4())
        if self.overlay.get(session_id) or (
            session_id not in self.overlay and await self.db.get(session_id)
        ):
            raise Conflict(f"session {session_id} already exists")
        seq = (await self.db.heads([session_id])).get(session_id, 0) + 1
        session = Session(session_id, request.owner, 1, request.state, seq)
        self._queue(
            _Queued(session_id, create=CreateRequest(request.owner, request.state, session_id)),
            session,
        )
        return Written(session, _event(session_id, seq, 1, "created", request.state))

    async def change(self, session_id: str, if_match: IfMatch | None, change: Change) -> Written:
        current = (
            self.overlay[session_id]
            if session_id in self.overlay
            else await self.db.get(session_id)
        )
        if current is None:
            raise NotFound(f"no session {session_id}")
        if not precondition_holds(if_match, current.version):
            raise PreconditionFailed(
                f"If-Match does not match the current version {current.version}"
            )
        kind, state = change(current)
        version, seq = current.version + 1, current.seq + 1
        after = None if state is None else Session(session_id, current.owner, version, state, seq)
        self._queue(_Queued(session_id, change=change), after)
        return Written(after, _event(session_id, seq, version, kind, state))

    def _queue(self, queued: _Queued, predicted: Session | None) -> None:
        self.queue.append(queued)
        self.overlay[queued.session_id] = predicted

    async def flush_forever(self, on_size: Callable[[int], None]) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            on_size(len(self.queue))
            await self.flush()
            on_size(len(self.queue))

    async def flush(self) -> None:
        batch, self.queue = self.queue, []
        for index, queued in enumerate(batch):
            try:
                written = await self._commit(queued)
            except DB_UNAVAILABLE:
                self.queue = batch[index:] + self.queue
                return
            except ServiceError as error:
                log.warning("write-behind: dropped a write of %s: %s", queued.session_id, error)
                continue
            await self.on_commit(written)
        waiting = {queued.session_id for queued in self.queue}
        for session_id in [s for s in self.overlay if s not in waiting]:
            del self.overlay[session_id]

    async def _commit(self, queued: _Queued) -> Written:
        if queued.create is not None:
            return await self.db.create(queued.create)
        assert queued.change is not None
        return await self.db.change(queued.session_id, None, queued.change)

    def drop(self) -> int:
        """SIGTERM: forget what is queued (acknowledged, never committed)."""
        lost = len(self.queue)
        self.queue.clear()
        return lost


def _event(
    session_id: str, seq: int, version: int, kind: EventKind, state: JsonObject | None
) -> Event:
    return Event(session_id, seq, version, kind, state, datetime.now(UTC).isoformat())
