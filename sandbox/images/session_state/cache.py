"""The Redis read-through cache of sessions: never needed for a write, never trusted over PG.

Each entry is `<seq>|<session JSON>` (or `<seq>|` for a deleted session) and is only
ever replaced by an entry of a higher seq (a Lua compare-and-set), so that a slow
reader cannot put back an older session after a writer updated it. A post-commit
update that failed (Redis down) is remembered and retried by `repair()`, so a cache
that comes back does not serve what it missed for longer than that.

    >>> decode_entry(encode_entry(3, '{"id": "x"}'))
    (3, '{"id": "x"}')
    >>> decode_entry("7|")
    (7, None)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sandbox.images.session_state.errors import REDIS_UNAVAILABLE
from sandbox.images.session_state.metrics import Metrics
from sandbox.images.session_state.model import Session
from sandbox.images.session_state.redisconn import RedisConnector

log = logging.getLogger("session_state.cache")
KEY_PREFIX = "session-state:session:"
MAX_PENDING_REPAIRS = 10_000
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  local seq = sep and tonumber(string.sub(current, 1, sep - 1))
  if seq and seq >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


def cache_key(session_id: str) -> str:
    return f"{KEY_PREFIX}{{{session_id}}}"


def encode_entry(seq: int, body: str | None) -> str:
    return f"{seq}|{body or ''}"


def decode_entry(raw: str) -> tuple[int, str | None]:
    seq, _, body = raw.partition("|")
    return int(seq), body or None


def session_json(session: Session) -> str:
    return json.dumps(session.to_json(), separators=(",", ":"))


def session_from_json(text: str) -> Session:
    data = json.loads(text)
    return Session(data["id"], data["owner"], data["version"], data["state"], data["seq"])


@dataclass(frozen=True)
class _Pending:
    seq: int
    body: str | None


class SessionCache:
    def __init__(self, redis: RedisConnector, ttl_seconds: float, metrics: Metrics) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.metrics = metrics
        self._pending: dict[str, _Pending] = {}

    async def get(self, session_id: str) -> Session | None:
        """The cached session, or None (a miss, a deleted mark, or Redis unavailable)."""
        if not self.redis.available():
            return None
        try:
            client = await self.redis.client()
            raw = await client.get(cache_key(session_id))
        except REDIS_UNAVAILABLE as error:
            self._failed("get", error)
            return None
        self.redis.succeeded()
        if raw is None:
            self.metrics.cache.labels("miss").inc()
            return None
        try:
            _, body = decode_entry(str(raw))
            session = None if body is None else session_from_json(body)
        except (ValueError, KeyError, TypeError):
            session = None
        self.metrics.cache.labels("hit" if session else "miss").inc()
        return session

    async def put(self, session: Session) -> None:
        await self._set(session.id, session.seq, session_json(session))

    async def fill(self, session: Session) -> None:
        """Read-through: cache what PostgreSQL answered, if Redis is there (nothing to repair)."""
        if self.redis.available():
            await self._try_set(session.id, session.seq, session_json(session))

    async def mark_deleted(self, session_id: str, seq: int) -> None:
        await self._set(session_id, seq, None)

    async def _set(self, session_id: str, seq: int, body: str | None) -> None:
        if not self.redis.available() or not await self._try_set(session_id, seq, body):
            self._remember(session_id, _Pending(seq, body))

    async def _try_set(self, session_id: str, seq: int, body: str | None) -> bool:
        try:
            client = await self.redis.client()
            await client.eval(SET_IF_NEWER, 1, cache_key(session_id), seq, body or "", self.ttl_ms)
        except REDIS_UNAVAILABLE as error:
            self._failed("set", error)
            return False
        self.redis.succeeded()
        return True

    def _remember(self, session_id: str, pending: _Pending) -> None:
        known = self._pending.get(session_id)
        if known is None or known.seq < pending.seq:
            if len(self._pending) >= MAX_PENDING_REPAIRS:
                self._pending.pop(next(iter(self._pending)))
            self._pending[session_id] = pending

    async def repair(self) -> int:
        """Retry the updates Redis missed; returns how many are still pending."""
        for session_id, pending in list(self._pending.items()):
            if not self.redis.available():
                break
            if not await self._try_set(session_id, pending.seq, pending.body):
                break
            if self._pending.get(session_id) == pending:
                del self._pending[session_id]
        return len(self._pending)

    def _failed(self, operation: str, error: BaseException) -> None:
        self.redis.failed()
        self.metrics.redis_errors.labels(operation).inc()
        log.warning("redis cache %s failed: %s", operation, type(error).__name__)
