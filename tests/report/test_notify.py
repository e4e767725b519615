"""Notifications: off by default; Slack and webhook payloads posted to a loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from resilience.errors import InvalidInputError
from resilience.report import notify

REPORT: dict[str, Any] = {
    "run_id": "r1",
    "plan": "standard",
    "verdict": "FAIL",
    "score": 72,
    "trend": {"score_delta": -8},
    "steps": [{"name": "pod-kill", "verdict": "PASS"}, {"name": "az-drain", "verdict": "FAIL"}],
}


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]] = []  # noqa: RUF012
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, json.loads(body)))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_nothing_is_configured_by_default() -> None:
    assert notify.notifiers({}) == []


def test_slack_and_webhook_are_posted(receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.SLACK_ENV, f"{receiver}/slack")
    monkeypatch.delenv(notify.WEBHOOK_ENV, raising=False)
    problems = notify.notify_all(REPORT, "reports/r1", (f"webhook:{receiver}/hook",))
    assert problems == []
    assert [path for path, _ in Receiver.received] == ["/slack", "/hook"]
    slack, hook = (body for _, body in Receiver.received)
    assert slack == {
        "text": "Game day standard: FAIL, score 72/100 (-8 since the last run); failed: az-drain."
        " Report: reports/r1/index.html"
    }
    assert hook["event"] == "harmonyflow.gameday.finished" and hook["score"] == 72
    assert hook["steps"][1] == {"name": "az-drain", "verdict": "FAIL"}


def test_a_failing_receiver_is_reported_not_raised(receiver: str) -> None:
    Receiver.status = 500
    problems = notify.notify_all({**REPORT}, "r", (f"{receiver}/hook",))
    assert len(problems) == 1 and "webhook notification" in problems[0]


def test_an_unreachable_receiver_is_reported(receiver: str) -> None:
    closed = "http://127.0.0.1:9/hook"  # discard port: nothing listens
    assert notify.send(notify.Notifier("webhook", closed), REPORT, "r") is not None


def test_a_bad_address_is_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="expected an http"):
        notify.notifiers({}, ("slack:ftp://x",))


def test_the_notifier_does_not_show_its_url() -> None:
    assert "T000/B000" not in repr(notify.Notifier("slack", "https://hooks.example/T000/B000"))
