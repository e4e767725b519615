"""The REST client layer: the session life cycle on a FastHttpSession, checked against
the ledger. FastHttpSession times and reports each HTTP request itself; this layer
adds the semantic checks (`catch_response`) and reports each consistency finding as
its own Locust entry of type `LEDGER` (e.g. `LEDGER stale read`), so lost or stale
data shows in the stats, the CSV and the timeline by name.

Request names group by route, not by id: `GET /api/v1/sessions/[id]`.
"""

from __future__ import annotations

import time
from typing import Any

from locust.contrib.fasthttp import FastHttpSession, ResponseContextManager
from locust.event import EventHook

from .ledger import Finding, JsonObject, Ledger, judge_read

BASE = "/api/v1/sessions"
ITEM = BASE + "/[id]"
LEDGER = "LEDGER"
VERIFIED = "read verified"


class ConsistencyError(Exception):
    """A read contradicted an acknowledged write (the message is constant per kind)."""


class SessionApi:
    """Create, replace, read and delete sessions of one owner; every write goes in the ledger."""

    def __init__(
        self, http: FastHttpSession, request_event: EventHook, owner: str, ledger: Ledger
    ) -> None:
        self.http = http
        self.request_event = request_event
        self.owner = owner
        self.ledger = ledger
        self._counter = 0

    def create(self) -> JsonObject | None:
        """POST a session; its body (id, version, seq) when acknowledged."""
        state = self._next_state()
        body = {"owner": self.owner, "state": state}
        with self.http.post(BASE, json=body, name=BASE, catch_response=True) as response:
            created = _json(response) if response.status_code == 201 else None
            if created is None:
                _fail_unless_reported(response, "create answered without a session")
                return None
            if not _is_session(created) or created["state"] != state:
                response.failure("create answered with another session")
                return None
            self.ledger.acknowledged(created["id"], created["version"], state)
            return dict(created)

    def replace(self, session: str) -> int | None:
        """PUT a new state with If-Match of the last acknowledged version; the new version."""
        expected = self.ledger.expected(session)
        if expected is None or expected.uncertain:
            self.read(session)  # settle what an unanswered write left behind
            expected = self.ledger.expected(session)
        if expected is None or expected.deleted or expected.uncertain:
            return None
        state = self._next_state()
        headers = {"If-Match": f'"{expected.version}"'}
        with self.http.put(
            f"{BASE}/{session}", json={"state": state}, headers=headers, name=ITEM,
            catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code == 404:
                response.success()  # the ledger says whether that is a loss
                self._report(judge_read(expected, 404, None, None))
                self.ledger.deleted(session)  # one finding per loss, not one per retry
                return None
            replaced = _json(response) if response.status_code == 200 else None
            if replaced is None or not _is_session(replaced):
                self.ledger.unanswered(session)
                _fail_unless_reported(response, "replace answered without a session")
                return None
            self.ledger.acknowledged(session, replaced["version"], state)
            return int(replaced["version"])

    def read(self, session: str) -> JsonObject | None:
        """GET a session and judge it against the ledger."""
        expected = self.ledger.expected(session)
        with self.http.get(f"{BASE}/{session}", name=ITEM, catch_response=True) as response:
            status = response.status_code
            body = _json(response) if status == 200 else None
            if status == 200 and (body is None or not _is_session(body)):
                response.failure("read answered without a session")
                return None
            if status not in (200, 404):
                return None  # Locust reports the HTTP failure itself
            response.success()  # a 404 is judged by the ledger, not by its status
            version = int(body["version"]) if body else None
            state = body["state"] if body else None
            finding = judge_read(expected, status, version, state)
            if expected is not None:
                self._report(finding)
            if body is not None and finding is None:
                self.ledger.observed(session, int(body["version"]), body["state"])
            elif body is None:
                self.ledger.deleted(session)  # gone: judged once, then no longer expected
            return body

    def delete(self, session: str) -> bool:
        """DELETE with If-Match; True when acknowledged (then a read must find nothing)."""
        expected = self.ledger.expected(session)
        headers = (
            {"If-Match": f'"{expected.version}"'} if expected and not expected.uncertain else {}
        )
        with self.http.delete(
            f"{BASE}/{session}", headers=headers, name=ITEM, catch_response=True
        ) as response:
            if response.status_code != 204:
                self.ledger.unanswered(session)
                _fail_unless_reported(response, "delete answered without 204")
                return False
        self.ledger.deleted(session)
        return True

    def _report(self, finding: Finding | None) -> None:
        """A consistency verdict as its own Locust entry: a failure, or one more verified read."""
        self.request_event.fire(  # type: ignore[no-untyped-call]
            request_type=LEDGER,
            name=finding.name if finding else VERIFIED,
            response_time=None,
            response_length=0,
            exception=ConsistencyError(finding.detail) if finding else None,
            context={},
            start_time=time.time(),
        )

    def _next_state(self) -> JsonObject:
        self._counter += 1
        return {"n": self._counter, "owner": self.owner, "at": round(time.time(), 3)}


def _json(response: ResponseContextManager) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _is_session(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("id"), str)
        and isinstance(body.get("version"), int)
        and isinstance(body.get("seq"), int)
        and isinstance(body.get("state"), dict)
    )


def _fail_unless_reported(response: ResponseContextManager, message: str) -> None:
    """A 2xx with a wrong body is our failure to name; >= 400 and errors Locust names."""
    if 200 <= response.status_code < 300:
        response.failure(message)  # type: ignore[no-untyped-call]
