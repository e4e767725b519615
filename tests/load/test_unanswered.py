"""Which failed requests count as left without an answer (the UNANSWERED entries)."""

from __future__ import annotations

import pytest
from harmonyflow.unanswered import UNANSWERED, is_timeout, unanswered_entry


class ConnectionTimeout(Exception):
    """Named as geventhttpclient names its connect timeout."""


class Timeout(BaseException):
    """Shaped as gevent.Timeout (a BaseException), without importing gevent here."""


@pytest.mark.parametrize(
    ("request_type", "error", "entry"),
    [
        ("POST", TimeoutError("timed out"), "POST /api/v1/sessions"),
        ("GET", TimeoutError("timed out"), "GET /api/v1/sessions"),
        ("PUT", Timeout(5), "PUT /api/v1/sessions"),
        ("DELETE", ConnectionTimeout(), "DELETE /api/v1/sessions"),
        # answered, if badly: not a hang
        ("POST", ConnectionResetError(104, "Connection reset by peer"), None),
        ("POST", ConnectionRefusedError(111, "Connection refused"), None),
        ("GET", Exception("503 Service Unavailable"), None),
        ("GET", None, None),
        # never twice, and never for the ledger's or the sockets' own entries
        (UNANSWERED, TimeoutError(), None),
        ("LEDGER", TimeoutError(), None),
        ("WSCONN", TimeoutError(), None),
    ],
)
def test_only_rest_requests_that_timed_out_are_unanswered(
    request_type: str, error: BaseException | None, entry: str | None
) -> None:
    assert unanswered_entry(request_type, "/api/v1/sessions", error) == entry


@pytest.mark.parametrize(
    ("error", "timeout"),
    [
        (TimeoutError(), True),
        (TimeoutError(), True),
        (Timeout(1), True),
        (OSError("timed out"), True),
        (ConnectionResetError(), False),
        (OSError("No route to host"), False),
        (None, False),
    ],
)
def test_a_timeout_is_told_from_a_reset_or_a_refusal(
    error: BaseException | None, timeout: bool
) -> None:
    assert is_timeout(error) is timeout
