"""chot's own QR locator: finds a dense code that zxing-cpp's detector loses, and reads it by its pose.

zxing-cpp finds a QR code by tracing its three finder patterns in its own binarisation. On a
dense code at 2.5-4 camera pixels per module, under glare, on a dark-mode screen or through a
webcam's JPEG, that tracing fails even where the modules can still be told apart. Here:

1. finder patterns are nested contours (a square, a ring, a core) in the stage's own
   binarisation of the crop, each giving its centre, its module size and the corners of the
   square through the middle of its ring (lines fitted to the sides, which blur cannot round);
2. three whose squares fit one plane grid are the code's corners, however far the code is
   tilted; else three of like size at a right angle. Top-left is the corner, top-right and
   bottom-left are told apart by the direction of the turn;
3. for each plausible version the pose starts as the homography through the finders' twelve
   square corners (the versions they fit best: their sizes against their spacing fix it under
   perspective), or the affine map through the three centres, and is refined ring by ring
   outwards from the top-left on the alignment patterns that version has (ISO/IEC 18004,
   Annex E), each found by template matching near where the pose puts it; the versions whose
   alignment patterns match best win, and dark mode is read off the finders;
4. each module's centre is sampled against the level of the modules round it and zxing-cpp
   decodes a clean drawing of them in pure mode, so that the code's own Reed-Solomon decides
   whether the pose was right (a wrong pose reads nothing, it cannot read wrong text).

On this machine it costs 1-3 ms on a crop without finder patterns (the contour search) and
5-10 ms where it finds three, and runs only where the decoding stage expects a code and its
retries failed (``scanner/decode.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np
import zxingcpp

_QR = zxingcpp.BarcodeFormat.QRCode
_MATCH_PX = 4  # pixels per module where alignment patterns are matched
_SEARCH = 2  # modules either way round the predicted place of an alignment pattern
_MIN_MATCH = 0.5  # the best of a window's correlations: noise and data modules reach about 0.4
_MAX_FINDERS = 10  # largest candidates kept: a code's finders are its largest nested squares
_MAX_TRIPLES = 3  # corner triples tried per crop, squarest first
_MAX_COSINE = 0.5  # the top-left corner's angle: 60-120 degrees (tilt and perspective)
_MAX_SIDE_RATIO = 1.6  # top and left sides, and the finders' module sizes, this alike
_MAX_TILT_COSINE = 0.85  # a corner seen at 65 degrees of tilt may look 30-150 degrees wide
_MAX_TILT_RATIO = 2.8  # sides and finder sizes this unlike when the finders' squares fit a grid
_MAX_FIT_ERROR = 0.35  # modules: the finders' twelve square corners against one homography
_MIN_SIDE_COSINE = 0.94  # within 20 degrees: perspective bends a grid line's image that little here
_MAX_FITTED = 6  # triples whose squares are fitted to a grid per crop, most nearly square first
_MAX_PAIRS = 2  # pairs of finders tried per crop where no three make a code's corners
_OUTSIDE = 0.1  # how far past the crop's edge (of its size) a code may stick out
_VERSIONS_WIDE = 4  # versions tried either side of the mean-size estimate by the squares' fit
_VERSIONS_AROUND = 2  # versions tried either side of the finders' estimate (2% in module size)
_POSES_READ = 2  # best-matching (version, polarity) poses sampled and decoded
READ_PX = 6  # pixels per module of a straightened code
QUIET = 4  # modules of quiet zone kept round a straightened or drawn code
_DRAW_PX = 4  # pixels per module of the clean drawing


@dataclass(frozen=True)
class Finder:
    """A finder-pattern candidate: its centre in crop pixels, its module size and, where its edges
    are straight enough, the corners of the square through the middle of its ring (6 modules a
    side, in the order the ring's outer edge runs)."""

    x: float
    y: float
    module: float
    square: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class Pose:
    """Where a code of ``size`` modules lies: ``homography`` maps module coordinates to pixels."""

    homography: np.ndarray
    size: int
    dark_mode: bool
    match: float  # mean alignment-pattern correlation, 0..1

    def corners(self) -> np.ndarray:
        """The module grid's corners in pixels (TL, TR, BR, BL), 4x2."""
        n = self.size
        grid = np.float32([[0, 0], [n, 0], [n, n], [0, n]]).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(grid, self.homography).reshape(-1, 2)


def alignment_centres(version: int) -> list[tuple[int, int]]:
    """Module coordinates of a version's alignment-pattern centres (none for version 1)."""
    if version < 2:
        return []
    count, last = version // 7 + 2, 4 * version + 10
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    rows = [6] + [last - i * step for i in reversed(range(count - 1))]
    finders = {(6, 6), (6, last), (last, 6)}
    return [(x, y) for y in rows for x in rows if (x, y) not in finders]


def finder_patterns(binary: np.ndarray) -> list[Finder]:
    """Nested-square candidates in a binarised image, largest first.

    A contour tree nests both ways (a region's hole is a contour too), so one polarity finds a
    finder pattern drawn dark on light and light on dark (dark mode) alike.
    """
    found: list[tuple[float, Finder, int]] = []
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is not None:
        links = hierarchy[0]
        # [next, previous, first child, parent]: a square whose first child has a child
        child = links[:, 2]
        grandchild = np.where(child >= 0, links[np.maximum(child, 0), 2], -1)
        for i in np.flatnonzero(grandchild >= 0):
            core = grandchild[i]
            outer_area, core_area = cv2.contourArea(contours[i]), cv2.contourArea(contours[core])
            inner_area = cv2.contourArea(contours[child[i]])  # the ring's inner edge, 5x5 modules
            # 7x7 modules round 3x3: an area ratio of 5.4, give or take blur and tilt
            if outer_area < 60 or core_area <= 0 or not 2.0 < outer_area / core_area < 12.0:
                continue
            m = cv2.moments(contours[core])
            if m["m00"] <= 0:
                continue
            # the outer edge spans 7 modules and the inner 5; a threshold that grows dark areas
            # moves both outwards alike, so their sum is 12 modules whatever the threshold
            module = (np.sqrt(outer_area) + np.sqrt(inner_area)) / 12.0
            if module > 0.5:
                found.append((outer_area, Finder(m["m10"] / m["m00"], m["m01"] / m["m00"], float(module)), i))
    found.sort(key=lambda item: -item[0])
    kept: list[tuple[Finder, int]] = []
    for _, f, i in found:  # one pattern seen as a region and as a hole, or its quiet zone round it
        if all(np.hypot(f.x - k.x, f.y - k.y) > 2 * max(f.module, k.module) for k, _ in kept):
            kept.append((f, i))
    return [replace(f, square=_ring_square(contours[i], contours[links[i, 2]])) for f, i in kept[:_MAX_FINDERS]]


def _along(vertices: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Points every ``step`` pixels round a closed polyline (a contour kept as its vertices)."""
    closed = np.vstack([vertices, vertices[:1]])
    run = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    at = np.arange(0.0, run[-1], step)
    return np.column_stack([np.interp(at, run, closed[:, 0]), np.interp(at, run, closed[:, 1])])


def _quad(contour: np.ndarray) -> np.ndarray | None:
    """The four corners of a contour that is a quadrilateral (tilt and perspective allowed).

    Blur and a threshold round a square's corners, and a polygon through the contour cuts them:
    each corner is instead where the lines fitted to the middles of its two sides meet."""
    hull = cv2.convexHull(contour)
    rough = cv2.approxPolyDP(hull, 0.06 * cv2.arcLength(hull, True), True)
    if len(rough) != 4:
        return None
    rough = rough.reshape(4, 2).astype(np.float64)
    points = _along(contour.reshape(-1, 2).astype(np.float64))
    lines = []
    for a, b in zip(rough, np.roll(rough, -1, axis=0)):
        side = b - a
        length = float(np.hypot(*side))
        if length < 4:
            return None
        along = (points - a) @ side / length ** 2  # 0 at a, 1 at b
        across = np.abs((points - a) @ np.array([-side[1], side[0]])) / length
        middle = points[(along > 0.2) & (along < 0.8) & (across < 0.15 * length)]
        if len(middle) < 3:
            return None
        vx, vy, x0, y0 = cv2.fitLine(middle.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).reshape(4)
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    corners = []
    for i in range(4):  # corner i joins side i - 1 (from the corner before) and side i
        (p0, d0), (p1, d1) = lines[i - 1], lines[i]
        turn = d0[0] * d1[1] - d0[1] * d1[0]
        if abs(turn) < 0.2:  # sides nearly parallel: no corner to speak of
            return None
        t = ((p1[0] - p0[0]) * d1[1] - (p1[1] - p0[1]) * d1[0]) / turn
        corners.append(p0 + t * d0)
    return np.array(corners)


def _ring_square(outer: np.ndarray, inner: np.ndarray) -> tuple[tuple[float, float], ...] | None:
    """The corners of the square midway between a finder ring's outer edge (7 modules) and inner
    edge (5 modules): a threshold moves the two edges opposite ways, so the middle stays put."""
    out, into = _quad(outer), _quad(inner)
    if out is None or into is None:
        return None
    nearest = [int(np.argmin(np.hypot(*(into - corner).T))) for corner in out]
    if len(set(nearest)) != 4:
        return None
    middle = (out + into[nearest]) / 2
    return tuple((float(x), float(y)) for x, y in middle)


def square_points(corners: tuple[Finder, Finder, Finder], n: int, hidden: Finder | None = None) -> tuple[list, list] | None:
    """The finders' square corners as module coordinates and pixels, for a code of ``n`` modules
    with these top-left, top-right and bottom-left finders (None if a finder has no square);
    ``hidden`` is a finder put where the other two say it is, which gives no points.

    A corner's place on its finder (which of the four) is the sign of its offset from the
    finder's centre along the code's two sides, as the finders' centres draw them."""
    tl, tr, bl = corners
    sides = np.array([[tr.x - tl.x, bl.x - tl.x], [tr.y - tl.y, bl.y - tl.y]])
    if abs(np.linalg.det(sides)) < 1e-6:
        return None
    to_sides = np.linalg.inv(sides)
    modules, pixels = [], []
    for finder, (ox, oy) in zip(corners, ((0, 0), (n - 7, 0), (0, n - 7))):
        if finder is hidden:
            continue
        if finder.square is None:
            return None
        seen = set()
        for x, y in finder.square:
            a, b = to_sides @ (x - finder.x, y - finder.y)
            seen.add((a > 0, b > 0))
            modules.append((ox + (6.5 if a > 0 else 0.5), oy + (6.5 if b > 0 else 0.5)))
            pixels.append((x, y))
        if len(seen) != 4:
            return None
    return modules, pixels


def fit_error(homography: np.ndarray, modules: list, pixels: list) -> float:
    """The root-mean-square distance, in modules, between ``modules`` and ``pixels`` mapped back."""
    back = cv2.perspectiveTransform(np.float64([pixels]), np.linalg.inv(homography)).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum((back - np.float64(modules)) ** 2, axis=1))))


def corner_triples(finders: list[Finder]) -> list[tuple[Finder, Finder, Finder]]:
    """(top-left, top-right, bottom-left) triples that could be one code's finders, best first.

    Triples whose finders' squares fit one plane grid come first, closest fit first: tilt and
    perspective may make a code's corner far from square and its finders unlike in size. Then
    those near a right angle with finders of like size, squarest first (a blurred finder's
    square may be lost while its centre holds)."""
    candidates = []
    for trio in itertools.combinations(finders, 3):
        sizes = [f.module for f in trio]
        if max(sizes) > _MAX_TILT_RATIO * min(sizes):
            continue
        alike = max(sizes) <= _MAX_SIDE_RATIO * min(sizes)
        for i in range(3):
            tl = trio[i]
            a, b = (f for j, f in enumerate(trio) if j != i)
            va, vb = np.array([a.x - tl.x, a.y - tl.y]), np.array([b.x - tl.x, b.y - tl.y])
            la, lb = float(np.hypot(*va)), float(np.hypot(*vb))
            if min(la, lb) < 10 * min(sizes) or max(la, lb) > _MAX_TILT_RATIO * min(la, lb):
                continue
            cosine = abs(float(va @ vb)) / (la * lb)
            if cosine < _MAX_TILT_COSINE:
                # image y points down: a clockwise turn from a to b makes a the top-right
                corners = (tl, a, b) if va[0] * vb[1] - va[1] * vb[0] > 0 else (tl, b, a)
                square = alike and cosine < _MAX_COSINE and max(la, lb) <= _MAX_SIDE_RATIO * min(la, lb)
                candidates.append((cosine, square, corners))
    candidates.sort(key=lambda item: item[0])
    fitted, square, fits = [], [], 0
    for cosine, alike, corners in candidates:
        # fitting costs about 2 ms: a page of several codes could offer dozens of triples
        error = float("inf")
        if fits < _MAX_FITTED and _lined_up(corners):
            fits += 1
            found = _start_poses(corners, _VERSIONS_AROUND)
            error = found[0][0] if found else error
        if error <= _MAX_FIT_ERROR:
            fitted.append((error, corners))
        elif alike:
            square.append((cosine, corners))
    ranked = sorted(fitted, key=lambda item: item[0]) + square
    return [trio for _, trio in ranked[:_MAX_TRIPLES]]


def _along_a_side(finder: Finder, direction: np.ndarray) -> bool:
    """True when ``direction`` (a unit vector) runs along one of the finder square's sides: the
    line through two finders' centres is a grid line, as the squares' sides are."""
    corners = np.array(finder.square)
    sides = np.diff(corners[:3], axis=0)
    cosines = np.abs(sides @ direction) / np.hypot(*sides.T)
    return bool(cosines.max() >= _MIN_SIDE_COSINE)


def _lined_up(corners: tuple[Finder, Finder, Finder]) -> bool:
    """True when every finder has a square and the lines through the centres run along their
    sides, as a code's two sides do."""
    tl, tr, bl = corners
    if any(f.square is None for f in corners):
        return False
    along_top, along_left = np.array([tr.x - tl.x, tr.y - tl.y]), np.array([bl.x - tl.x, bl.y - tl.y])
    along_top, along_left = along_top / np.hypot(*along_top), along_left / np.hypot(*along_left)
    return (_along_a_side(tl, along_top) and _along_a_side(tl, along_left)
            and _along_a_side(tr, along_top) and _along_a_side(bl, along_left))


def _version_guess(corners: tuple[Finder, Finder, Finder]) -> int:
    """The version the finders' spacing implies, measured in their mean module size."""
    tl, tr, bl = corners
    span = (np.hypot(tr.x - tl.x, tr.y - tl.y) + np.hypot(bl.x - tl.x, bl.y - tl.y)) / 2
    module = np.mean([f.module for f in corners])
    return round((span / module + 7 - 17) / 4)  # finder centres are n - 7 modules apart


def _start_poses(corners: tuple[Finder, Finder, Finder], around: int = _VERSIONS_WIDE) -> list[tuple[float, int, np.ndarray, list, list]]:
    """(fit error, version, homography, modules, pixels) for the versions around the finders'
    estimate whose squares fit one plane grid, closest fit first; empty when a finder has no
    square. Under perspective the sizes of the finders against their spacing fix the version
    (a cross-ratio), where their mean size alone can be several versions off."""
    guess = _version_guess(corners)
    fits = []
    for version in range(max(2, guess - around), min(40, guess + around) + 1):
        points = square_points(corners, 17 + 4 * version)
        if points is None:
            return []
        homography = homography_fit(*points)
        if homography is not None:
            fits.append((fit_error(homography, *points), version, homography, *points))
    fits.sort(key=lambda item: item[0])
    return fits


def dark_mode_of(gray: np.ndarray, finders: Iterable[Finder]) -> bool:
    """True when the finders' cores are lighter than their inner rings (a light code on a dark
    screen): the core's centre against the ring two modules out."""
    blurred = cv2.GaussianBlur(gray, (0, 0), 0.7)
    lighter = 0.0
    for f in finders:
        core = cv2.getRectSubPix(blurred, (1, 1), (f.x, f.y))[0, 0]
        ring = [cv2.getRectSubPix(blurred, (1, 1), (f.x + dx * 2 * f.module, f.y + dy * 2 * f.module))[0, 0]
                for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        lighter += float(core) - float(np.mean(ring))
    return lighter > 0


def _template(dark_mode: bool) -> np.ndarray:
    """An alignment pattern's grey levels at ``_MATCH_PX``: dark ring, light ring, dark centre."""
    dark = np.ones((5, 5), np.float32)
    dark[1:4, 1:4] = 0
    dark[2, 2] = 1
    shape = dark if dark_mode else -dark  # on a dark-mode screen the code's dark modules are light
    return cv2.resize(shape, None, fx=_MATCH_PX, fy=_MATCH_PX, interpolation=cv2.INTER_NEAREST)


_TEMPLATES = {False: _template(False), True: _template(True)}


def _peak(scores: np.ndarray) -> tuple[float, float, float]:
    """The best match's place (x, y, sub-pixel by a parabola through its neighbours) and score."""
    _, best, _, (x, y) = cv2.minMaxLoc(scores)

    def offset(lo: float, mid: float, hi: float) -> float:
        curve = lo - 2 * mid + hi
        return 0.0 if curve >= 0 else 0.5 * (lo - hi) / curve

    h, w = scores.shape
    dx = offset(scores[y, x - 1], best, scores[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(scores[y - 1, x], best, scores[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + dx, y + dy, float(best)


def _find_alignment(gray: np.ndarray, homography: np.ndarray, centre: tuple[int, int],
                    dark_mode: bool) -> tuple[tuple[float, float], float]:
    """Where the alignment pattern at module ``centre`` truly is (module coordinates under
    ``homography``), looked for ``_SEARCH`` modules either way, and how well it matched."""
    side = (5 + 2 * _SEARCH) * _MATCH_PX
    x0, y0 = centre[0] - 2 - _SEARCH, centre[1] - 2 - _SEARCH  # the window's first module
    to_modules = np.array([[1 / _MATCH_PX, 0, x0 + 0.5 / _MATCH_PX],
                           [0, 1 / _MATCH_PX, y0 + 0.5 / _MATCH_PX], [0, 0, 1]])
    window = cv2.warpPerspective(gray, homography @ to_modules, (side, side),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    scores = cv2.matchTemplate(window.astype(np.float32), _TEMPLATES[dark_mode], cv2.TM_CCOEFF_NORMED)
    x, y, score = _peak(scores)
    half = 2.5 * _MATCH_PX  # from the template's corner to its centre
    return (x0 + (x + half) / _MATCH_PX, y0 + (y + half) / _MATCH_PX), score


def homography_fit(modules: list[tuple[float, float]], pixels: list[tuple[float, float]]) -> np.ndarray | None:
    """The least-squares homography (h33 = 1) taking ``modules`` to ``pixels`` (4 pairs or more)."""
    src, dst = np.asarray(modules, np.float64), np.asarray(pixels, np.float64)
    x, y, u, v = src[:, 0], src[:, 1], dst[:, 0], dst[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows = np.concatenate([np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], 1),
                           np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], 1)])
    h, _, rank, _ = np.linalg.lstsq(rows, np.concatenate([u, v]), rcond=None)
    return np.append(h, 1.0).reshape(3, 3) if rank == 8 else None


def _refine(gray: np.ndarray, start: np.ndarray, version: int, dark_mode: bool,
            modules: list[tuple[float, float]], pixels: list[tuple[float, float]]) -> Pose:
    """The pose refitted on the version's alignment patterns, ring by ring from the top-left,
    so that each ring is looked for where the rings before it put it. A ring where nothing
    matches ends the search: a wrong version or polarity stops there, cheaply."""
    n = 17 + 4 * version
    modules, pixels = list(modules), list(pixels)  # the finders' points the pose starts from
    homography, scores = start, []
    centres = alignment_centres(version)
    for ring in sorted({max(c) for c in centres}):
        ring_scores = []
        for centre in (c for c in centres if max(c) == ring):
            at, score = _find_alignment(gray, homography, centre, dark_mode)
            ring_scores.append(score)
            if score >= _MIN_MATCH:
                modules.append((centre[0] + 0.5, centre[1] + 0.5))
                pixels.append(tuple(cv2.perspectiveTransform(np.float64([[at]]), homography).reshape(2)))
        scores += ring_scores
        if np.mean(ring_scores) < _MIN_MATCH:
            break
        fitted = homography_fit(modules, pixels) if len(modules) >= 4 else None
        if fitted is not None:
            homography = fitted
    # patterns never looked for count as unmatched
    return Pose(homography, n, dark_mode, float(np.sum(scores)) / max(1, len(centres)))


def locate(gray: np.ndarray, binary: np.ndarray) -> Iterator[Pose]:
    """The likeliest poses of a QR code (version 2 or more) in ``gray``, found as they are asked
    for (the caller stops at the first that reads).

    ``binary`` is ``gray`` binarised (0 or 255, same size), where finder patterns are looked for.
    Where no three finders make a code's corners (glare or a finger over one), two that line up
    are tried as each pair of corners they could be.
    """
    finders = finder_patterns(binary)
    trios = corner_triples(finders)
    for trio in trios:
        yield from poses_of(gray, trio)
    if not trios:
        for pair in corner_pairs(finders):
            yield from pair_poses(gray, pair)


def corner_pairs(finders: list[Finder]) -> list[tuple[Finder, Finder]]:
    """Pairs of finders with squares that could be two corners of one code, most alike first:
    the line through their centres runs along both squares' sides (a side of the code) or
    both squares' diagonals (top-right and bottom-left)."""
    ranked = []
    for a, b in itertools.combinations([f for f in finders if f.square is not None], 2):
        ratio = max(a.module, b.module) / min(a.module, b.module)
        between = np.array([b.x - a.x, b.y - a.y])
        length = float(np.hypot(*between))
        if ratio > _MAX_SIDE_RATIO or length < 10 * min(a.module, b.module):
            continue
        direction = between / length
        if (_along_a_side(a, direction) and _along_a_side(b, direction)) or (
                _along_a_diagonal(a, direction) and _along_a_diagonal(b, direction)):
            ranked.append((ratio, (a, b)))
    ranked.sort(key=lambda item: item[0])
    return [pair for _, pair in ranked[:_MAX_PAIRS]]


def _along_a_diagonal(finder: Finder, direction: np.ndarray) -> bool:
    """True when ``direction`` (a unit vector) runs along one of the finder square's diagonals."""
    corners = np.array(finder.square)
    diagonals = corners[2:] - corners[:2]
    cosines = np.abs(diagonals @ direction) / np.hypot(*diagonals.T)
    return bool(cosines.max() >= _MIN_SIDE_COSINE)


def _with_hidden(a: Finder, b: Finder) -> list[tuple[tuple[Finder, Finder, Finder], Finder]]:
    """Every (top-left, top-right, bottom-left) a pair of finders could be, the third finder put
    where the pair says it is (a code is square: a quarter turn of one side gives the other)."""
    module = (a.module + b.module) / 2
    found = []
    for first, second in ((a, b), (b, a)):
        p, q = complex(first.x, first.y), complex(second.x, second.y)
        # image y points down, so multiplying by 1j turns a quarter clockwise
        for role, where in (("top", p + (q - p) * 1j), ("left", p + (q - p) * -1j),
                            ("diagonal", (p + q) / 2 + (q - (p + q) / 2) * -1j)):
            hidden = Finder(where.real, where.imag, module)
            trio = {"top": (first, second, hidden), "left": (first, hidden, second),
                    "diagonal": (hidden, second, first)}[role]
            found.append((trio, hidden))
    return found


def pair_poses(gray: np.ndarray, pair: tuple[Finder, Finder]) -> list[Pose]:
    """The best-matching poses of a code two of whose corners are these finders.

    Each way the pair can be two corners gives, for the versions its spacing allows, a pose
    through the two squares' eight corners, refined on the alignment patterns as a whole
    code's is; a pose whose code would stick out of the crop is not tried."""
    h, w = gray.shape
    dark = dark_mode_of(gray, pair)
    tried = []
    for trio, hidden in _with_hidden(*pair):
        guess = _version_guess(trio)
        for version in range(max(2, guess - _VERSIONS_AROUND), min(40, guess + _VERSIONS_AROUND) + 1):
            n = 17 + 4 * version
            points = square_points(trio, n, hidden)
            homography = homography_fit(*points) if points is not None else None
            if homography is None:
                continue
            corners = cv2.perspectiveTransform(np.float64([[[0, 0]], [[n, 0]], [[n, n]], [[0, n]]]), homography)
            if (np.maximum(-corners, corners - [w, h]).max() > _OUTSIDE * max(w, h)):
                continue
            tried.append((_refine(gray, homography, version, dark, *points), points))
    tried.sort(key=lambda item: -item[0].match)
    return [_refine(gray, p.homography, (p.size - 17) // 4, dark, *points)
            for p, points in tried[:_POSES_READ] if p.match >= _MIN_MATCH]


def poses_of(gray: np.ndarray, corners: tuple[Finder, Finder, Finder]) -> list[Pose]:
    """The best-matching poses of a code with these top-left, top-right and bottom-left finders.

    The pose starts from the homography through the finders' squares where they fit one grid
    (perspective allowed), else from the affine map through the finders' centres."""
    dark = dark_mode_of(gray, corners)
    starts = [(version, homography, modules, pixels)
              for error, version, homography, modules, pixels in _start_poses(corners)[:2 * _VERSIONS_AROUND + 1]
              if error <= _MAX_FIT_ERROR]
    if not starts:
        guess = _version_guess(corners)
        pixels = [(f.x, f.y) for f in corners]
        for version in range(max(2, guess - _VERSIONS_AROUND), min(40, guess + _VERSIONS_AROUND) + 1):
            n = 17 + 4 * version
            modules = [(3.5, 3.5), (n - 3.5, 3.5), (3.5, n - 3.5)]
            affine = cv2.getAffineTransform(np.float32(modules), np.float32(pixels))
            starts.append((version, np.vstack([affine, [0, 0, 1]]).astype(np.float64), modules, pixels))
    found = [(_refine(gray, homography, version, dark, modules, pixels), modules, pixels)
             for version, homography, modules, pixels in starts]
    found.sort(key=lambda item: -item[0].match)
    # a second pass from the first one's pose: the far rings were looked for with a rougher one
    return [_refine(gray, p.homography, (p.size - 17) // 4, dark, modules, pixels)
            for p, modules, pixels in found[:_POSES_READ] if p.match > 0]


def straighten(gray: np.ndarray, homography: np.ndarray, n: int) -> np.ndarray:
    """The code seen square-on at ``READ_PX`` pixels per module, with ``QUIET`` modules round it."""
    q, side = QUIET * READ_PX, (n + 2 * QUIET) * READ_PX
    # pixel u covers modules (u - q) / READ_PX to (u + 1 - q) / READ_PX: its centre is half a pixel on
    start = (0.5 - q) / READ_PX
    to_modules = np.array([[1 / READ_PX, 0, start], [0, 1 / READ_PX, start], [0, 0, 1]])
    return cv2.warpPerspective(gray, homography @ to_modules, (side, side),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def pose_from_corners(corners: np.ndarray, n: int) -> np.ndarray:
    """The homography from module coordinates to pixels of a grid with these corners (TL, TR, BR, BL)."""
    grid = np.float32([[0, 0], [n, 0], [n, n], [0, n]])
    return cv2.getPerspectiveTransform(grid, np.float32(corners)).astype(np.float64)


def sample_modules(square: np.ndarray, n: int) -> np.ndarray:
    """True where a module's centre is darker than the modules round it (n x n), on a
    straightened code."""
    q = QUIET * READ_PX
    grid = square[q:q + n * READ_PX, q:q + n * READ_PX].astype(np.float32).reshape(n, READ_PX, n, READ_PX)
    inner = slice(READ_PX // 3, READ_PX - READ_PX // 3)  # the centre third: least mixed with neighbours
    centres = grid[:, inner, :, inner].mean(axis=(1, 3))
    level = cv2.GaussianBlur(centres, (0, 0), 2.5, borderType=cv2.BORDER_REFLECT)
    return centres < level


def draw(modules: np.ndarray) -> np.ndarray:
    """A clean picture of a module grid (dark = True), with a quiet zone."""
    n = modules.shape[0]
    image = np.full((n + 2 * QUIET, n + 2 * QUIET), 255, dtype=np.uint8)
    image[QUIET:QUIET + n, QUIET:QUIET + n] = np.where(modules, 0, 255)
    return cv2.resize(image, None, fx=_DRAW_PX, fy=_DRAW_PX, interpolation=cv2.INTER_NEAREST)


_FINDER = np.pad(np.pad(np.ones((3, 3), bool), 1), 1, constant_values=True)  # 7x7: ring, gap, core


def with_finders(modules: np.ndarray) -> np.ndarray:
    """The grid with its three finder patterns and their separators drawn as the standard fixes
    them: they carry no data, and zxing-cpp's pure mode looks for them (glare may hide one)."""
    n = modules.shape[0]
    fixed = modules.copy()
    for x, y in ((0, 0), (n - 8, 0), (0, n - 8)):
        fixed[y:y + 8, x:x + 8] = False  # the separator: one light module round the finder
    for x, y in ((0, 0), (n - 7, 0), (0, n - 7)):
        fixed[y:y + 7, x:x + 7] = _FINDER
    return fixed


def read_drawn(modules: np.ndarray) -> list[str]:
    """What zxing-cpp reads on a clean drawing of ``modules`` in pure mode (valid reads only)."""
    found = zxingcpp.read_barcodes(draw(with_finders(modules)), formats=_QR, is_pure=True, try_rotate=False,
                                   try_downscale=False, try_invert=False)
    return [b.text for b in found if b.valid]


def read_at(images: Iterable[np.ndarray], homography: np.ndarray, n: int, dark_mode: bool | None = None) -> list[str]:
    """What the modules under ``homography`` read as, sampled in each of ``images`` in turn
    (the crop, then a deblurred copy); ``dark_mode`` None tries both polarities."""
    for image in images:
        dark = sample_modules(straighten(image, homography, n), n)
        for modules in ((dark, ~dark) if dark_mode is None else (~dark if dark_mode else dark,)):
            texts = read_drawn(modules)
            if texts:
                return texts
    return []
