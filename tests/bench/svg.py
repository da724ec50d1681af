"""Charts of the benchmark's results as small SVG files, written by hand (no dependency):
one or more series of points on linear axes, each series a coloured line with its points
and a legend. docs/performance.md shows them; the mode that measured redraws them."""

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
Series = Sequence[tuple[float, float]]


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * index for index in range(math.ceil(high / step) + 1)]


def _label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def line_chart(
    path: Path,
    title: str,
    x_label: str,
    y_label: str,
    series: Mapping[str, Series],
    *,
    x_categories: Sequence[float] | None = None,
) -> Path:
    """Write ``series`` (name: points) as a line chart to ``path``. With ``x_categories``
    the x values are placed evenly in that order (connections: 1, 8, 32, 128)."""
    points = [point for values in series.values() for point in values]
    y_ticks = nice_ticks(max((y for _, y in points), default=1.0))
    if x_categories is not None:
        slots = {value: index for index, value in enumerate(x_categories)}
        x_ticks = list(x_categories)
        x_span = max(len(x_categories) - 1, 1)

        def x_of(value: float) -> float:
            return LEFT + (WIDTH - LEFT - RIGHT) * slots[value] / x_span
    else:
        x_ticks = nice_ticks(max((x for x, _ in points), default=1.0))

        def x_of(value: float) -> float:
            return LEFT + (WIDTH - LEFT - RIGHT) * value / x_ticks[-1]

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / y_ticks[-1]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>",
    ]
    for tick in y_ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    for tick in x_ticks:
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{_label(tick)}</text>"
        )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
        f'<text x="16" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(TOP + HEIGHT - BOTTOM) / 2})">{html.escape(y_label)}</text>'
    )
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coordinates = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in values)
        parts.append(
            f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        if len(values) <= 40:
            parts.extend(
                f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{colour}"/>'
                for x, y in values
            )
        legend_y = TOP + 4 + 16 * index
        parts.append(
            f'<rect x="{LEFT + 10}" y="{legend_y}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{LEFT + 28}" y="{legend_y + 5}">{html.escape(name)}</text>'
        )
    parts.append("</svg>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
