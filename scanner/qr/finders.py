"""Finder-pattern candidates in a binarised crop: where each is, its module size, its square.

The three finder patterns of a QR code (ISO/IEC 18004, 6.3.3) are a dark 7x7 square ring, a
light 5x5 ring and a dark 3x3 core. In the stage's own binarisation each shows as contours nested
three deep; their areas give the module size and their sides, fitted as lines, the corners of
the square through the middle of the ring (modules 0.5 to 6.5 of the pattern). ``scanner.qr.locate``
assembles a code's corners from them and finds its pose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import cv2
import numpy as np

_MAX_FINDERS = 10  # largest candidates kept: a code's finders are its largest nested squares
_MIN_SIDE_COSINE = 0.94  # within 20 degrees: perspective bends a grid line's image that little here


@dataclass(frozen=True)
class Finder:
    """A finder-pattern candidate: its centre in crop pixels, its module size and, where its edges
    are straight enough, the corners of the square through the middle of its ring (6 modules a
    side, in the order the ring's outer edge runs)."""

    x: float
    y: float
    module: float
    square: tuple[tuple[float, float], ...] | None = None


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


def runs_along(finder: Finder, direction: np.ndarray, diagonal: bool = False) -> bool:
    """True when ``direction`` (a unit vector) runs along one of the finder square's sides (or
    diagonals): a line through two finders' centres is a grid line, as their squares' sides are."""
    corners = np.array(finder.square)
    lines = corners[2:] - corners[:2] if diagonal else np.diff(corners[:3], axis=0)
    cosines = np.abs(lines @ direction) / np.hypot(*lines.T)
    return bool(cosines.max() >= _MIN_SIDE_COSINE)


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
