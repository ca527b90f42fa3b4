"""The overview's map: a tile grid of Vietnam's provinces, one square each, shaded by volume or
pass rate, each linking to its province's page.

No boundary dataset that may be shipped could be installed here (Natural Earth's admin-1 is not
packaged in the registries this project uses), so the map is a tile grid, as newsrooms draw
tile maps of states: each province's square is put in the free grid cell nearest to where its
capital really is (`province_positions`), the crowded delta provinces spilling to the nearest
free cells. The layout is computed once, deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape

from dashboard.web.i18n import translate
from dashboard.web.province_positions import POSITIONS
from dashboard.web.provinces import PROVINCES

CELL_LON = 0.55  # degrees of longitude per grid column
CELL_LAT = 0.5  # degrees of latitude per grid row
TILE = 30  # px per cell
GAP = 2
MODES = ("volume", "pass")
VOLUME_COLOURS = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")
PASS_COLOURS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")  # < 60, < 75, < 85, < 95, >= 95 %
PASS_STEPS = (0.60, 0.75, 0.85, 0.95)
NO_DATA = "#e5e7eb"
DARK = frozenset({VOLUME_COLOURS[3], VOLUME_COLOURS[4], PASS_COLOURS[0], PASS_COLOURS[4]})  # white labels


@lru_cache(maxsize=1)
def layout() -> dict[str, tuple[int, int]]:
    """province code -> (column, row): the free cell nearest its true position, north first."""
    lon0 = min(lon for _, lon in POSITIONS.values())
    lat0 = max(lat for lat, _ in POSITIONS.values())
    taken: dict[tuple[int, int], str] = {}
    # Place the most crowded provinces first, so each keeps a cell near its true place.
    def crowd(code: str) -> int:
        lat, lon = POSITIONS[code]
        return -sum(1 for la, lo in POSITIONS.values() if abs(la - lat) < 0.6 and abs(lo - lon) < 0.6)

    out: dict[str, tuple[int, int]] = {}
    for code in sorted(POSITIONS, key=lambda c: (crowd(c), -POSITIONS[c][0], c)):
        lat, lon = POSITIONS[code]
        x, y = (lon - lon0) / CELL_LON, (lat0 - lat) / CELL_LAT
        best = min(
            ((cx, cy) for cx in range(int(x) - 4, int(x) + 6) for cy in range(int(y) - 4, int(y) + 6)
             if cx >= 0 and cy >= 0 and (cx, cy) not in taken),
            key=lambda cell: (math.hypot(cell[0] - x, cell[1] - y), cell),
        )
        taken[best] = code
        out[code] = best
    # Rows left empty by long stretches of coast are dropped, as tile maps do: order is kept.
    rows = sorted({r for _, r in out.values()})
    packed = {r: i for i, r in enumerate(rows)}
    return {code: (col, packed[row]) for code, (col, row) in out.items()}


def _initials(name: str) -> str:
    words = [w for w in name.replace("TP.", "").replace("–", " ").split() if w[:1].isalpha()]
    return "".join(w[0].upper() for w in words)


# Where initials repeat, the smaller or later province gets a second letter, as people shorten them.
LABEL_OVERRIDES: dict[str, str] = {
    "35": "HNa", "93": "HậG", "12": "LCh", "72": "TNi", "49": "QNa", "51": "QNg", "67": "ĐNô",
    "75": "ĐNa", "83": "BTr",
}


def short_labels() -> dict[str, str]:
    """A 2-3 letter label per province (initials; LABEL_OVERRIDES where they repeat)."""
    return {code: LABEL_OVERRIDES.get(code) or _initials(name) for code, name in PROVINCES.items()}


def _colour(mode: str, g: Mapping[str, Any] | None, top: int) -> str:
    if not g or not g.get("total"):
        return NO_DATA
    if mode == "pass":
        rate = g.get("pass_rate") or 0.0
        return PASS_COLOURS[sum(1 for step in PASS_STEPS if rate >= step)]
    step = min(len(VOLUME_COLOURS) - 1, int(len(VOLUME_COLOURS) * g["total"] / (top + 1)))
    return VOLUME_COLOURS[step]


def map_svg(by_province: list[Mapping[str, Any]], mode: str, linkable: Collection[str],
            link: Any) -> Markup:
    """The SVG tile map; `link(code)` gives a province page's URL for codes in `linkable`."""
    mode = mode if mode in MODES else "volume"
    cells = layout()
    groups = {g["key"]: g for g in by_province}
    top = max((g["total"] for g in by_province), default=0)
    width = (max(c for c, _ in cells.values()) + 1) * TILE
    height = (max(r for _, r in cells.values()) + 1) * TILE
    labels = short_labels()
    parts = [f'<svg class="tilemap" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(translate("map_title"))}" '
             f'data-test-id="tilemap" data-mode="{mode}">']
    for code, (col, row) in sorted(cells.items()):
        g = groups.get(code)
        name = PROVINCES.get(code, code)
        tip = name if not g else f"{name}: {g['total']} · " + (
            f"{g['pass_rate'] * 100:.1f}%" if g.get("pass_rate") is not None else "–")
        x, y = col * TILE + GAP / 2, row * TILE + GAP / 2
        colour = _colour(mode, g, top)
        ink = ' fill="#fff"' if colour in DARK else ' fill="#111"'
        tile = (f'<rect x="{x}" y="{y}" width="{TILE - GAP}" height="{TILE - GAP}" rx="3" fill="{colour}"/>'
                f'<text x="{x + (TILE - GAP) / 2}" y="{y + TILE / 2 + 3}" text-anchor="middle"{ink}>'
                f'{escape(labels.get(code, code))}</text><title>{escape(tip)}</title>')
        attrs = f'data-province="{code}" data-total="{g["total"] if g else 0}"'
        if code in linkable:
            parts.append(f'<a href="{escape(link(code))}" {attrs} data-test-id="map-{code}">{tile}</a>')
        else:
            parts.append(f'<g {attrs} class="off">{tile}</g>')
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(mode, top))


def _legend(mode: str, top: int) -> str:
    """Colour keys under the map: rate bands, or volume fifths of the largest province."""
    if mode == "pass":
        bounds = ["< 60%", "60–75%", "75–85%", "85–95%", "≥ 95%"]
        colours = PASS_COLOURS
    else:
        step = (top + 1) / len(VOLUME_COLOURS)
        bounds = [f"≤ {int(step * (i + 1))}" for i in range(len(VOLUME_COLOURS))]
        colours = VOLUME_COLOURS
    # SVG swatches, not style attributes: the page's Content-Security-Policy refuses inline styles.
    keys = "".join(f'<span class="key"><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
                   f'fill="{c}"/></svg> {escape(b)}</span>' for c, b in zip(colours, bounds))
    return f'<p class="map-legend" data-test-id="map-legend">{keys}</p>'



def map_markup(data: Mapping[str, Any], mode: str | None) -> Markup:
    """The overview's map for the logged-in user: their provinces link to their pages."""
    from flask import url_for

    from dashboard.web.state import user_scope

    scope = user_scope()
    linkable = PROVINCES.keys() if scope.everything else scope.provinces
    return map_svg(data["by_province"], mode or "volume", linkable,
                   lambda code: url_for("views.province", code=code))
