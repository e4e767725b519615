"""The REST user's ledger of acknowledged writes, and the verdict on every read.

Lost or stale data is detected, not assumed: each write the service acknowledged
(2xx) is recorded with its version and state, and each later read is compared with
it. A write that got no answer (timeout, connection reset, 5xx) may or may not have
landed, so it makes the session *uncertain*: a newer version is then fine, an older
one never is.

    >>> ledger = Ledger()
    >>> ledger.acknowledged("s1", 3, {"n": 3})
    >>> judge_read(ledger.expected("s1"), 200, 2, {"n": 2})
    Finding(name='stale read', detail='read an older version than the last acknowledged write')
    >>> judge_read(ledger.expected("s1"), 200, 3, {"n": 3}) is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

JsonObject = dict[str, Any]

STALE_READ = "stale read"
LOST_WRITE = "lost write"
LOST_SESSION = "lost session"
RESURRECTED = "deleted session readable"


@dataclass(frozen=True)
class Expected:
    """What a read of one session must show, from this user's own writes."""

    version: int
    state: JsonObject
    deleted: bool = False
    uncertain: bool = False  # a write after `version` got no answer: it may have landed


@dataclass(frozen=True)
class Finding:
    """A consistency failure; `name` is the Locust entry it is reported under.

    `detail` is constant text (no ids, no numbers): Locust keys its error table by
    the message, and unique messages would blow it up.
    """

    name: str
    detail: str


def judge_read(
    expected: Expected | None, status: int, version: int | None, state: JsonObject | None
) -> Finding | None:
    """The verdict on one read (HTTP `status`; `version`/`state` from a 200 body)."""
    if expected is None:
        return None
    if status == 404:
        if expected.deleted or expected.uncertain:
            return None
        return Finding(LOST_SESSION, "an acknowledged session is gone (404)")
    if status != 200 or version is None:
        return None  # the request failed: Locust counts it; nothing to judge
    if expected.deleted:
        return None if expected.uncertain else Finding(RESURRECTED, "read a deleted session")
    if version < expected.version:
        return Finding(STALE_READ, "read an older version than the last acknowledged write")
    if version == expected.version and state != expected.state and not expected.uncertain:
        return Finding(LOST_WRITE, "the acknowledged version holds other data")
    return None


class Ledger:
    """Per user: session id -> what its reads must show. Only this user writes its sessions."""

    def __init__(self) -> None:
        self._expected: dict[str, Expected] = {}

    def acknowledged(self, session: str, version: int, state: JsonObject) -> None:
        self._expected[session] = Expected(version, state)

    def unanswered(self, session: str) -> None:
        """A write to `session` got no clear answer; it may or may not have happened."""
        known = self._expected.get(session)
        if known is not None:
            self._expected[session] = replace(known, uncertain=True)

    def deleted(self, session: str) -> None:
        known = self._expected.get(session)
        version = known.version if known else 0
        self._expected[session] = Expected(version, {}, deleted=True)

    def observed(self, session: str, version: int, state: JsonObject) -> None:
        """A read settled an uncertain session: what it showed is the new baseline."""
        known = self._expected.get(session)
        if known is not None and known.uncertain and version >= known.version:
            self._expected[session] = Expected(version, state)

    def expected(self, session: str) -> Expected | None:
        return self._expected.get(session)

    def forget(self, session: str) -> None:
        self._expected.pop(session, None)
