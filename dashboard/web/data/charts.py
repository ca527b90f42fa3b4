"""Server-rendered SVG charts: no JavaScript library, every text escaped, colour-blind-safe colours.

Colours are from the Okabe-Ito palette, and red bars also carry a hatch pattern, so the three
results stay apart for readers who cannot tell green from red.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

logger = logging.getLogger(__name__)

COLOURS: dict[str, str] = {"green": "#009E73", "yellow": "#F0E442", "red": "#D55E00"}
RESULT_ORDER: tuple[str, ...] = ("green", "yellow", "red")


@dataclass(frozen=True)
class ChartBar:
    """One time bucket of the chart: its axis label and its counts per result."""

    label: str
    green: int
    yellow: int
    red: int

    @property
    def total(self) -> int:
        """All verdicts in the bucket."""
        return self.green + self.yellow + self.red


def _nice_max(value: int, ticks: int = 4) -> int:
    """A round axis maximum at or above `value` whose `ticks` steps are whole 1, 2, 3 or 5 x 10^k."""
    step = 1
    while True:
        for m in (1, 2, 3, 5):
            if m * step * ticks >= value:
                return m * step * ticks
        step *= 10


def timeseries_svg(
    bars: Sequence[ChartBar],
    legend: dict[str, str],
    title: str,
    *,
    width: int = 760,
    height: int = 220,
    max_ticks: int = 8,
) -> Markup:
    """A stacked bar chart of results over time, as inline SVG markup."""
    left, right, top, bottom = 44, 10, 28, 34
    plot_w = width - left - right
    plot_h = height - top - bottom
    y_max = _nice_max(max((b.total for b in bars), default=0))
    n = max(len(bars), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart" data-test-id="chart-svg" '
        f'data-total="{sum(b.total for b in bars)}">',
        f"<title>{escape(title)}</title>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#D55E00"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern></defs>',
    ]
    # Horizontal grid lines with their values, so the bars can be read without hovering.
    for i in range(5):
        value = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{value:.0f}</text>')
    tick_every = max(1, -(-len(bars) // max_ticks))
    for i, bar in enumerate(bars):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for result in RESULT_ORDER:
            count = getattr(bar, result)
            if not count:
                continue
            h = plot_h * count / y_max
            y -= h
            fill = "url(#hatch)" if result == "red" else COLOURS[result]
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{fill}" '
                f'class="bar-{result}"><title>{escape(bar.label)} {escape(legend.get(result, result))}: '
                f"{count}</title></rect>"
            )
        if i % tick_every == 0:
            cx = left + i * slot + slot / 2
            out.append(
                f'<text x="{cx:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="axis">'
                f"{escape(bar.label)}</text>"
            )
    # Legend: colour swatch plus the word, never colour alone.
    lx = left
    for result in RESULT_ORDER:
        fill = "url(#hatch)" if result == "red" else COLOURS[result]
        text = escape(legend.get(result, result))
        out.append(f'<rect x="{lx}" y="6" width="14" height="14" fill="{fill}" stroke="#333"/>')
        out.append(f'<text x="{lx + 18}" y="18" class="legend">{text}</text>')
        lx += 24 + 8 * len(legend.get(result, result))
    out.append("</svg>")
    return Markup("".join(out))
