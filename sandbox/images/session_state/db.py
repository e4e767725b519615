"""PostgreSQL, the source of truth: the pool, the migrations, one transaction per write.

Every write locks the session row, checks If-Match, updates `sessions` and appends to
`session_events` in one transaction; it returns only after COMMIT, so that a 2xx means
the write is durable. `seq` counts the events of one session id (1, 2, ...), also
across a delete and a re-create, so that a subscriber's `since` stays meaningful.

The transactional outbox: when AMQP is configured (`outbox=True`), the same transaction
also inserts one `outbox` row per event, so an event exists exactly when its write
committed; `relay` publishes the rows later, and a broker outage never touches the
request path. Without AMQP_URLS no outbox rows are written at all: nobody would ever
publish them, and an ever-growing table of unpublishable rows helps no one. The
table itself is always migrated, so that turning AMQP on needs no schema change.

Lost connections: asyncpg's pool replaces a connection the server closed (a restart,
a failover, pg_terminate_backend) on the next acquire, so the healthy service
recovers by itself once PostgreSQL answers again. The `no-db-reconnect` fault swaps
in `PinnedPool`, the same pool less that one check (`faults.opens_connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sandbox.images.session_state.config import DbTarget
from sandbox.images.session_state.errors import Conflict, NotFound, PreconditionFailed
from sandbox.images.session_state.faults import HEALTHY, Fault, SlotState, opens_connection
from sandbox.images.session_state.model import (
    CreateRequest,
    Event,
    EventKind,
    IfMatch,
    JsonObject,
    ListQuery,
    Session,
    precondition_holds,
)

MIGRATION_LOCK = 0x5E55_1011  # pg_advisory_xact_lock key: one migrator at a time
# pods starting together wait for each other on the lock; the DDL itself is quick
MIGRATION_TIMEOUT_SECONDS = 30.0
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE IF NOT EXISTS sessions (
            id uuid PRIMARY KEY,
            owner text NOT NULL,
            version int NOT NULL,
            state jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS sessions_owner_id ON sessions (owner, id);
        CREATE TABLE IF NOT EXISTS session_events (
            session_id uuid NOT NULL,
            seq bigint NOT NULL,
            version int NOT NULL,
            kind text NOT NULL CHECK (kind IN ('created', 'updated', 'deleted')),
            state jsonb,
            at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (session_id, seq)
        );
        """,
    ),
    (
        2,
        """
        CREATE OR REPLACE FUNCTION session_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'session_events is append-only';
        END $$;
        DROP TRIGGER IF EXISTS session_events_append_only ON session_events;
        CREATE TRIGGER session_events_append_only
            BEFORE UPDATE OR DELETE ON session_events
            FOR EACH ROW EXECUTE FUNCTION session_events_append_only();
        """,
    ),
    (
        3,
        """
        CREATE TABLE IF NOT EXISTS outbox (
            id bigserial PRIMARY KEY,
            event_id uuid NOT NULL UNIQUE,
            routing_key text NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
        """,
    ),
)
EXCHANGE = "harmonyflow.sessions"  # topic, durable: routing key `session.<kind>`

_SESSION_COLUMNS = """
    s.id, s.owner, s.version, s.state,
    (SELECT max(e.seq) FROM session_events e WHERE e.session_id = s.id) AS seq
"""


@dataclass(frozen=True)
class Written:
    """A committed write: the session after it (None when deleted) and its event."""

    session: Session | None
    event: Event


@dataclass(frozen=True)
class OutboxRow:
    """One event waiting for the relay; `payload` is the AMQP message body."""

    id: int
    event_id: str
    routing_key: str
    payload: JsonObject


def routing_key(kind: EventKind) -> str:
    return f"session.{kind}"


def outbox_payload(event: Event, event_id: str) -> JsonObject:
    """The message body of one event: what a consumer needs to match it to a write.

    >>> e = Event("s1", 2, 2, "updated", {"a": 1}, "2026-01-01T00:00:00+00:00")
    >>> outbox_payload(e, "e1")["version"], routing_key(e.kind)
    (2, 'session.updated')
    """
    return {
        "event_id": event_id,
        "session_id": event.session,
        "version": event.version,
        "kind": event.kind,
        "occurred_at": event.at,
    }


# What a write does to the current row: (kind, new state) or raises a ServiceError.
Change = Callable[[Session], tuple[EventKind, JsonObject | None]]
Connection = asyncpg.Connection | PoolConnectionProxy


class ConnectionPool(Protocol):
    """What `Database` and the relay use of a pool: asyncpg's, or the fault's `PinnedPool`."""

    def acquire(
        self, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Connection]: ...

    def terminate(self) -> None: ...


class _Slot:
    """One place in `PinnedPool`: the connection it was given, if any, kept for good."""

    def __init__(self) -> None:
        self.connection: asyncpg.Connection | None = None

    def state(self) -> SlotState:
        if self.connection is None:
            return "empty"
        return "closed" if self.connection.is_closed() else "open"


class PinnedPool:
    """The `no-db-reconnect` fault's pool: a fixed set of slots, each connected on first use.

    It is asyncpg's pool where it matters here (lazy connections, the most recently
    released slot reused first, the acquire timeout covering the connect) and differs in
    what `opens_connection` decides for a slot whose connection the server closed: under
    the fault that slot is handed out as it is, so every query on it fails with
    `InterfaceError` (a 503) until the process restarts, though PostgreSQL is back.
    """

    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int, fault: Fault
    ) -> None:
        self._connect = connect
        self._fault = fault
        self._slots = [_Slot() for _ in range(size)]
        self._free: asyncio.LifoQueue[_Slot] = asyncio.LifoQueue()
        for slot in reversed(self._slots):
            self._free.put_nowait(slot)

    @contextlib.asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        async with asyncio.timeout(timeout):
            slot = await self._free.get()
            try:
                if opens_connection(self._fault, slot.state()):
                    await self._reconnect(slot)
            except BaseException:
                self._free.put_nowait(slot)
                raise
        try:
            assert slot.connection is not None
            yield slot.connection
        finally:
            self._release(slot)

    async def _reconnect(self, slot: _Slot) -> None:
        if slot.connection is not None:
            slot.connection.terminate()
            slot.connection = None
        slot.connection = await self._connect()

    def _release(self, slot: _Slot) -> None:
        connection = slot.connection
        if connection is not None and not connection.is_closed() and connection.is_in_transaction():
            # Left mid-transaction (a cancelled request): its state cannot be trusted, and
            # a closed connection is what this pool keeps for good (as the fault means).
            connection.terminate()
        self._free.put_nowait(slot)

    def terminate(self) -> None:
        for slot in self._slots:
            if slot.connection is not None:
                slot.connection.terminate()


class Database:
    def __init__(
        self,
        target: DbTarget,
        timeout: float | None,
        max_connections: int = 10,
        outbox: bool = False,
        fault: Fault = HEALTHY,
    ) -> None:
        self.target = target
        self.timeout = timeout  # None: no bound on any call (the `no-request-timeout` fault)
        self.max_connections = max_connections
        self.outbox = outbox  # True when AMQP is configured: every event gets an outbox row
        self.fault = fault
        self._pool: ConnectionPool | None = None

    def _connect_options(self) -> dict[str, Any]:
        """Where and how to connect; without a timeout asyncpg's defaults apply (60 s to
        connect, no bound on a query), as in a service that never set one.

        Every query is bounded by the request path's DB_TIMEOUT_SECONDS: a primary that
        fails goes silent (its connections neither answer nor close), and a request must
        still be answered, with a 503, well before its client gives up. Migrations, the
        only long statements, pass their own bound."""
        options: dict[str, Any] = {
            "host": self.target.host,
            "port": self.target.port,
            "user": self.target.user,
            "password": self.target.password or None,
            "database": self.target.database,
            "command_timeout": self.timeout,
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        return options

    async def open(self) -> None:
        """Create the pool; no connection is made until the first query."""
        if self.fault.keeps_dead_connections:
            self._pool = PinnedPool(self.connect, self.max_connections, self.fault)
            return
        self._pool = await asyncpg.create_pool(
            **self._connect_options(),
            min_size=0,
            max_size=self.max_connections,
            max_inactive_connection_lifetime=30,
            init=_init_connection,
        )

    async def connect(self) -> asyncpg.Connection:
        """One connection outside any pool, set up as the pool's are (for `PinnedPool`)."""
        connection: asyncpg.Connection = await asyncpg.connect(**self._connect_options())
        try:
            await _init_connection(connection)
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("Database.open() was not called")
        return self._pool

    async def migrate(self) -> list[int]:
        """Apply the missing migrations under an advisory lock; return those applied."""
        applied: list[int] = []
        bound = None if self.timeout is None else max(MIGRATION_TIMEOUT_SECONDS, self.timeout)
        async with self.pool.acquire(timeout=self.timeout) as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=bound)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                timeout=bound,
            )
            rows = await conn.fetch("SELECT version FROM schema_migrations", timeout=bound)
            done = {r["version"] for r in rows}
            for version, sql in MIGRATIONS:
                if version not in done:
                    await conn.execute(sql, timeout=bound)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        version,
                        timeout=bound,
                    )
                    applied.append(version)
        return applied

    async def ping(self, timeout: float) -> None:
        async with self.pool.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)

    # ---- reads ----

    async def get(self, session_id: str) -> Session | None:
        async with self.pool.acquire(timeout=self.timeout) as conn:
            row = await conn.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.id = $1", session_id
            )
        return None if row is None else _session(row)

    async def version_of(self, session_id: str) -> int | None:
        """The session's current version (None: no such session): what a cached copy must
        match to be served."""
        async with self.pool.acquire(timeout=self.timeout) as conn:
            version = await conn.fetchval(
                "SELECT version FROM sessions WHERE id = $1", session_id, timeout=self.timeout
            )
        return None if version is None else int(version)

    async def list_by_owner(self, query: ListQuery) -> list[Session]:
        async with self.pool.acquire(timeout=self.timeout) as conn:
            rows = await conn.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s"
                " WHERE s.owner = $1 AND ($2::uuid IS NULL OR s.id > $2::uuid)"
                " ORDER BY s.id LIMIT $3",
                query.owner,
                query.after,
                query.limit,
            )
        return [_session(row) for row in rows]

    async def events_after(self, session_id: str, after: int, limit: int) -> list[Event]:
        async with self.pool.acquire(timeout=self.timeout) as conn:
            rows = await conn.fetch(
                "SELECT session_id, seq, version, kind, state, at FROM session_events"
                " WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                session_id,
                after,
                limit,
            )
        return [_event(row) for row in rows]

    async def heads(self, session_ids: Sequence[str]) -> dict[str, int]:
        """The highest seq of each session that has events."""
        if not session_ids:
            return {}
        async with self.pool.acquire(timeout=self.timeout) as conn:
            rows = await conn.fetch(
                "SELECT session_id, max(seq) AS seq FROM session_events"
                " WHERE session_id = ANY($1::uuid[]) GROUP BY session_id",
                list(session_ids),
            )
        return {str(row["session_id"]): int(row["seq"]) for row in rows}

    # ---- writes: one transaction each, returned after COMMIT ----

    async def create(self, request: CreateRequest) -> Written:
        session_id = request.id or str(uuid.uuid4())
        async with self.pool.acquire(timeout=self.timeout) as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO sessions (id, owner, version, state) VALUES ($1, $2, 1, $3)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                session_id,
                request.owner,
                request.state,
            )
            if inserted is None:
                raise Conflict(f"session {session_id} already exists")
            event = await _append(conn, session_id, 1, "created", request.state, self.outbox)
        session = Session(session_id, request.owner, 1, request.state, event.seq)
        return Written(session, event)

    async def change(self, session_id: str, if_match: IfMatch | None, change: Change) -> Written:
        """Lock the row, check If-Match, apply `change`, append the event, COMMIT."""
        async with self.pool.acquire(timeout=self.timeout) as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.id = $1 FOR UPDATE",
                session_id,
            )
            if row is None:
                raise NotFound(f"no session {session_id}")
            current = _session(row)
            if not precondition_holds(if_match, current.version):
                raise PreconditionFailed(
                    f"If-Match does not match the current version {current.version}"
                )
            kind, state = change(current)
            version = current.version + 1
            if kind == "deleted":
                await conn.execute("DELETE FROM sessions WHERE id = $1", session_id)
            else:
                await conn.execute(
                    "UPDATE sessions SET state = $2, version = $3, updated_at = now()"
                    " WHERE id = $1",
                    session_id,
                    state,
                    version,
                )
            event = await _append(conn, session_id, version, kind, state, self.outbox)
        if kind == "deleted" or state is None:
            return Written(None, event)
        return Written(Session(session_id, current.owner, version, state, event.seq), event)

    # ---- the outbox, for the relay ----

    async def outbox_pending(self) -> int:
        async with self.pool.acquire(timeout=self.timeout) as conn:
            count = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return int(count or 0)

    async def outbox_oldest_pending_seconds(self) -> float:
        """How long the oldest unpublished event has waited (0 when none waits): under a
        steady write load there are always a few pending, so "drained" is about age, not
        count."""
        async with self.pool.acquire(timeout=self.timeout) as conn:
            age = await conn.fetchval(
                "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                " FROM outbox WHERE published_at IS NULL"
            )
        return float(age or 0.0)

    async def prune_outbox(self, older_than_seconds: float) -> int:
        """Delete rows published more than `older_than_seconds` ago; the count deleted."""
        async with self.pool.acquire(timeout=self.timeout) as conn:
            status = await conn.execute(
                "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
                older_than_seconds,
            )
        return int(status.split()[-1])


async def claim_outbox(conn: Connection, limit: int) -> list[OutboxRow]:
    """Lock up to `limit` unpublished rows in id order, skipping rows another relay holds.

    Call inside a transaction: the locks last until it ends, so concurrent relays
    (one per pod) never publish the same row at the same time.
    """
    rows = await conn.fetch(
        "SELECT id, event_id, routing_key, payload FROM outbox WHERE published_at IS NULL"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [
        OutboxRow(int(r["id"]), str(r["event_id"]), r["routing_key"], r["payload"]) for r in rows
    ]


async def mark_published(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", list(ids)
        )


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def _append(
    conn: Connection,
    session_id: str,
    version: int,
    kind: EventKind,
    state: JsonObject | None,
    outbox: bool,
) -> Event:
    row = await conn.fetchrow(
        "INSERT INTO session_events (session_id, seq, version, kind, state)"
        " SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4 FROM session_events"
        " WHERE session_id = $1"
        " RETURNING session_id, seq, version, kind, state, at",
        session_id,
        version,
        kind,
        state,
    )
    assert row is not None
    event = _event(row)
    if outbox:
        event_id = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO outbox (event_id, routing_key, payload) VALUES ($1, $2, $3)",
            event_id,
            routing_key(kind),
            outbox_payload(event, event_id),
        )
    return event


def _session(row: Any) -> Session:
    return Session(
        id=str(row["id"]),
        owner=row["owner"],
        version=row["version"],
        state=row["state"],
        seq=int(row["seq"] or 0),
    )


def _event(row: Any) -> Event:
    at: datetime = row["at"]
    return Event(
        session=str(row["session_id"]),
        seq=int(row["seq"]),
        version=row["version"],
        kind=row["kind"],
        state=row["state"],
        at=at.isoformat(),
    )
