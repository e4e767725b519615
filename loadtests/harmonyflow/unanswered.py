"""Requests left without an answer, as their own Locust entries (`UNANSWERED`).

A dependency that fails by going silent (a failed database host, a partitioned cache)
tests whether the service bounds its calls: a service that does answers in time, with
a 503 if it must; one that does not leaves the request hanging until its client gives
up. Both count as a failed request in Locust's stats; only the second is a timeout.
Each REST request that ended in a timeout of the client (HF_TIMEOUT) is therefore
reported once more, as `UNANSWERED <method> <route>`, so that an SLO can require none
(`types: [UNANSWERED]`) without counting the refusals a fault may bring.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

UNANSWERED = "UNANSWERED"
REST_TYPES = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})


class NoAnswer(Exception):
    """The client's timeout passed with no HTTP answer (the message is constant)."""


def is_timeout(error: BaseException | None) -> bool:
    """A client-side timeout, as FastHttpUser and urllib raise them (not a reset or a refusal).

    >>> is_timeout(TimeoutError()), is_timeout(ConnectionResetError()), is_timeout(None)
    (True, False, False)
    """
    if error is None:
        return False
    if isinstance(error, (TimeoutError, socket.timeout)):
        return True
    return "timeout" in type(error).__name__.lower() or "timed out" in str(error).lower()


def unanswered_entry(request_type: str, name: str, error: BaseException | None) -> str | None:
    """The `UNANSWERED` entry's name for a request that timed out, else None.

    >>> unanswered_entry("POST", "/api/v1/sessions", TimeoutError("timed out"))
    'POST /api/v1/sessions'
    >>> unanswered_entry("UNANSWERED", "POST /x", TimeoutError()) is None
    True
    """
    if request_type in REST_TYPES and is_timeout(error):
        return f"{request_type} {name}"
    return None


def listener(request_event: Any) -> Callable[..., None]:
    """The `events.request` listener that fires the UNANSWERED entries on `request_event`
    (kept free of Locust imports, so that the pure parts test without gevent)."""

    def on_request(
        request_type: str,
        name: str,
        response_time: float | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        entry = unanswered_entry(request_type, name, exception)
        if entry is not None:
            request_event.fire(
                request_type=UNANSWERED,
                name=entry,
                response_time=response_time,
                response_length=0,
                exception=NoAnswer("no answer within the client's timeout"),
                context={},
            )

    return on_request
