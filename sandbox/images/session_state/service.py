"""Sessions as the REST handlers see them: reads through the cache, writes through a write path.

Reads: a pending write-behind result (fault only), else the cache, else PostgreSQL
(and the cache is filled). Writes go to the `WritePath`; `after_commit` is what
every committed write triggers, in this order: this replica's subscribers, the
cache, the other replicas (pub/sub).
"""

from __future__ import annotations

from sandbox.images.session_state.cache import SessionCache
from sandbox.images.session_state.db import Database, Written
from sandbox.images.session_state.errors import NotFound, Unavailable
from sandbox.images.session_state.hub import Hub
from sandbox.images.session_state.model import (
    CreateRequest,
    IfMatch,
    JsonObject,
    ListQuery,
    ReplaceRequest,
    Session,
)
from sandbox.images.session_state.pubsub import Publisher
from sandbox.images.session_state.writes import (
    WritePath,
    delete_change,
    patch_change,
    replace_change,
)


class AfterCommit:
    def __init__(self, hub: Hub, cache: SessionCache, publisher: Publisher) -> None:
        self.hub = hub
        self.cache = cache
        self.publisher = publisher

    async def __call__(self, written: Written) -> None:
        self.hub.dispatch(written.event)
        if written.session is None:
            await self.cache.mark_deleted(written.event.session, written.event.seq)
        else:
            await self.cache.put(written.session)
        await self.publisher.publish(written.event)


class SessionService:
    def __init__(
        self, db: Database, cache: SessionCache, writes: WritePath, trust_cache: bool = False
    ) -> None:
        self.db = db
        self.cache = cache
        self.writes = writes
        self.trust_cache = trust_cache  # `trusts-stale-cache`: no version check
        self.ready_for_writes = False  # set once the migrations ran

    def _check_ready(self) -> None:
        if not self.ready_for_writes:
            raise Unavailable("the database schema is not ready yet")

    async def get(self, session_id: str) -> Session:
        self._check_ready()
        pending = self.writes.pending(session_id)
        if pending is None:
            raise NotFound(f"no session {session_id}")
        if isinstance(pending, Session):
            return pending
        cached = await self.cache.get(session_id)
        if cached is not None and (
            self.trust_cache or await self.db.version_of(session_id) == cached.version
        ):
            # Served only when the database agrees: a cache update that failed (a Redis
            # failover loses it, a silent primary times it out) leaves an older entry
            # that another replica would read, a stale read of an acknowledged write
            # (the redis-failover step caught it once Redis calls stopped retrying).
            return cached
        session = await self.db.get(session_id)
        if session is None:
            raise NotFound(f"no session {session_id}")
        await self.cache.fill(session)
        return session

    async def list_by_owner(self, query: ListQuery) -> list[Session]:
        self._check_ready()
        return await self.db.list_by_owner(query)

    async def create(self, request: CreateRequest) -> Written:
        self._check_ready()
        return await self.writes.create(request)

    async def replace(
        self, session_id: str, request: ReplaceRequest, if_match: IfMatch | None
    ) -> Written:
        self._check_ready()
        return await self.writes.change(session_id, if_match, replace_change(request))

    async def patch(self, session_id: str, patch: JsonObject, if_match: IfMatch | None) -> Written:
        self._check_ready()
        return await self.writes.change(session_id, if_match, patch_change(patch))

    async def delete(self, session_id: str, if_match: IfMatch | None) -> Written:
        self._check_ready()
        return await self.writes.change(session_id, if_match, delete_change())
