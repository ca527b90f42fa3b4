"""chot's own QR locator: finds a dense code that zxing-cpp's detector loses, and reads it by its pose.

zxing-cpp finds a QR code by tracing its three finder patterns in its own binarisation. On a
dense code at 2.5-4 camera pixels per module, under glare, on a dark-mode screen or through a
webcam's JPEG, that tracing fails even where the modules can still be told apart. Here:

1. finder patterns are nested contours (a square, a ring, a core) in the stage's own
   binarisation of the crop, each giving its centre and module size;
2. three of like size at a right angle are the code's corners: top-left at the right angle,
   top-right and bottom-left told apart by the direction of the turn;
3. for each plausible version the pose starts as the affine map through the three centres and is
   refined ring by ring outwards from the top-left on the alignment patterns that version has
   (ISO/IEC 18004, Annex E), each found by template matching near where the pose puts it; the
   versions whose alignment patterns match best win, and dark mode is read off the finders;
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
from dataclasses import dataclass

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
_VERSIONS_AROUND = 2  # versions tried either side of the finders' estimate (2% in module size)
_POSES_READ = 2  # best-matching (version, polarity) poses sampled and decoded
READ_PX = 6  # pixels per module of a straightened code
QUIET = 4  # modules of quiet zone kept round a straightened or drawn code
_DRAW_PX = 4  # pixels per module of the clean drawing


@dataclass(frozen=True)
class Finder:
    """A finder-pattern candidate: its centre in crop pixels and its module size."""

    x: float
    y: float
    module: float


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
    found: list[tuple[float, Finder]] = []
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
                found.append((outer_area, Finder(m["m10"] / m["m00"], m["m01"] / m["m00"], float(module))))
    found.sort(key=lambda item: -item[0])
    kept: list[Finder] = []
    for _, f in found:  # one pattern seen as a region and as a hole, or its quiet zone round it
        if all(np.hypot(f.x - k.x, f.y - k.y) > 2 * max(f.module, k.module) for k in kept):
            kept.append(f)
    return kept[:_MAX_FINDERS]


def corner_triples(finders: list[Finder]) -> list[tuple[Finder, Finder, Finder]]:
    """(top-left, top-right, bottom-left) triples that could be one code's finders, squarest first."""
    ranked = []
    for trio in itertools.combinations(finders, 3):
        sizes = [f.module for f in trio]
        if max(sizes) > _MAX_SIDE_RATIO * min(sizes):
            continue
        for i in range(3):
            tl = trio[i]
            a, b = (f for j, f in enumerate(trio) if j != i)
            va, vb = np.array([a.x - tl.x, a.y - tl.y]), np.array([b.x - tl.x, b.y - tl.y])
            la, lb = float(np.hypot(*va)), float(np.hypot(*vb))
            if min(la, lb) < 10 * tl.module or max(la, lb) > _MAX_SIDE_RATIO * min(la, lb):
                continue
            cosine = abs(float(va @ vb)) / (la * lb)
            if cosine < _MAX_COSINE:
                # image y points down: a clockwise turn from a to b makes a the top-right
                tr, bl = (a, b) if va[0] * vb[1] - va[1] * vb[0] > 0 else (b, a)
                ranked.append((cosine, (tl, tr, bl)))
    ranked.sort(key=lambda item: item[0])
    return [trio for _, trio in ranked[:_MAX_TRIPLES]]


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
            corners: tuple[Finder, Finder, Finder]) -> Pose:
    """The pose refitted on the version's alignment patterns, ring by ring from the top-left,
    so that each ring is looked for where the rings before it put it. A ring where nothing
    matches ends the search: a wrong version or polarity stops there, cheaply."""
    n = 17 + 4 * version
    modules = [(3.5, 3.5), (n - 3.5, 3.5), (3.5, n - 3.5)]
    pixels = [(f.x, f.y) for f in corners]
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
    A code with a finder hidden (glare, a finger) is not found: guessing where the third finder
    lies from two, under perspective, cost 15-40 ms a crop here and read 2 more frames in 900.
    """
    for trio in corner_triples(finder_patterns(binary)):
        yield from poses_of(gray, trio)


def poses_of(gray: np.ndarray, corners: tuple[Finder, Finder, Finder]) -> list[Pose]:
    """The best-matching poses of a code with these top-left, top-right and bottom-left finders."""
    tl, tr, bl = corners
    span = (np.hypot(tr.x - tl.x, tr.y - tl.y) + np.hypot(bl.x - tl.x, bl.y - tl.y)) / 2
    module = np.mean([f.module for f in corners])
    guess = round((span / module + 7 - 17) / 4)  # finder centres are n - 7 modules apart
    dark = dark_mode_of(gray, corners)
    found = []
    for version in range(max(2, guess - _VERSIONS_AROUND), min(40, guess + _VERSIONS_AROUND) + 1):
        n = 17 + 4 * version
        affine = cv2.getAffineTransform(np.float32([[3.5, 3.5], [n - 3.5, 3.5], [3.5, n - 3.5]]),
                                        np.float32([[tl.x, tl.y], [tr.x, tr.y], [bl.x, bl.y]]))
        found.append(_refine(gray, np.vstack([affine, [0, 0, 1]]).astype(np.float64), version, dark, corners))
    found.sort(key=lambda p: -p.match)
    # a second pass from the first one's pose: the far rings were looked for with a rougher one
    return [_refine(gray, p.homography, (p.size - 17) // 4, dark, corners)
            for p in found[:_POSES_READ] if p.match > 0]


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
