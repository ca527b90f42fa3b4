"""Synthetic photographs of printed QR codes in the awkward cases a checkpoint camera meets.

Each kind is one function taking the code's text and a ``numpy.random.Generator`` (a seed gives
the same image on every machine) and returning a grey uint8 image:

- ``small_code_frame``: a small printed code somewhere in a large 1920x1080 frame (1.8-3.2 camera
  pixels per module), as when the paper is held far from the camera;
- ``low_res_photo``: a small, soft, JPEG-compressed photo (100-320 pixels a side) in which the
  code has 1.5-3 pixels per module;
- ``curved_code_frame``: a code printed on a bottle or a can, wrapped round a cylinder;
- ``tilted_code_frame``: a code seen at 45-65 degrees from its normal;
- ``inverted`` and ``mirrored``: light-on-dark and left-right flipped copies of any image, as
  dark-mode apps and front cameras (or a code seen through glass) give;
- ``rephotographed``: any image filmed again, tilted, smaller, soft, noisy and JPEG-compressed
  (a photo of a photo: a certificate's picture shown on a phone and held to the camera).

The optics are those of ``phone_screen``: defocus, sensor noise, a cluttered background.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from scanner import phone_screen

_PX = 8  # source raster pixels per module
_QUIET = 4  # modules of quiet zone, as the QR specification asks
KINDS = ("small", "lowres", "curved", "tilted")


def inverted(gray: np.ndarray) -> np.ndarray:
    """The image light for dark: a light-on-dark code from a dark-on-light one."""
    return cv2.bitwise_not(gray)


def mirrored(gray: np.ndarray) -> np.ndarray:
    """The image flipped left to right (a contiguous copy)."""
    return np.ascontiguousarray(gray[:, ::-1])


def rephotographed(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image filmed again: shown on a screen or printed, seen by another camera at 15-35
    degrees, defocused, noisy and JPEG-compressed (a photo of a photo). Its long side comes out
    70-100% of its own or of 320 pixels, whichever is more: a camera's frame (640x480 at least)
    holds a small picture at a third of its width or more."""
    h, w = gray.shape
    scale = rng.uniform(0.7, 1.0) * max(1.0, 320 / max(h, w))
    size = (max(16, int(w * scale)), max(16, int(h * scale)))
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    shrink = rng.uniform(0.12, 0.3)  # one side further away: 15-35 degrees of tilt
    side = int(rng.integers(4))
    far = np.float32([[0, 0], [1, 0], [1, 1], [0, 1]])
    near = far.copy()
    a, b = side, (side + 1) % 4  # the far side's two corners move towards each other
    near[a] = far[a] + (far[b] - far[a]) * shrink / 2
    near[b] = far[b] + (far[a] - far[b]) * shrink / 2
    jitter = rng.uniform(-0.03, 0.03, (4, 2)).astype(np.float32)
    target = (0.05 + 0.9 * (near + jitter)) * np.float32(size)
    warp = cv2.getPerspectiveTransform(corners, target.astype(np.float32))
    scene = cv2.warpPerspective(gray.astype(np.float32) / 255.0, warp, size, flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_REPLICATE)
    return _photograph(scene, rng, (0.4, 1.1), (1.5, 4.0), (45, 85))


def scene_text(rng: np.random.Generator) -> str:
    """A code's content: a URL or message (versions 2-6) or an HC1 payload (versions 6-19)."""
    if rng.random() < 0.5:
        return phone_screen.hc1_like_payload(rng, int(rng.integers(100, 601)))
    words = "".join(chr(int(c)) for c in rng.integers(97, 123, int(rng.integers(12, 90))))
    return f"https://example.vn/c/{words}"


def _code_raster(text: str) -> np.ndarray:
    """The printed code with its quiet zone as a float raster: paper 1, ink 0 (level M)."""
    modules = phone_screen.qr_modules(text, error="m")
    padded = np.pad(modules, _QUIET, constant_values=False)
    return np.kron(1.0 - padded.astype(np.float32), np.ones((_PX, _PX), np.float32))


def _photograph(scene: np.ndarray, rng: np.random.Generator, defocus: tuple[float, float],
                noise: tuple[float, float], jpeg: tuple[int, int] | None = None) -> np.ndarray:
    """Camera optics on a 0..1 scene: uneven light, defocus, noise, quantisation, maybe JPEG."""
    h, w = scene.shape
    light = cv2.resize(rng.uniform(0.55, 1.0, (3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    scene = scene * light * rng.uniform(0.75, 0.95) + rng.uniform(0.0, 0.08)
    sigma = rng.uniform(*defocus)
    if sigma > 0.05:
        scene = cv2.GaussianBlur(scene, (0, 0), sigma)
    levels = scene * 255.0 + rng.standard_normal(scene.shape).astype(np.float32) * rng.uniform(*noise)
    image = np.clip(levels, 0, 255).astype(np.uint8)
    if jpeg is not None:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(jpeg[0], jpeg[1] + 1))])
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else image
    return image


def _composite(raster: np.ndarray, homography: np.ndarray, frame: tuple[int, int],
               rng: np.random.Generator) -> np.ndarray:
    """The raster warped by ``homography`` onto a cluttered background of ``frame`` (w, h), 0..1."""
    scene = _ground(frame, rng)
    warped = cv2.warpPerspective(raster, homography, frame, flags=cv2.INTER_AREA, borderValue=0.0)
    mask = cv2.warpPerspective(np.ones_like(raster), homography, frame, flags=cv2.INTER_LINEAR, borderValue=0.0)
    return scene * (1.0 - mask) + warped * mask


def _ground(frame: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """What is behind the code: the phone frames' cluttered scene, or a smooth one in a small photo."""
    if min(frame) >= 320:
        return phone_screen._background(frame, rng)  # noqa: SLF001 -- the same scenes as the phone frames
    small = rng.uniform(0.1, 0.7, size=(3, 3)).astype(np.float32)
    return cv2.resize(small, frame, interpolation=cv2.INTER_CUBIC)


def _similarity(raster_side: int, px_per_module: float, angle: float, centre: tuple[float, float]) -> np.ndarray:
    """Raster to frame: scale to ``px_per_module``, rotate by ``angle``, centre at ``centre``."""
    s = px_per_module / _PX
    c, d = s * math.cos(angle), s * math.sin(angle)
    half = raster_side / 2
    return np.array([[c, -d, centre[0] - c * half + d * half], [d, c, centre[1] - d * half - c * half], [0, 0, 1]])


def small_code_frame(text: str, rng: np.random.Generator, size: tuple[int, int] = (1920, 1080)) -> np.ndarray:
    """A small printed code at 1.8-3.2 camera pixels per module in a large frame."""
    raster = _code_raster(text)
    px = rng.uniform(1.8, 3.2)
    side = raster.shape[0] * px / _PX
    width, height = size
    centre = (rng.uniform(side, width - side), rng.uniform(side, height - side))
    homography = _similarity(raster.shape[0], px, rng.uniform(-0.6, 0.6), centre)
    return _photograph(_composite(raster, homography, size, rng), rng, (0.3, 0.8), (1.5, 4.0))


def low_res_photo(text: str, rng: np.random.Generator) -> np.ndarray:
    """A small soft photo whose code has 1.5-3 pixels per module, often JPEG-compressed."""
    raster = _code_raster(text)
    modules = raster.shape[0] // _PX
    px = rng.uniform(1.5, 3.0)
    side = int(modules * px * rng.uniform(1.1, 1.5))
    side = max(100, min(320, side))
    px = min(px, side / (modules * 1.05))
    homography = _similarity(raster.shape[0], px, rng.uniform(-0.3, 0.3), (side / 2, side / 2))
    return _photograph(_composite(raster, homography, (side, side), rng), rng, (0.3, 0.7), (1.0, 3.0), (50, 92))


def curved_code_frame(text: str, rng: np.random.Generator, size: tuple[int, int] = phone_screen.VGA) -> np.ndarray:
    """A code printed on a cylinder (bottle, can), its axis upright, seen from the front.

    The cylinder's radius is 0.6-1.5 times the code's width, so the code wraps 40-110 degrees
    round it: modules shrink towards the sides as the surface turns away.
    """
    raster = _code_raster(text)
    side = raster.shape[0]
    width, height = size
    px = rng.uniform(3.0, 5.0)
    code_w = side * px / _PX
    fit = min(1.0, 0.9 * min(width, height) / code_w)
    px, code_w = px * fit, code_w * fit
    radius = code_w * rng.uniform(0.6, 1.5)
    cx, cy = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    offset = np.clip((xs - cx) / radius, -1.0, 1.0)
    arc = np.arcsin(offset) * radius  # distance along the surface from the line facing the camera
    depth = radius * (1.0 - np.sqrt(1.0 - offset * offset))  # how far the surface has turned away
    grow = 1.0 + depth / (6.0 * code_w)  # further is smaller: a mild perspective
    scale = _PX / px
    map_x = (arc * grow * scale + side / 2).astype(np.float32)
    map_y = ((ys - cy) * grow * scale + side / 2).astype(np.float32)
    map_x[np.abs(xs - cx) >= radius] = -1.0  # beyond the cylinder's silhouette
    label = cv2.remap(raster, map_x, map_y, cv2.INTER_AREA, borderValue=-1.0)
    scene = _ground(size, rng)
    on = label >= 0.0
    shade = np.sqrt(np.clip(1.0 - offset * offset, 0.0, 1.0)) * 0.5 + 0.5  # the turning side is lit less
    scene[on] = (label * shade)[on]
    return _photograph(scene, rng, (0.3, 0.9), (1.5, 4.0))


def tilted_code_frame(text: str, rng: np.random.Generator, size: tuple[int, int] = phone_screen.VGA) -> np.ndarray:
    """A code seen at 45-65 degrees from its normal, through a pinhole camera."""
    raster = _code_raster(text)
    side = raster.shape[0]
    width, height = size
    tilt = math.radians(rng.uniform(45, 65))
    axis = rng.uniform(0, math.pi)
    roll = rng.uniform(-math.pi, math.pi)
    ux, uy = math.cos(axis), math.sin(axis)  # tilt about this in-plane axis (Rodrigues' formula)
    k = np.array([[0, 0, uy], [0, 0, -ux], [-uy, ux, 0]])
    rotation = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * (k @ k)
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    rotation = rotation @ rz
    focal = 1.1 * width
    px = rng.uniform(4.0, 6.0)  # at the centre, across the tilt axis it is cos(tilt) of this
    distance = focal * _PX / px
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float64)
    world = np.c_[corners - side / 2, np.zeros(4)] @ rotation.T + [0, 0, distance]
    image = focal * world[:, :2] / world[:, 2:3]
    lo, hi = image.min(axis=0), image.max(axis=0)
    fit = min(1.0, 0.92 * width / (hi[0] - lo[0]), 0.92 * height / (hi[1] - lo[1]))
    image = (image - (lo + hi) / 2) * fit + [width / 2, height / 2]
    homography = cv2.getPerspectiveTransform(corners.astype(np.float32), image.astype(np.float32))
    return _photograph(_composite(raster, homography, size, rng), rng, (0.2, 0.7), (1.5, 3.5))


RENDERERS = {"small": small_code_frame, "lowres": low_res_photo, "curved": curved_code_frame,
             "tilted": tilted_code_frame}


def render_scene(kind: str, text: str, rng: np.random.Generator) -> np.ndarray:
    """One image of ``kind`` (one of ``KINDS``) showing ``text``."""
    try:
        renderer = RENDERERS[kind]
    except KeyError:
        raise phone_screen.PhoneScreenError(f"unknown scene {kind!r}; choose one of {list(KINDS)}") from None
    return renderer(text, rng)
