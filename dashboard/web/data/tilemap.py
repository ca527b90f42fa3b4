"""The overview's map: a tile grid of Vietnam's provinces, one square each, shaded by volume, pass
rate or where records are missing, each linking to its province's page.

"Where records are missing" is the share of reds for an incomplete or missing record that
officers let through on paper proof (`dashboard.decisions`): a high share means people are
vaccinated but the national records do not show it. A province without such reds has no share
(no data), which is not the same as 0%.

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
from dashboard.web.data.province_positions import POSITIONS
from dashboard.web.data.provinces import PROVINCES

CELL_LON = 0.55  # degrees of longitude per grid column
CELL_LAT = 0.5  # degrees of latitude per grid row
TILE = 30  # px per cell
GAP = 2
MODES = ("volume", "pass", "missing")
VOLUME_COLOURS = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")
PASS_COLOURS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")  # < 60, < 75, < 85, < 95, >= 95 %
PASS_STEPS = (0.60, 0.75, 0.85, 0.95)
MISSING_COLOURS = ("#d8d2ee", "#b9b0db", "#9e9ac8", "#756bb1", "#54278f")  # < 10, < 25, < 50, < 75, >= 75 %
MISSING_STEPS = (0.10, 0.25, 0.50, 0.75)
# "No data" is white with a dashed edge: unlike any band, so 0% (reds, none let through) never
# looks like a province without reds.
NO_DATA = "#ffffff"
DARK = frozenset({VOLUME_COLOURS[3], VOLUME_COLOURS[4], PASS_COLOURS[0], PASS_COLOURS[4],
                  MISSING_COLOURS[3], MISSING_COLOURS[4]})  # white labels


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
    # Then moves and swaps that bring each province next to its true nearest neighbours.
    out = _touch_neighbours(out, {c: ((lon - lon0) / CELL_LON, (lat0 - lat) / CELL_LAT)
                                  for c, (lat, lon) in POSITIONS.items()})
    # Rows left empty by long stretches of coast are dropped, as tile maps do: order is kept.
    rows = sorted({r for _, r in out.values()})
    packed = {r: i for i, r in enumerate(rows)}
    left = min(c for c, _ in out.values())
    return {code: (col - left, packed[row]) for code, (col, row) in out.items()}


NEIGHBOURS = 3  # true nearest provinces each tile should touch (the first counts double)
TOUCH = 1.5  # tiles whose centres are this close touch (side or corner)


def _touch_neighbours(cells: dict[str, tuple[int, int]],
                      true: dict[str, tuple[float, float]]) -> dict[str, tuple[int, int]]:
    """Local search on the grid: a province moves to a nearby free cell, or swaps with the province
    there, when that lowers the cost: how far each province's true nearest neighbours sit beyond
    touching, plus half its distance from its true place. Deterministic (sorted order)."""
    near = {c: [d for _, d in sorted((math.hypot(p[0] - q[0], p[1] - q[1]), d)
                                     for d, q in true.items() if d != c)[:NEIGHBOURS]] for c, p in true.items()}
    watchers: dict[str, set[str]] = {c: set() for c in true}
    for c, ds in near.items():
        for d in ds:
            watchers[d].add(c)

    def cost(c: str, where: Mapping[str, tuple[int, int]]) -> float:
        (cx, cy), (x, y) = where[c], true[c]
        total = 0.5 * math.hypot(cx - x, cy - y)
        for i, d in enumerate(near[c]):
            dx, dy = where[d]
            total += (2.0 if i == 0 else 1.0) * max(0.0, math.hypot(cx - dx, cy - dy) - TOUCH)
        return total

    where = dict(cells)
    for _ in range(12):
        changed = False
        for c in sorted(where):
            taken = {cell: code for code, cell in where.items()}
            cx, cy = where[c]
            best: tuple[float, dict[str, tuple[int, int]]] | None = None
            for nx in range(max(0, cx - 2), cx + 3):
                for ny in range(max(0, cy - 2), cy + 3):
                    if (nx, ny) == (cx, cy):
                        continue
                    other = taken.get((nx, ny))
                    moved = {c: (nx, ny), **({other: (cx, cy)} if other else {})}
                    trial = {**where, **moved}
                    keys = set(moved).union(*(watchers[k] for k in moved))
                    gain = sum(cost(k, trial) for k in keys) - sum(cost(k, where) for k in keys)
                    if gain < -1e-9 and (best is None or gain < best[0]):
                        best = (gain, trial)
            if best is not None:
                where, changed = best[1], True
        if not changed:
            break
    return where


def _initials(name: str) -> str:
    words = [w for w in name.replace("TP.", "").replace("–", " ").split() if w[:1].isalpha()]
    return "".join(w[0].upper() for w in words)


# Where initials repeat, the smaller or later province gets a second letter, as people shorten them.
LABEL_OVERRIDES: dict[str, str] = {
    "35": "HNa", "93": "HậG", "12": "LCh", "72": "TNi", "49": "QNa", "51": "QNg", "67": "ĐNô",
    "75": "ĐNa", "83": "BTr", "77": "VT",  # Bà Rịa – Vũng Tàu: "BRVT" is too wide for a tile
}


def short_labels() -> dict[str, str]:
    """A 2-3 letter label per province (initials; LABEL_OVERRIDES where they repeat)."""
    return {code: LABEL_OVERRIDES.get(code) or _initials(name) for code, name in PROVINCES.items()}


def _band(value: float, steps: tuple[float, ...], colours: tuple[str, ...]) -> str:
    return colours[sum(1 for step in steps if value >= step)]


def _colour(mode: str, g: Mapping[str, Any] | None, gap: Mapping[str, Any] | None, top: int) -> str:
    if mode == "missing":
        share = gap.get("gap_lifted_share") if gap else None
        return NO_DATA if share is None else _band(share, MISSING_STEPS, MISSING_COLOURS)
    if not g or not g.get("total"):
        return NO_DATA
    if mode == "pass":
        return _band(g.get("pass_rate") or 0.0, PASS_STEPS, PASS_COLOURS)
    step = min(len(VOLUME_COLOURS) - 1, int(len(VOLUME_COLOURS) * g["total"] / (top + 1)))
    return VOLUME_COLOURS[step]


def _tip(name: str, mode: str, g: Mapping[str, Any] | None, gap: Mapping[str, Any] | None) -> str:
    if mode == "missing":
        if not gap or gap.get("gap_lifted_share") is None:
            return f"{name}: {translate('map_no_data')}"
        return f"{name}: {gap['gap_lifted']}/{gap['gap_reds']} · {gap['gap_lifted_share'] * 100:.1f}%"
    if not g:
        return name
    return f"{name}: {g['total']} · " + (f"{g['pass_rate'] * 100:.1f}%" if g.get("pass_rate") is not None else "–")


def map_svg(by_province: list[Mapping[str, Any]], mode: str, linkable: Collection[str],
            link: Any, gaps: Collection[Mapping[str, Any]] = ()) -> Markup:
    """The SVG tile map; `link(code)` gives a province page's URL for codes in `linkable`;
    `gaps` are the decision tallies by province (`decision_view`'s), for the "missing" mode."""
    mode = mode if mode in MODES else "volume"
    cells = layout()
    groups = {g["key"]: g for g in by_province}
    gap_of = {g["key"]: g for g in gaps}
    top = max((g["total"] for g in by_province), default=0)
    width = (max(c for c, _ in cells.values()) + 1) * TILE
    height = (max(r for _, r in cells.values()) + 1) * TILE
    labels = short_labels()
    parts = [f'<svg class="tilemap" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(translate("map_title"))}" '
             f'data-test-id="tilemap" data-mode="{mode}">']
    for code, (col, row) in sorted(cells.items()):
        g, gap = groups.get(code), gap_of.get(code)
        tip = _tip(PROVINCES.get(code, code), mode, g, gap)
        x, y = col * TILE + GAP / 2, row * TILE + GAP / 2
        colour = _colour(mode, g, gap, top)
        ink = ' fill="#fff"' if colour in DARK else ' fill="#111"'
        nodata = ' class="nodata"' if colour == NO_DATA else ""
        tile = (f'<rect x="{x}" y="{y}" width="{TILE - GAP}" height="{TILE - GAP}" rx="3" fill="{colour}"{nodata}/>'
                f'<text x="{x + (TILE - GAP) / 2}" y="{y + TILE / 2 + 4}" text-anchor="middle"{ink}>'
                f'{escape(labels.get(code, code))}</text><title>{escape(tip)}</title>')
        attrs = f'data-province="{code}" data-total="{g["total"] if g else 0}"'
        if mode == "missing":
            share = gap.get("gap_lifted_share") if gap else None
            attrs += ' data-gap-share="' + ("" if share is None else f"{share:.4f}") + '"'
        if code in linkable:
            parts.append(f'<a href="{escape(link(code))}" {attrs} data-test-id="map-{code}">{tile}</a>')
        else:
            parts.append(f'<g {attrs} class="off">{tile}</g>')
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(mode, top))


def _legend(mode: str, top: int) -> str:
    """Colour keys under the map: rate or share bands, or volume fifths of the largest province."""
    caption = ""
    if mode == "pass":
        bounds = ["< 60%", "60–75%", "75–85%", "85–95%", "≥ 95%"]
        colours = PASS_COLOURS
    elif mode == "missing":
        bounds = ["< 10%", "10–25%", "25–50%", "50–75%", "≥ 75%", translate("map_no_data")]
        colours = (*MISSING_COLOURS, NO_DATA)
        caption = f'{escape(translate("map_missing_legend"))}: '

    else:
        step = (top + 1) / len(VOLUME_COLOURS)
        bounds = [f"≤ {int(step * (i + 1))}" for i in range(len(VOLUME_COLOURS))]
        colours = VOLUME_COLOURS
    # SVG swatches, not style attributes: the page's Content-Security-Policy refuses inline styles.
    nodata = ' class="nodata"'
    keys = "".join(f'<span class="key"><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
                   f'fill="{c}"{nodata if c == NO_DATA else ""}/></svg> {escape(b)}</span>'
                   for c, b in zip(colours, bounds))
    return f'<p class="map-legend" data-test-id="map-legend">{caption}{keys}</p>'


def map_markup(data: Mapping[str, Any], mode: str | None) -> Markup:
    """The overview's map for the logged-in user: their provinces link to their pages."""
    from flask import url_for

    from dashboard.web.state import user_scope

    scope = user_scope()
    linkable = PROVINCES.keys() if scope.everything else scope.provinces
    return map_svg(data["by_province"], mode or "volume", linkable,
                   lambda code: url_for("views.province", code=code), data["decisions"]["by_province"])
