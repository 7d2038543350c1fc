"""Server-rendered SVG charts for the figures page: no JavaScript, no charting library, nothing from a CDN.

Each chart is one `<svg>` with presentation attributes and classes only (no `style=`: the desk's CSP allows
no inline styles); every text in it is escaped.  A day without a value (no tickets resolved) is a gap in
the line, never a zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 14, 28


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]
    css: str  # s0, s1, ...: the colour, from desk.css


def chart(
    title: str, days: Sequence[date], series: Sequence[Series], *, kind: str = "line",
    fmt: Callable[[float], str] = lambda v: f"{v:g}", top: float | None = None,
) -> Markup:
    """A line (or bar) chart of `series` over `days`; `fmt` writes the y-axis labels, `top` fixes its maximum."""
    known = [v for s in series for v in s.values if v is not None]
    peak = top if top is not None else max(known, default=0.0) or 1.0
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    n = max(len(days), 1)
    step = plot_w / n

    def x(i: int) -> float:
        return _LEFT + step * (i + 0.5)

    def y(v: float) -> float:
        return _TOP + plot_h * (1 - min(v, peak) / peak)

    parts = [
        (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
         f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>')
    ]
    for frac in (0.0, 0.5, 1.0):  # grid and y labels
        gy = _TOP + plot_h * (1 - frac)
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>')
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">{escape(fmt(peak * frac))}</text>')
    for i in sorted({0, (len(days) - 1) // 2, len(days) - 1}) if days else ():  # first, middle, last day
        parts.append(f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{days[i]:%d %b}</text>')
    width = max(1.0, step * 0.8 / max(len(series), 1))
    for k, s in enumerate(series):
        if kind == "bar":
            for i, v in enumerate(s.values):
                if v:
                    bx = x(i) - step * 0.4 + width * k
                    parts.append(
                        f'<rect class="bar {s.css}" x="{bx:.1f}" y="{y(v):.1f}" width="{width:.1f}" '
                        f'height="{_TOP + plot_h - y(v):.1f}"><title>{escape(f"{s.label}, {days[i]}: {fmt(v)}")}</title></rect>'
                    )
            continue
        for run in _runs(s.values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) > 1:
                parts.append(f'<polyline class="line {s.css}" points="{points}"/>')
            for i, v in run:
                parts.append(
                    f'<circle class="dot {s.css}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5">'
                    f'<title>{escape(f"{s.label}, {days[i]}: {fmt(v)}")}</title></circle>'
                )
    parts.append("</svg>")
    legend = "".join(f'<span class="key {s.css}">{escape(s.label)}</span>' for s in series)
    return Markup(f'<figure class="card chart-card"><figcaption>{escape(title)} <span class="legend">{legend}'
                  f'</span></figcaption>{"".join(parts)}</figure>')


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """The series cut at its gaps: each run is consecutive days with a value."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        if v is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, float(v)))
    if current:
        runs.append(current)
    return runs


def duration_label(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f}d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
