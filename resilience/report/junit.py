"""JUnit XML of a game day: one test case per step, so CI dashboards show game days too.

A failed step is a `<failure>` whose message is its first finding; a step that
did not run (the day stopped before it) is an `<error>`; a skipped one `<skipped>`.

    >>> print(junit_xml({"plan": "p", "duration_s": 3, "steps": [{"name": "a", "verdict": "PASS",
    ...   "duration_s": 2.0, "findings": [], "note": ""}]}).splitlines()[1])
    <testsuite name="gameday.p" tests="1" failures="0" errors="0" skipped="0" time="3">
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr


def junit_xml(report: Mapping[str, Any]) -> str:
    steps = report["steps"]
    count = {
        verdict: sum(1 for s in steps if s["verdict"] == verdict)
        for verdict in ("FAIL", "NOT RUN", "SKIP")
    }
    suite = f"gameday.{report['plan']}"
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<testsuite name={quoteattr(suite)} tests="{len(steps)}" failures="{count["FAIL"]}" '
        f'errors="{count["NOT RUN"]}" skipped="{count["SKIP"]}" '
        f'time="{report.get("duration_s") or 0}">',
    ]
    for step in steps:
        lines.append(
            f"  <testcase classname={quoteattr(suite)} name={quoteattr(str(step['name']))} "
            f'time="{step.get("duration_s") or 0}">'
        )
        findings = [f"{f['kind']}: {f['text']}" for f in step.get("findings") or []]
        body = escape("\n".join(findings))
        if step["verdict"] == "FAIL":
            message = findings[0] if findings else "the step failed"
            lines.append(f"    <failure message={quoteattr(message[:300])}>{body}</failure>")
        elif step["verdict"] == "NOT RUN":
            lines.append(
                f"    <error message={quoteattr(str(step.get('note') or 'not run')[:300])}/>"
            )
        elif step["verdict"] == "SKIP":
            lines.append(f"    <skipped message={quoteattr(str(step.get('note') or 'skipped'))}/>")
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"
