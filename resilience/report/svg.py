"""Charts as inline SVG: stacked panels on one shared time axis, chaos events as bands.

No plotting library and no script: the report must open from a mail attachment
with no network, and the numbers drawn are the numbers in report.json. Every
panel uses the same x scale, so a band (a step, or a fault action inside it)
lines up with the pods, the replicas, the traffic and the writes it disturbed.
Series are paths (one element each, so a 15-minute day stays small); hovering a
band or a panel shows a native tooltip (`<title>`).
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from resilience.report.series import Band

WIDTH = 1060
LEFT = 64
RIGHT = 150  # legend column
PANEL_HEIGHT = 120
GAP = 34
TOP = 34
AXIS = 34
Scale = Callable[[float], float]
# (fill, opacity) per band kind: a step, a fault action, a network fault in place, an
# AWS FIS action running
BAND_STYLE = {
    "step": ("#fde2b8", "0.55"),
    "action": ("#f4a259", "0.45"),
    "network": ("#b39ddb", "0.5"),
    "fis": ("#80cbc4", "0.5"),
}
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]  # (unix time, value)
    style: str = "line"  # line | step | bars
    color: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    series: tuple[Series, ...]
    y_max: float | None = None  # None: the data's maximum (at least 1)
    percent: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def render(panels: Sequence[Panel], bands: Sequence[Band], t0: float, t1: float) -> str:
    """One SVG: `panels` stacked, x from t0 to t1, `bands` across all of them."""
    span = max(1.0, t1 - t0)
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + len(panels) * (PANEL_HEIGHT + GAP) + AXIS

    def x(t: float) -> float:
        return LEFT + (min(max(t, t0), t1) - t0) / span * plot_w

    parts = [
        f"<svg class='chart' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' role='img' aria-label='game-day timeline'>",
        "<style>text{font:11px system-ui,sans-serif;fill:#333}.t{font-weight:600;font-size:12px}"
        ".band:hover{opacity:.8}</style>",
    ]
    bottom = TOP + len(panels) * (PANEL_HEIGHT + GAP) - GAP
    parts += _bands(bands, x, bottom)
    for index, panel in enumerate(panels):
        top = TOP + index * (PANEL_HEIGHT + GAP)
        parts += _panel(panel, top, x, plot_w)
    parts += _time_axis(t0, t1, x, bottom)
    parts.append("</svg>")
    return "".join(parts)


def _bands(bands: Sequence[Band], place: Scale, bottom: float) -> list[str]:
    e = html.escape
    out = []
    label_row = 0
    for band in sorted(bands, key=lambda b: (b.kind != "step", b.start)):
        left, right = place(band.start), place(band.end)
        fill, opacity = BAND_STYLE.get(band.kind, BAND_STYLE["action"])
        top = TOP - 14 if band.kind == "step" else TOP
        out.append(
            f"<rect class='band' x='{left:.1f}' y='{top}' width='{max(1.5, right - left):.1f}' "
            f"height='{bottom - top:.1f}' fill='{fill}' opacity='{opacity}'>"
            f"<title>{e(band.kind)}: {e(band.name)} ({band.end - band.start:.0f} s)</title></rect>"
        )
        if band.kind == "step":
            label_row = 1 - label_row
            out.append(
                f"<text x='{left + 2:.1f}' y='{TOP - 16 - 10 * label_row}' font-size='10'>"
                f"{e(band.name)}</text>"
            )
    return out


def _panel(panel: Panel, top: float, place: Scale, plot_w: float) -> list[str]:
    e = html.escape
    values = [v for s in panel.series for _, v in s.points]
    y_max = panel.y_max or max([1.0, *values])
    if panel.percent:
        y_max = max(y_max, 0.01)

    def y(value: float) -> float:
        return top + PANEL_HEIGHT - min(value, y_max) / y_max * PANEL_HEIGHT

    out = [
        f"<rect x='{LEFT}' y='{top}' width='{plot_w}' height='{PANEL_HEIGHT}' fill='none' "
        f"stroke='#ccc'/>",
        f"<text class='t' x='{LEFT}' y='{top - 4}'>{e(panel.title)}</text>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = y_max * fraction
        label = f"{100 * value:.1f}%" if panel.percent else _short(value)
        out.append(
            f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(value):.1f}' y2='{y(value):.1f}' "
            f"stroke='#eee'/><text x='{LEFT - 4}' y='{y(value) + 4:.1f}' text-anchor='end'>"
            f"{label}</text>"
        )
    if not any(s.points for s in panel.series):
        out.append(
            f"<text x='{LEFT + plot_w / 2:.0f}' y='{top + PANEL_HEIGHT / 2:.0f}' "
            f"text-anchor='middle' fill='#999'>no data</text>"
        )
    for index, series in enumerate(panel.series):
        color = series.color or PALETTE[index % len(PALETTE)]
        out.append(_path(series, place, y, top + PANEL_HEIGHT, color))
        legend_y = top + 12 + 14 * index
        dash = " stroke-dasharray='4 3'" if series.dashed else ""
        out.append(
            f"<line x1='{LEFT + plot_w + 10}' x2='{LEFT + plot_w + 26}' y1='{legend_y - 4}' "
            f"y2='{legend_y - 4}' stroke='{color}' stroke-width='3'{dash}/>"
            f"<text x='{LEFT + plot_w + 30}' y='{legend_y}'>{e(series.label)}</text>"
        )
    return out


def _path(series: Series, place_x: Scale, place_y: Scale, base: float, color: str) -> str:
    points = sorted(series.points)
    if not points:
        return ""
    dash = " stroke-dasharray='4 3'" if series.dashed else ""
    if series.style == "bars":
        # one filled step area: each second a bar of its value
        d = [f"M{place_x(points[0][0]):.1f},{base:.1f}"]
        for t, v in points:
            left, right = place_x(t), place_x(t + 1)
            top = place_y(v)
            d.append(
                f"L{left:.1f},{base:.1f}L{left:.1f},{top:.1f}L{right:.1f},{top:.1f}L{right:.1f},{base:.1f}"
            )
        return f"<path d='{''.join(d)}Z' fill='{color}' fill-opacity='0.55' stroke='none'/>"
    d = []
    previous: float | None = None
    for t, v in points:
        px, py = place_x(t), place_y(v)
        if not d:
            d.append(f"M{px:.1f},{py:.1f}")
        elif series.style == "step" and previous is not None:
            d.append(f"L{px:.1f},{previous:.1f}L{px:.1f},{py:.1f}")
        else:
            d.append(f"L{px:.1f},{py:.1f}")
        previous = py
    if series.style == "step" and previous is not None:
        d.append(f"L{LEFT + (WIDTH - LEFT - RIGHT):.1f},{previous:.1f}")
    return (
        f"<path d='{''.join(d)}' fill='none' stroke='{color}' stroke-width='1.6'{dash}>"
        f"<title>{html.escape(series.label)}</title></path>"
    )


def _time_axis(t0: float, t1: float, place: Scale, bottom: float) -> list[str]:
    span = max(1.0, t1 - t0)
    step = next((s for s in (10, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 12), 7200)
    out = [
        f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{bottom + 4}' y2='{bottom + 4}' "
        "stroke='#999'/>"
    ]
    tick = 0
    while tick <= span:
        px = place(t0 + tick)
        clock = datetime.datetime.fromtimestamp(t0 + tick, datetime.UTC).strftime("%H:%M:%S")
        out.append(
            f"<line x1='{px:.1f}' x2='{px:.1f}' y1='{bottom + 4}' y2='{bottom + 8}' stroke='#999'/>"
            f"<text x='{px:.1f}' y='{bottom + 19}' text-anchor='middle'>"
            f"+{tick // 60}:{tick % 60:02d}"
            f"</text><text x='{px:.1f}' y='{bottom + 30}' text-anchor='middle' fill='#888' "
            f"font-size='9'>{clock}</text>"
        )
        tick += step
    out.append(f"<text x='{WIDTH - RIGHT + 10}' y='{bottom + 19}'>time (UTC)</text>")
    return out


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
