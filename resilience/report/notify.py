"""Notifications after a game day: Slack or a generic webhook, off unless configured.

Nothing is sent unless an address is configured, either with `--notify URL` or
the environment (`HARMONYFLOW_NOTIFY_SLACK_WEBHOOK`, `HARMONYFLOW_NOTIFY_WEBHOOK`,
which a scheduled game day reads from a Secret). The message is a summary (plan,
verdict, score, failed steps, where the report is), never the report itself. A
notification that fails is logged and does not change the game day's verdict.

    >>> slack_payload({"plan": "standard", "verdict": "FAIL", "score": 72, "trend": None,
    ...                "steps": [{"name": "az-drain", "verdict": "FAIL"}]}, "reports/x")["text"]
    'Game day standard: FAIL, score 72/100; failed: az-drain. Report: reports/x/index.html'
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from resilience.errors import InvalidInputError

SLACK_ENV = "HARMONYFLOW_NOTIFY_SLACK_WEBHOOK"
WEBHOOK_ENV = "HARMONYFLOW_NOTIFY_WEBHOOK"
TIMEOUT = 10.0
Kind = Literal["slack", "webhook"]


@dataclass(frozen=True)
class Notifier:
    kind: Kind
    url: str

    def __repr__(self) -> str:  # the URL is a credential (Slack's is)
        return f"Notifier({self.kind}, {urlsplit(self.url).hostname})"


def notifiers(env: Mapping[str, str], extra: tuple[str, ...] = ()) -> list[Notifier]:
    """The configured notifiers: none by default. `extra` are `--notify` values,
    `slack:URL` or `webhook:URL` (a bare URL is a generic webhook)."""
    found = []
    if env.get(SLACK_ENV):
        found.append(Notifier("slack", env[SLACK_ENV]))
    if env.get(WEBHOOK_ENV):
        found.append(Notifier("webhook", env[WEBHOOK_ENV]))
    for value in extra:
        kind, sep, url = value.partition(":")
        if sep and kind in ("slack", "webhook") and not url.startswith("//"):
            found.append(Notifier(kind, url))  # type: ignore[arg-type]
        else:
            found.append(Notifier("webhook", value))
    for notifier in found:
        if urlsplit(notifier.url).scheme not in ("http", "https"):
            raise InvalidInputError(
                f"notification address for {notifier.kind}: expected an http(s) URL"
            )
    return found


def summary(report: Mapping[str, Any], report_dir: str) -> str:
    failed = [
        s["name"] for s in report.get("steps") or [] if s.get("verdict") in ("FAIL", "NOT RUN")
    ]
    trend = report.get("trend") or {}
    delta = trend.get("score_delta")
    text = f"Game day {report['plan']}: {report['verdict']}, score {report.get('score')}/100"
    if delta is not None:
        text += f" ({'+' if delta >= 0 else ''}{delta} since the last run)"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    return text + f". Report: {report_dir}/index.html"


def slack_payload(report: Mapping[str, Any], report_dir: str) -> dict[str, Any]:
    return {"text": summary(report, report_dir)}


def webhook_payload(report: Mapping[str, Any], report_dir: str) -> dict[str, Any]:
    return {
        "event": "harmonyflow.gameday.finished",
        "summary": summary(report, report_dir),
        "run_id": report.get("run_id"),
        "plan": report.get("plan"),
        "verdict": report.get("verdict"),
        "score": report.get("score"),
        "steps": [{"name": s["name"], "verdict": s["verdict"]} for s in report.get("steps") or []],
        "report": f"{report_dir}/index.html",
    }


def send(notifier: Notifier, report: Mapping[str, Any], report_dir: str) -> str | None:
    """POST the summary; returns None when delivered, else why not (one line)."""
    payload = (slack_payload if notifier.kind == "slack" else webhook_payload)(report, report_dir)
    request = urllib.request.Request(
        notifier.url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "harmonyflow-gameday"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            if 200 <= answer.status < 300:
                return None
            return f"{notifier.kind} notification answered {answer.status}"
    except (urllib.error.URLError, OSError) as error:
        return f"{notifier.kind} notification failed: {getattr(error, 'reason', error)}"


def notify_all(
    report: Mapping[str, Any], report_dir: str, extra: tuple[str, ...] = ()
) -> list[str]:
    """Send to every configured notifier; the problems, one line each."""
    problems = []
    for notifier in notifiers(os.environ, extra):
        problem = send(notifier, report, report_dir)
        if problem:
            problems.append(problem)
    return problems
