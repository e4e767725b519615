"""The load certificate: verdict per SLO, the figures behind them, the environment.

Written as JSON (for pipelines) and as one self-contained HTML file (inline CSS and
an inline SVG chart; no script, no external asset), so it can be attached to a
release as it is. Building it is a pure function of the run's data.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from resilience.load.profile import Profile
from resilience.load.requests import Second, error_counts, per_second
from resilience.load.runner import LoadResult
from resilience.slo.objectives import EndpointStats, Verdict, WindowStats, percentile

FORMAT = "harmonyflow-load-certificate/v1"
PERCENTILES = (50.0, 95.0, 99.0)


def window_figures(stats: WindowStats) -> dict[str, Any]:
    """Totals and percentiles of successful requests, overall and per entry."""
    endpoints = [
        {"type": kind, "name": name, **_figures(entry, stats.seconds)}
        for (kind, name), entry in sorted(stats.endpoints.items())
    ]
    total = EndpointStats(
        ok=sum(e.ok for e in stats.endpoints.values()),
        failed=sum(e.failed for e in stats.endpoints.values()),
    )
    return {
        "seconds": round(stats.seconds, 3),
        **_figures(total, stats.seconds),
        "endpoints": endpoints,
    }


def _figures(entry: EndpointStats, seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "requests": entry.requests,
        "failures": entry.failed,
        "error_rate": round(entry.failed / entry.requests, 6) if entry.requests else None,
        "ok_per_second": round(entry.ok / seconds, 3) if seconds > 0 else None,
    }
    for q in PERCENTILES:
        figures[f"p{q:g}_ms"] = percentile(entry.latency_ms, q)
    return figures


def build_certificate(
    profile: Profile,
    target: Mapping[str, Any],
    result: LoadResult,
    verdicts: Sequence[Verdict],
    environment: Mapping[str, Any],
    problems: Sequence[str] = (),
    capacity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The certificate as plain JSON data. `problems` are run-level failures (e.g. no load
    was recorded, or a capacity figure fell short) that fail the certificate besides the
    SLO verdicts; `capacity` is the figures certified (`capacity.certified_figures`)."""
    windows = result.windows()
    passed = all(v.passed for v in verdicts) and not problems
    return {
        "format": FORMAT,
        "verdict": "PASS" if passed else "FAIL",
        "issued_at": _iso_ms(result.ended),
        "profile": {
            "name": profile.name,
            "file": str(profile.path),
            "description": profile.description,
            "load": _plain(asdict(profile.load)),
        },
        "target": dict(target),
        "capacity": None if capacity is None else _plain(capacity),
        "slos": [
            {
                "name": v.slo.name,
                "kind": v.slo.kind.value,
                "window": v.slo.window.value,
                "requests": v.slo.requests.describe(),
                "limit": v.slo.limit,
                "observed": v.observed,
                "status": v.status.value,
                "line": v.line(),
            }
            for v in verdicts
        ],
        "problems": list(problems),
        "windows": {w.value: window_figures(s) for w, s in windows.items()},
        "fault_marks": [
            {"fault": m.name, "start": _iso_ms(m.start), "end": _iso_ms(m.end) if m.end else None}
            for m in result.marks
        ],
        "top_errors": [
            {"entry": entry, "message": message, "count": count}
            for entry, message, count in error_counts(result.timeline)
        ],
        "run": {
            "started": _iso_ms(result.started),
            "ended": _iso_ms(result.ended),
            "load_span": [_iso_ms(t) for t in result.span],
            "locust_exit_code": result.returncode,
            "stopped_by_runner": result.stopped_by_runner,
            "out_dir": str(result.plan.out_dir),
            "artifacts": {
                "timeline": "timeline.jsonl",
                "chaos_marks": "chaos.jsonl",
                "locust_log": "locust.log",
                "locust_csv": "locust_stats.csv",
                "locust_html": "locust.html",
            },
        },
        "environment": dict(environment),
    }


def write_certificate(
    out_dir: Path,
    certificate: Mapping[str, Any],
    seconds: Sequence[Second],
    faults: Sequence[tuple[float, float]] = (),
) -> tuple[Path, Path]:
    """`certificate.json` and `certificate.html` in `out_dir`; `faults` are the fault
    windows (Unix start, end) the chart shades."""
    json_path = out_dir / "certificate.json"
    html_path = out_dir / "certificate.html"
    json_path.write_text(json.dumps(certificate, indent=2, default=str) + "\n", encoding="utf-8")
    html_path.write_text(render_html(certificate, seconds, faults), encoding="utf-8")
    return json_path, html_path


def chart_seconds(result: LoadResult) -> list[Second]:
    """The per-second series the HTML chart plots (ledger checks are not traffic)."""
    return per_second(result.timeline, exclude_types=frozenset({"LEDGER"}))


def fault_spans(result: LoadResult) -> list[tuple[float, float]]:
    """The fault windows to shade; a fault still open at the end runs to the end."""
    end = result.span[1]
    return [(m.start, m.end if m.end is not None else end) for m in result.marks]


# ---- HTML ----

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.PASS{color:#0a6b2d;font-weight:bold}
.FAIL{color:#b00020;font-weight:bold}.SKIP{color:#777}.num{text-align:right}
pre{background:#f6f6f6;padding:.6em;overflow:auto}svg{border:1px solid #ddd}
"""


def render_html(
    certificate: Mapping[str, Any],
    seconds: Sequence[Second],
    faults: Sequence[tuple[float, float]] = (),
) -> str:
    e = html.escape
    verdict = str(certificate["verdict"])
    profile = certificate["profile"]
    target = certificate["target"]
    slos = _table(
        ["status", "SLO", "kind", "window", "requests", "verdict"],
        [
            [
                (s["status"], s["status"]),
                s["name"],
                s["kind"],
                s["window"],
                s["requests"],
                s["line"],
            ]
            for s in certificate["slos"]
        ],
    )
    problems = "".join(f"<li class='FAIL'>{e(p)}</li>" for p in certificate["problems"])
    windows = "".join(_window_table(n, f) for n, f in certificate["windows"].items())
    errors = _table(
        ["entry", "message", "count"],
        [[x["entry"], x["message"], x["count"]] for x in certificate["top_errors"]],
    )
    marks = _table(
        ["fault", "start", "end"],
        [[m["fault"], m["start"], m["end"]] for m in certificate["fault_marks"]],
    )
    run = {"load": profile["load"], "run": certificate["run"]}
    capacity = _capacity_table(certificate.get("capacity"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Load certificate {e(profile["name"])}: {e(verdict)}</title><style>{_CSS}</style></head>
<body>
<h1>Load certificate <span class="{e(verdict)}">{e(verdict)}</span>: {e(profile["name"])}</h1>
<p>{e(profile["description"])}</p>
<p>Target {e(str(target.get("host")))} ({e(str(target.get("source")))}),
issued {e(certificate["issued_at"])}.</p>
{f"<ul>{problems}</ul>" if problems else ""}
{capacity}
<h2>SLO verdicts</h2>
{slos}
<h2>Timeline</h2>
{_chart(seconds, faults)}
<h2>Fault marks</h2>
{marks}
<h2>Figures per window (latency: successful requests only)</h2>
{windows}
<h2>Most frequent failures</h2>
{errors}
<h2>Environment</h2>
<pre>{e(json.dumps(certificate["environment"], indent=2, default=str))}</pre>
<h2>Run</h2>
<pre>{e(json.dumps(run, indent=2, default=str))}</pre>
</body></html>
"""


Cell = Any  # a value, or (value, css class)


def _table(head: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """An HTML table; numbers right-aligned; `(value, class)` cells get a class."""
    if not rows:
        return "<p>none</p>"
    e = html.escape
    cells = []
    for row in rows:
        line = []
        for cell in row:
            value, css = cell if isinstance(cell, tuple) else (cell, "")
            css = css or ("num" if isinstance(value, int | float) else "")
            line.append(f"<td class='{e(css)}'>{e(_fmt(value))}</td>")
        cells.append("<tr>" + "".join(line) + "</tr>")
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(cells)}</table>"


def _capacity_table(capacity: Mapping[str, Any] | None) -> str:
    """The certified figures: target beside what the hold achieved."""
    if not capacity:
        return ""
    target, achieved = capacity["target"], capacity["achieved"]
    rows = [[key, target[key], achieved[key]] for key in ("peak_rps", "sockets", "write_share")]
    return "<h2>Capacity certified</h2>" + _table(["figure", "target", "achieved"], rows)


def _window_table(name: str, figures: Mapping[str, Any]) -> str:
    keys = ("requests", "failures", "ok_per_second", "p50_ms", "p95_ms", "p99_ms")
    table = _table(
        ["entry", "requests", "failures", "ok/s", "p50 ms", "p95 ms", "p99 ms"],
        [[f"{x['type']} {x['name']}", *(x[k] for k in keys)] for x in figures["endpoints"]],
    )
    title = (
        f"{name}: {figures['seconds']} s, {figures['requests']} requests, "
        f"{figures['failures']} failures"
    )
    return f"<h3>{html.escape(title)}</h3>{table}"


def _chart(seconds: Sequence[Second], faults: Sequence[tuple[float, float]]) -> str:
    """Requests/s (ok green, failed red) and p95 (blue line), fault windows shaded."""
    if not seconds:
        return "<p>no requests recorded</p>"
    width, height, pad = 900, 220, 30
    t0, t1 = seconds[0].t, seconds[-1].t + 1
    span = max(1, t1 - t0)
    top_rate = max(1, *(s.ok + s.failed for s in seconds))
    top_p95 = max([s.p95_ms or 0.0 for s in seconds] + [1.0])

    def x(t: float) -> float:
        return pad + (t - t0) / span * (width - 2 * pad)

    def y(value: float, top: float) -> float:
        return height - pad - value / top * (height - 2 * pad)

    bar = (width - 2 * pad) / span
    parts = []
    for start, end in faults:
        parts.append(
            f"<rect x='{x(start):.1f}' y='{pad}' width='{max(1.0, x(end) - x(start)):.1f}' "
            f"height='{height - 2 * pad}' fill='#fde2b8'/>"
        )
    for s in seconds:
        ok_top = y(s.ok, top_rate)
        parts.append(
            f"<rect x='{x(s.t):.1f}' y='{ok_top:.1f}' width='{max(1.0, bar - 1):.1f}' "
            f"height='{height - pad - ok_top:.1f}' fill='#7cc48f'/>"
        )
        if s.failed:
            fail_top = y(s.ok + s.failed, top_rate)
            parts.append(
                f"<rect x='{x(s.t):.1f}' y='{fail_top:.1f}' width='{max(1.0, bar - 1):.1f}' "
                f"height='{ok_top - fail_top:.1f}' fill='#e06666'/>"
            )
    points = " ".join(
        f"{x(s.t + 0.5):.1f},{y(s.p95_ms, top_p95):.1f}" for s in seconds if s.p95_ms is not None
    )
    parts.append(f"<polyline points='{points}' fill='none' stroke='#1f5fbf' stroke-width='1.5'/>")
    legend = (
        f"<text x='{pad}' y='18' font-size='12'>requests/s (max {top_rate}; green ok, red failed), "
        f"blue: p95 of successes (max {top_p95:g} ms), shaded: fault windows; {span} s</text>"
    )
    svg = f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"
    return f"{svg}{legend}{''.join(parts)}</svg>"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _iso_ms(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC).isoformat(timespec="milliseconds")


def _plain(value: Any) -> Any:
    """Mappings and tuples as JSON has them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


__all__ = ["build_certificate", "chart_seconds", "fault_spans", "render_html", "write_certificate"]
