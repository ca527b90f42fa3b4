"""chot's own QR locator: finds a dense code that zxing-cpp's detector loses, and reads it by its pose.

zxing-cpp finds a QR code by tracing its three finder patterns in its own binarisation. On a
dense code at 2.5-4 camera pixels per module, under glare, on a dark-mode screen or through a
webcam's JPEG, that tracing fails even where the modules can still be told apart. Here:

1. finder patterns are nested contours (a square, a ring, a core) in the stage's own
   binarisation of the crop, each giving its centre, its module size and the corners of the
   square through the middle of its ring (``scanner/qr/finders.py``);
2. three whose squares fit one plane grid are the code's corners, however far the code is
   tilted; else three of like size at a right angle. Top-left is the corner, top-right and
   bottom-left are told apart by the direction of the turn. Where no three do, two whose
   squares line up are tried as each pair of corners they could be;
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
retries failed (``scanner/qr/decode.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

from scanner.qr.finders import Finder, dark_mode_of, finder_patterns, runs_along

_QR = zxingcpp.BarcodeFormat.QRCode
_MATCH_PX = 4  # pixels per module where alignment patterns are matched
_SEARCH = 2  # modules either way round the predicted place of an alignment pattern
_MIN_MATCH = 0.5  # the best of a window's correlations: noise and data modules reach about 0.4
_MAX_TRIPLES = 3  # corner triples tried per crop, squarest first
_MAX_COSINE = 0.5  # the top-left corner's angle: 60-120 degrees (tilt and perspective)
_MAX_SIDE_RATIO = 1.6  # top and left sides, and the finders' module sizes, this alike
_MAX_TILT_COSINE = 0.85  # a corner seen at 65 degrees of tilt may look 30-150 degrees wide
_MAX_TILT_RATIO = 2.8  # sides and finder sizes this unlike when the finders' squares fit a grid
_MAX_FIT_ERROR = 0.35  # modules: the finders' twelve square corners against one homography
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
    return [trio for trio, _ in _ranked_triples(finders)]


_Fit = tuple[float, int, np.ndarray, list, list]  # fit error, version, homography, modules, pixels


def _ranked_triples(finders: list[Finder]) -> list[tuple[tuple[Finder, Finder, Finder], list[_Fit]]]:
    """``corner_triples`` with the grid fits made while ranking them, for ``poses_of`` to reuse."""
    candidates = []
    for trio in itertools.combinations(finders, 3):
        sizes = [f.module for f in trio]
        if max(sizes) > _MAX_TILT_RATIO * min(sizes):
            continue
        alike_sizes = max(sizes) <= _MAX_SIDE_RATIO * min(sizes)
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
                near_square = alike_sizes and cosine < _MAX_COSINE and max(la, lb) <= _MAX_SIDE_RATIO * min(la, lb)
                candidates.append((cosine, near_square, corners))
    candidates.sort(key=lambda item: item[0])
    fitted, squarest, fitted_count = [], [], 0
    for cosine, near_square, corners in candidates:
        # a fit per version per triple: a page of several codes could offer dozens of triples
        fits: list[_Fit] = []
        if fitted_count < _MAX_FITTED and _lined_up(corners):
            fitted_count += 1
            fits = _start_poses(corners, _VERSIONS_AROUND)
        if fits and fits[0][0] <= _MAX_FIT_ERROR:
            fitted.append((fits[0][0], corners, fits))
        elif near_square:
            squarest.append((cosine, corners, fits))
    ranked = sorted(fitted, key=lambda item: item[0]) + squarest
    return [(trio, fits) for _, trio, fits in ranked[:_MAX_TRIPLES]]


def _lined_up(corners: tuple[Finder, Finder, Finder]) -> bool:
    """True when every finder has a square and the lines through the centres run along their
    sides, as a code's two sides do."""
    tl, tr, bl = corners
    if any(f.square is None for f in corners):
        return False
    along_top, along_left = np.array([tr.x - tl.x, tr.y - tl.y]), np.array([bl.x - tl.x, bl.y - tl.y])
    along_top, along_left = along_top / np.hypot(*along_top), along_left / np.hypot(*along_left)
    return (runs_along(tl, along_top) and runs_along(tl, along_left)
            and runs_along(tr, along_top) and runs_along(bl, along_left))


def _version_guess(corners: tuple[Finder, Finder, Finder]) -> int:
    """The version the finders' spacing implies, measured in their mean module size."""
    tl, tr, bl = corners
    span = (np.hypot(tr.x - tl.x, tr.y - tl.y) + np.hypot(bl.x - tl.x, bl.y - tl.y)) / 2
    module = np.mean([f.module for f in corners])
    return round((span / module + 7 - 17) / 4)  # finder centres are n - 7 modules apart


def _versions_round(guess: int, around: int) -> range:
    """The versions (2-40: version 1 has no alignment pattern) within ``around`` of ``guess``."""
    return range(max(2, guess - around), min(40, guess + around) + 1)


def _start_poses(corners: tuple[Finder, Finder, Finder], around: int = _VERSIONS_WIDE,
                 known: Iterable[_Fit] = ()) -> list[_Fit]:
    """The fits of the finders' squares to one plane grid for the versions around the finders'
    estimate, closest fit first (``known`` ones are not fitted again); empty when a finder has
    no square. Under perspective the sizes of the finders against their spacing fix the version
    (a cross-ratio), where their mean size alone can be several versions off."""
    fits = list(known)
    done = {fit[1] for fit in fits}
    for version in _versions_round(_version_guess(corners), around):
        if version in done:
            continue
        points = square_points(corners, 17 + 4 * version)
        if points is None:
            return []
        homography = homography_fit(*points)
        if homography is not None:
            fits.append((fit_error(homography, *points), version, homography, *points))
    fits.sort(key=lambda item: item[0])
    return fits


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
    ranked = _ranked_triples(finders)
    for trio, fits in ranked:
        yield from poses_of(gray, trio, fits)
    if not ranked:
        for pair in corner_pairs(finders):
            yield from pair_poses(gray, pair)


def poses_of(gray: np.ndarray, corners: tuple[Finder, Finder, Finder], fits: Iterable[_Fit] = ()) -> list[Pose]:
    """The best-matching poses of a code with these top-left, top-right and bottom-left finders.

    The pose starts from the homography through the finders' squares where they fit one grid
    (perspective allowed; ``fits`` already made are reused), else from the affine map through
    the finders' centres."""
    starts = [(version, homography, modules, pixels)
              for error, version, homography, modules, pixels in
              _start_poses(corners, _VERSIONS_WIDE, fits)[:2 * _VERSIONS_AROUND + 1]
              if error <= _MAX_FIT_ERROR]
    if not starts:
        pixels = [(f.x, f.y) for f in corners]
        for version in _versions_round(_version_guess(corners), _VERSIONS_AROUND):
            n = 17 + 4 * version
            modules = [(3.5, 3.5), (n - 3.5, 3.5), (3.5, n - 3.5)]
            affine = cv2.getAffineTransform(np.float32(modules), np.float32(pixels))
            starts.append((version, np.vstack([affine, [0, 0, 1]]).astype(np.float64), modules, pixels))
    return _best_poses(gray, starts, dark_mode_of(gray, corners), 0.0)


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
        if any(runs_along(a, direction, diagonal) and runs_along(b, direction, diagonal) for diagonal in (False, True)):
            ranked.append((ratio, (a, b)))
    ranked.sort(key=lambda item: item[0])
    return [pair for _, pair in ranked[:_MAX_PAIRS]]


def _with_hidden(a: Finder, b: Finder) -> list[tuple[tuple[Finder, Finder, Finder], Finder]]:
    """Every (top-left, top-right, bottom-left) a pair of finders could be, the third finder put
    where the pair says it is (a code is square: a quarter turn of one side gives the other)."""
    module = (a.module + b.module) / 2
    found = []
    for first, second in ((a, b), (b, a)):
        p, q = complex(first.x, first.y), complex(second.x, second.y)
        middle = (p + q) / 2
        # image y points down, so multiplying by 1j turns a quarter clockwise
        top, left, diagonal = p + (q - p) * 1j, p + (q - p) * -1j, middle + (q - middle) * -1j
        for trio, where in (((first, second, None), top), ((first, None, second), left),
                            ((None, second, first), diagonal)):
            hidden = Finder(where.real, where.imag, module)
            found.append((tuple(hidden if f is None else f for f in trio), hidden))
    return found


def pair_poses(gray: np.ndarray, pair: tuple[Finder, Finder]) -> list[Pose]:
    """The best-matching poses of a code two of whose corners are these finders.

    Each way the pair can be two corners gives, for the versions its spacing allows, a pose
    through the two squares' eight corners, refined on the alignment patterns as a whole
    code's is; a pose whose code would stick out of the crop is not tried."""
    h, w = gray.shape
    starts = []
    for trio, hidden in _with_hidden(*pair):
        for version in _versions_round(_version_guess(trio), _VERSIONS_AROUND):
            n = 17 + 4 * version
            points = square_points(trio, n, hidden)
            homography = homography_fit(*points) if points is not None else None
            if homography is None:
                continue
            corners = Pose(homography, n, False, 0.0).corners()
            if np.maximum(-corners, corners - [w, h]).max() > _OUTSIDE * max(w, h):
                continue
            starts.append((version, homography, *points))
    return _best_poses(gray, starts, dark_mode_of(gray, pair), _MIN_MATCH)


def _best_poses(gray: np.ndarray, starts: list[tuple[int, np.ndarray, list, list]], dark_mode: bool,
                least: float) -> list[Pose]:
    """Each start (version, homography, modules, pixels) refined on the alignment patterns; the
    best-matching ``_POSES_READ`` that match above 0 and at least ``least`` are refined once
    more from their own pose (the far rings were looked for with a rougher one)."""
    tried = [(_refine(gray, homography, version, dark_mode, modules, pixels), modules, pixels)
             for version, homography, modules, pixels in starts]
    tried.sort(key=lambda item: -item[0].match)
    return [_refine(gray, pose.homography, (pose.size - 17) // 4, dark_mode, modules, pixels)
            for pose, modules, pixels in tried[:_POSES_READ] if pose.match > 0 and pose.match >= least]


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
