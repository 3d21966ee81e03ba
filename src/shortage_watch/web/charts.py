"""The overview's two charts as server-side SVG: no script, no CDN, every point a link to its list.

Pure functions of the chart points; the caller gives each point's link.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 28, 36
OVERDUE_COLOUR, SHORTAGE_COLOUR, RATE_COLOUR = "#c0161b", "#0f4c81", "#1b7a34"


@dataclass(frozen=True)
class Point:
    label: str  # x-axis label, e.g. "10-08"
    value: float | None
    href: str
    title: str  # the tooltip: what the point counts


def _scale(top_value: float) -> float:
    """A round axis maximum at or above the largest value."""
    if top_value <= 4:
        return 4  # whole-number ticks 0..4 for small counts
    magnitude = 10 ** (len(str(int(top_value))) - 1)
    return float(-(-top_value // magnitude) * magnitude)


def _frame(title: str, top: float, percent: bool) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>']
    for k in range(5):
        value = top * k / 4
        y = TOP + plot_h - plot_h * k / 4
        label = f"{value:.0%}" if percent else f"{value:g}"
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{label}</text>')
    return parts


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * (index + 0.5) / count)


def _y(value: float, top: float) -> float:
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h - plot_h * (value / top if top else 0)


def line_chart(title: str, series: Sequence[tuple[str, str, Sequence[Point]]], aria: str) -> str:
    """Lines (name, colour, points) over shared x labels; each point a linked circle."""
    count = max((len(points) for _, _, points in series), default=0)
    top = _scale(max((p.value or 0 for _, _, points in series for p in points), default=0))
    parts = _frame(title, top, percent=False)
    if count:
        for index, point in enumerate(series[0][2]):
            parts.append(f'<text x="{_x(index, count):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="axis">{escape(point.label)}</text>')
    for number, (name, colour, points) in enumerate(series):
        coords = [(_x(i, count), _y(p.value or 0, top)) for i, p in enumerate(points)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), point in zip(coords, points):
            parts.append(
                f'<a href="{escape(point.href)}" class="point"><circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
                f"<title>{escape(point.title)}</title></circle></a>"
            )
        legend_x = WIDTH - RIGHT - 150 * (len(series) - number)
        parts.append(f'<rect x="{legend_x}" y="6" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 16}" y="16" class="legend">{escape(name)}</text>')
    return _svg(parts, aria)


def bar_chart(title: str, points: Sequence[Point], aria: str) -> str:
    """Bars of rates (0..1); a month with nothing due shows no bar and says so in its tooltip."""
    count = len(points)
    parts = _frame(title, 1.0, percent=True)
    width = (WIDTH - LEFT - RIGHT) / max(count, 1) * 0.6
    for index, point in enumerate(points):
        x = _x(index, count)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="axis">{escape(point.label)}</text>')
        if point.value is None:
            # Nothing fell due that month: no bar (a 0% bar would say every report came late).
            parts.append(f'<a href="{escape(point.href)}" class="point"><text x="{x:.1f}" y="{HEIGHT - BOTTOM - 4}" text-anchor="middle" class="axis">—'
                         f"<title>{escape(point.title)}</title></text></a>")
            continue
        y = _y(point.value, 1.0)
        height = HEIGHT - BOTTOM - y
        parts.append(
            f'<a href="{escape(point.href)}" class="point"><rect x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(height, 1):.1f}" '
            f'fill="{RATE_COLOUR}"><title>{escape(point.title)}</title></rect></a>'
        )
        parts.append(f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle" class="axis">{point.value:.0%}</text>')
    return _svg(parts, aria)


def _svg(parts: list[str], aria: str) -> str:
    body = "".join(parts)
    return f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(aria)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
