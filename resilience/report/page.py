"""The report page: one self-contained HTML file a person understands at a glance.

Inline CSS and SVG, and a four-line script that only counts the charts it sees
rendered (the headless-browser test reads it); a Content-Security-Policy forbids
every fetch, so the page provably needs no network. Order: the verdict and score,
the charts, then per step the verdict, time to recovery, errors per window and
findings, then the trend, the formula, and the files beside it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.45em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .55em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.num{text-align:right}
.PASS{color:#0a6b2d;font-weight:bold}.FAIL,.INTERRUPTED,.NOT.RUN{color:#b00020;font-weight:bold}
.SKIP{color:#777}.score{font-size:2.2em;font-weight:bold}.muted{color:#666}
.banner{padding:.6em 1em;border-radius:4px;background:#fdecea;border:1px solid #f5c2c0}
code{background:#f4f4f4;padding:0 .25em}ul.f li{margin:.15em 0}
svg.chart{max-width:100%;height:auto}
"""
_SCRIPT = """
document.addEventListener('DOMContentLoaded',function(){
 var n=0;document.querySelectorAll('svg.chart').forEach(function(s){
  var r=s.getBoundingClientRect();
  if(r.width>0&&r.height>0&&s.querySelectorAll('path').length>0)n++;});
 document.body.setAttribute('data-charts-rendered',String(n));});
"""


def render_page(report: Mapping[str, Any], chart_svg: str) -> str:
    e = html.escape
    verdict = str(report["verdict"])
    target = report.get("target") or {}
    stopped = report.get("stopped_at") or ""
    banner = ""
    if report.get("interrupted") or stopped:
        banner = (
            f"<p class='banner'>The game day stopped early: {e(stopped or 'interrupted')}. "
            "Steps after it did not run; this is a partial report.</p>"
        )
    problems = "".join(f"<li>{e(str(p))}</li>" for p in report.get("problems") or [])
    recovered = "".join(f"<li>{e(str(p))}</li>" for p in report.get("recovered") or [])
    score = report.get("score")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>Game day {e(str(report["plan"]))}: {e(verdict)}</title><style>{_CSS}</style>
<script>{_SCRIPT}</script></head>
<body>
<h1>Game day <code>{e(str(report["plan"]))}</code>: <span class="{e(verdict)}">{
        e(verdict)
    }</span></h1>
<p class="muted">Run {e(str(report["run_id"]))}, {e(str(report.get("started_at")))} to
{e(str(report.get("ended_at")))} ({report.get("duration_s")} s), against
{e(str(target.get("context")))} ({e(str(target.get("server")))}), namespace
{e(str(target.get("namespace")))}. {e(str(report.get("description") or ""))}</p>
{banner}
<p>Resilience score <span class="score">{e("n/a" if score is None else str(score))}</span>/100
{_trend_line(report.get("trend"))}</p>
{f"<h2>Problems of the run</h2><ul>{problems}</ul>" if problems else ""}
{f"<h2>Recovered after the run</h2><ul>{recovered}</ul>" if recovered else ""}
<h2>Timeline</h2>
<p class="muted">All charts share one time axis. Light bands: the steps (each an experiment, from
its start to the end of its rollbacks); darker bands: the fault actions inside them; violet
bands: network faults, from AllInjected until their Chaos Mesh object was gone.</p>
{chart_svg}
<h2>Steps</h2>
{_steps_table(report["steps"])}
{_alerts_note(report.get("alerts") or {})}
{"".join(_step_section(step) for step in report["steps"])}
<h2>The whole day</h2>
{
        _table(
            ["seconds", "requests", "failures", "error ratio", "lost or stale writes"],
            [
                [
                    report["day"]["seconds"],
                    report["day"]["requests"],
                    report["day"]["failures"],
                    report["day"]["error_ratio"],
                    report["day"]["lost_or_stale_writes"],
                ]
            ],
        )
    }
{_trend_section(report.get("trend"))}
<h2>How the score is computed</h2>
<p>{e(str(report["score_formula"]))}. Error budget B = {report.get("error_budget")} (the load
profile <code>{e(str(report.get("load_profile")))}</code>'s fault-window budget).</p>
{_components(report["steps"])}
<h2>Files beside this page</h2>
<p class="muted">report.json (this page's numbers), junit.xml, the chaos journals, the Locust
CSVs and timeline (<code>load/</code>), the watch timeline (<code>observe.jsonl</code>).</p>
<ul class="f">{"".join(f"<li><code>{e(a)}</code></li>" for a in report.get("artifacts") or [])}</ul>
</body></html>
"""


def _steps_table(steps: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for s in steps:
        fault = (s.get("errors") or {}).get("fault") or {}
        rows.append(
            [
                s["index"],
                s["name"],
                (s["verdict"], s["verdict"].replace(" ", ".")),
                s["status"],
                s.get("duration_s"),
                s.get("time_to_recovery_s"),
                s.get("recovery_budget_s"),
                _ratio(fault.get("error_ratio")),
                len(s.get("findings") or []),
            ]
        )
    return _table(
        [
            "#",
            "step",
            "verdict",
            "experiment",
            "seconds",
            "time to recovery s",
            "budget s",
            "fault error rate",
            "findings",
        ],
        rows,
    )


def _step_section(step: Mapping[str, Any]) -> str:
    e = html.escape
    windows = step.get("errors") or {}
    errors = (
        _table(
            ["window", "seconds", "requests", "failures", "error rate"],
            [
                [name, w["seconds"], w["requests"], w["failures"], _ratio(w["error_ratio"])]
                for name, w in windows.items()
            ],
        )
        if windows
        else "<p class='muted'>no load windows (the step did not run)</p>"
    )
    findings = "".join(
        f"<li><b>{e(f['kind'])}</b>: {e(f['text'])}</li>" for f in step.get("findings") or []
    )
    figures = step.get("experiment_figures") or {}
    measured = ", ".join(f"{e(k)} = {v:g}" for k, v in figures.items())
    slos = "".join(f"<li class='muted'>{e(s['line'])}</li>" for s in step.get("slos") or [])
    variables = " ".join(f"{k}={v}" for k, v in (step.get("variables") or {}).items())
    css = e(step["verdict"].replace(" ", "."))
    note = e(step.get("note") or "")
    by_experiment = f"; measured by the experiment: {measured}" if measured else ""
    per_fault = ", ".join(
        f"{e(r['fault'])} {_seconds(r['seconds'])}" for r in step.get("recoveries") or []
    )
    per_fault = f": {per_fault}" if per_fault else ""
    details = (
        f"<details><summary>load SLOs in this step's windows</summary><ul>{slos}</ul></details>"
        if slos
        else ""
    )
    return f"""<h3>{step["index"]}. {e(step["name"])} <span class="{css}">
{e(step["verdict"])}</span></h3>
<p class="muted">experiment <code>{e(step["experiment"])}</code> {e(variables)}; {note}</p>
<p>Time to recovery: <b>{_seconds(step.get("time_to_recovery_s"))}</b> (budget
{step.get("recovery_budget_s")} s; {_recovery_basis(step, per_fault)}){by_experiment}.</p>
{_client_impact(step.get("client_impact"))}
{_network_faults(step.get("network_faults") or [])}
{_fis_actions(step.get("fis_actions") or [])}
{errors}
{_alerts_table(step.get("alerts") or {})}
{f"<ul class='f'>{findings}</ul>" if findings else "<p class='muted'>no findings</p>"}
{details}
"""


def _network_faults(faults: Sequence[Mapping[str, Any]]) -> str:
    """What the load saw during each network fault, against the step's baseline."""
    if not faults:
        return ""
    items = "".join(f"<li>{html.escape(str(f['summary']))}</li>" for f in faults)
    return (
        "<p>Network faults (each from AllInjected until its object was gone), what the load "
        "saw against the step's baseline: p50/p95 of successful REST requests, errors:</p>"
        f"<ul class='f net'>{items}</ul>"
    )


def _fis_actions(actions: Sequence[Mapping[str, Any]]) -> str:
    """Each AWS FIS action the step ran: when, from the step's start, for how long."""
    if not actions:
        return ""
    e = html.escape
    items = "".join(
        f"<li>{e(str(a['action']))} (<code>{e(str(a['action_id']))}</code>, FIS experiment "
        f"{e(str(a['experiment_id']))}): {e(str(a['status']))}, from +{a['start_offset_s']} s "
        f"for {a['seconds']} s</li>"
        for a in actions
    )
    intro = "<p>AWS FIS actions (GetExperiment's start and end times):</p>"
    return f"{intro}<ul class='f'>{items}</ul>"


def _alerts_note(alerts: Mapping[str, Any]) -> str:
    if alerts.get("collected"):
        return (
            "<p class='muted'>Alerts: Prometheus's firing alerts (<code>ALERTS</code>) over the "
            "run, per step window, from <code>alerts.json</code>.</p>"
        )
    return f"<p class='muted'>Alerts: {html.escape(str(alerts.get('note') or 'not collected'))}</p>"


def _recovery_basis(step: Mapping[str, Any], per_fault: str) -> str:
    if step.get("recovery_measured_by") == "clients":
        return (
            "the pods never noticed this fault, so it is what the users felt: from the fault's "
            "start until the error ratio stayed at the baseline's, read from the load"
        )
    return (
        f"the worst of its faults{per_fault}, each from the fault's start until the Deployment "
        "had all its Ready pods spread over the zones again, read from the watch timeline"
    )


def _client_impact(impact: Mapping[str, Any] | None) -> str:
    if not impact:
        return ""
    window = impact.get("error_window_s")
    gap = impact.get("write_gap_s")
    back = impact.get("back_to_baseline_s")
    return (
        "<p>What users felt: error window <b>"
        + ("no failed request" if window is None else f"{window} s")
        + "</b> (first to last failed request), write gap <b>"
        + ("no write on one side" if gap is None else f"{gap} s")
        + "</b> (last write acknowledged before the fault to the first after it), back to the "
        + f"baseline error ratio after <b>{_seconds(back)}</b>.</p>"
    )


def _alerts_table(alerts: Mapping[str, Any]) -> str:
    """Per window, the alerts that fired; expected ones that never fired flagged."""
    if not alerts.get("collected") or "fault" not in alerts:
        return ""
    expected = alerts.get("expected") or []
    missing = alerts.get("missing") or []
    rows: list[list[Cell]] = [
        [window, ", ".join(alerts.get(window) or []) or "none"]
        for window in ("baseline", "fault", "recovery")
    ]
    if expected:
        rows.append(
            [
                "expected",
                (
                    ", ".join(f"{n} (did not fire)" if n in missing else n for n in expected),
                    "FAIL" if missing else "PASS",
                ),
            ]
        )
    return "<table class='alerts'><caption>alerts</caption>" + _table(
        ["window", "alerts firing"], rows
    ).removeprefix("<table>")


def _trend_line(trend: Mapping[str, Any] | None) -> str:
    if not trend:
        return "<span class='muted'>(first run of this plan: no trend yet)</span>"
    delta = trend.get("score_delta")
    sign = "" if delta is None else ("+" if delta >= 0 else "")
    return (
        f"<span class='muted'>(previous run {html.escape(str(trend['previous_run']))}: "
        f"{trend.get('previous_score')}, {sign}{delta})</span>"
    )


def _trend_section(trend: Mapping[str, Any] | None) -> str:
    if not trend:
        return (
            "<h2>Trend</h2><p class='muted'>No earlier run of this plan in this reports "
            "directory.</p>"
        )
    rows = [[s["name"], s["previous_s"], s["current_s"], s["delta_s"]] for s in trend["steps"]]
    return (
        f"<h2>Trend against {html.escape(str(trend['previous_run']))}</h2>"
        f"<p>Score {trend.get('previous_score')} → {trend.get('score')} "
        f"(Δ {trend.get('score_delta')}).</p>"
        + _table(["step", "previous time to recovery s", "this run s", "Δ s"], rows)
    )


def _components(steps: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            s["name"],
            s["verdict"],
            _ratio(((s.get("errors") or {}).get("fault") or {}).get("error_ratio")),
            s.get("time_to_recovery_s"),
            s.get("recovery_budget_s"),
            s.get("score_component"),
        ]
        for s in steps
        if s["verdict"] != "SKIP"
    ]
    return _table(
        ["step", "V (verdict)", "e (fault error ratio)", "r (s)", "T (s)", "0.5V+0.3E+0.2R"], rows
    )


def _ratio(value: Any) -> str:
    return "" if value is None else f"{100 * float(value):.2f}%"


def _seconds(value: Any) -> str:
    return "not recovered" if value is None else f"{value} s"


Cell = Any


def _table(head: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    e = html.escape
    body = []
    for row in rows:
        cells = []
        for cell in row:
            value, css = cell if isinstance(cell, tuple) else (cell, "")
            css = css or ("num" if isinstance(value, int | float) else "")
            text = (
                ""
                if value is None
                else (json.dumps(value) if isinstance(value, dict | list) else str(value))
            )
            cells.append(f"<td class='{e(css)}'>{e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(body)}</table>"
