"""Synthetic camera frames of a QR code shown on a phone screen, for tests, benchmarks and the demo.

A frame is rendered the way the camera sees it: the code's module grid on a lit screen inside a
phone body, held at an angle in front of a cluttered background, then defocus and motion blur,
exposure (dim, low contrast), glare on the glass, moiré from the screen's pixel grid, and sensor
noise. Every random choice comes from the ``numpy.random.Generator`` passed in, so a seed gives
the same frame on every machine.

``render_varied_frame`` adds the variety of the field on top (a ``Look``): several screen models
(LCD, OLED, an old dim LCD) and camera models (Pi camera, a JPEG-compressing USB webcam with a
low-resolution sensor, a sharpening HQ camera), the phone in dark mode (a light code on a dark
screen), rolling shutter, JPEG artefacts, and reflections of a face or a ceiling light on the glass.
Without a ``Look`` the frames are those of the original generator, draw for draw.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import segno

logger = logging.getLogger(__name__)

# Camera resolutions the scanner supports; dense codes need the first.
HD = (1280, 720)
VGA = (640, 480)

_SOURCE_PX_PER_MODULE = 6  # source raster of the phone; the camera sees 2.5-4 px per module
_OVERSAMPLE = 2  # render at twice the camera size, then area-average: no aliasing of the grid
_BODY = -1.0  # marks the phone's unlit body on the raster (the screen runs 0..1)


class PhoneScreenError(ValueError):
    """A phone-screen frame cannot be rendered from these arguments."""


@dataclass(frozen=True)
class Difficulty:
    """Ranges that random scenes are drawn from (each a (low, high) pair)."""

    px_per_module: tuple[float, float]
    tilt_deg: tuple[float, float]  # out-of-plane tilt of the phone, each axis
    roll_deg: tuple[float, float]  # in-plane rotation
    defocus_px: tuple[float, float]  # Gaussian sigma of the defocus blur, camera pixels
    motion_px: tuple[float, float]  # length of the motion blur streak, camera pixels
    white: tuple[float, float]  # camera level of the lit screen's white
    contrast: tuple[float, float]  # (white - black) / white on the screen
    glare: tuple[float, float]  # peak added level of a reflection on the glass
    moire: tuple[float, float]  # relative amplitude of the screen-grid beat pattern
    noise: tuple[float, float]  # sensor read-noise sigma, camera levels


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        px_per_module=(3.5, 5.0), tilt_deg=(-10, 10), roll_deg=(-10, 10), defocus_px=(0.0, 0.5),
        motion_px=(0.0, 0.5), white=(190, 240), contrast=(0.75, 0.9), glare=(0, 0),
        moire=(0.0, 0.02), noise=(1.0, 2.0)),
    "medium": Difficulty(
        px_per_module=(3.0, 4.0), tilt_deg=(-20, 20), roll_deg=(-25, 25), defocus_px=(0.3, 0.9),
        motion_px=(0.0, 1.5), white=(140, 220), contrast=(0.55, 0.85), glare=(0, 60),
        moire=(0.0, 0.05), noise=(1.5, 3.5)),
    "hard": Difficulty(
        px_per_module=(2.5, 4.0), tilt_deg=(-30, 30), roll_deg=(-40, 40), defocus_px=(0.5, 1.3),
        motion_px=(0.0, 2.5), white=(90, 200), contrast=(0.35, 0.75), glare=(20, 120),
        moire=(0.02, 0.1), noise=(2.0, 5.0)),
}


@dataclass(frozen=True)
class ScreenModel:
    """How a phone's display shows the code."""

    name: str
    black: float  # the screen's black as a share of the black the difficulty draws (OLED: near 0)
    moire: float  # factor on the difficulty's moiré amplitude
    moire_period: tuple[float, float]  # camera pixels per beat of the pixel grid against the sensor


@dataclass(frozen=True)
class CameraModel:
    """How a camera turns the scene into a frame, beyond the optics the difficulty draws."""

    name: str
    sensor: tuple[float, float]  # sensor resolution as a share of the frame's (below 1: upscaled)
    noise: float  # factor on the difficulty's read noise
    jpeg: tuple[int, int] | None  # JPEG quality range of the stream, None for raw frames
    sharpen: tuple[float, float]  # unsharp-mask amount the camera applies (halos round edges)
    shutter_skew: tuple[float, float]  # rolling shutter: a moving phone's shear, px across the frame


SCREENS: dict[str, ScreenModel] = {
    "lcd": ScreenModel("lcd", black=1.0, moire=1.0, moire_period=(4.0, 14.0)),
    "oled": ScreenModel("oled", black=0.3, moire=1.5, moire_period=(2.5, 8.0)),  # pentile grid
    "old-lcd": ScreenModel("old-lcd", black=1.15, moire=0.7, moire_period=(6.0, 20.0)),
}
CAMERAS: dict[str, CameraModel] = {
    "pi-camera-v2": CameraModel("pi-camera-v2", sensor=(1.0, 1.0), noise=1.0, jpeg=None,
                                sharpen=(0.0, 0.3), shutter_skew=(0.0, 6.0)),
    "usb-webcam": CameraModel("usb-webcam", sensor=(0.6, 0.85), noise=1.4, jpeg=(45, 85),
                              sharpen=(0.3, 0.8), shutter_skew=(0.0, 12.0)),
    "pi-hq": CameraModel("pi-hq", sensor=(1.0, 1.0), noise=0.7, jpeg=(80, 95),
                         sharpen=(0.5, 1.2), shutter_skew=(0.0, 4.0)),
}
REFLECTIONS = ("none", "face", "ceiling-light")


@dataclass(frozen=True)
class Look:
    """The screen, the camera, dark mode and what the glass reflects, for one varied frame."""

    screen: ScreenModel
    camera: CameraModel
    dark_mode: bool = False
    reflection: str = "none"

    def __post_init__(self) -> None:
        if self.reflection not in REFLECTIONS:
            raise PhoneScreenError(f"unknown reflection {self.reflection!r}; choose one of {list(REFLECTIONS)}")

    @property
    def name(self) -> str:
        return f"{self.screen.name}/{self.camera.name}/{'dark' if self.dark_mode else 'light'}/{self.reflection}"


def random_look(rng: np.random.Generator, dark_mode: bool | None = None) -> Look:
    """A screen, camera, mode and reflection drawn at random (dark mode a quarter of the time)."""
    screen = SCREENS[sorted(SCREENS)[int(rng.integers(len(SCREENS)))]]
    camera = CAMERAS[sorted(CAMERAS)[int(rng.integers(len(CAMERAS)))]]
    dark = bool(rng.random() < 0.25) if dark_mode is None else dark_mode
    reflection = REFLECTIONS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    return Look(screen, camera, dark, reflection)


def qr_modules(payload: str | bytes, error: str = "q") -> np.ndarray:
    """The module grid of a QR code for ``payload`` (True = dark), without a quiet zone."""
    try:
        qr = segno.make_qr(payload, error=error, boost_error=False)
    except ValueError as err:  # too long for any QR version, or a bad error level
        raise PhoneScreenError(f"cannot encode the payload as a QR code: {err}") from None
    return np.asarray(qr.matrix, dtype=bool)


def hc1_like_payload(rng: np.random.Generator, length: int = 600) -> str:
    """A realistic ``HC1:`` string of about ``length`` characters: Base45 of random bytes.

    Compressed, signed certificates are close to random bytes, so the QR code has the same mode,
    version and density as a real one.
    """
    from verifier.base45 import b45encode  # the project's own encoder, as real payloads use

    size = max(2, (length - 4) * 2 // 3)
    text = b45encode(rng.bytes(size))
    if isinstance(text, bytes):
        text = text.decode("ascii")
    return "HC1:" + text


@dataclass(frozen=True)
class Scene:
    """A rendered frame and the truth about its code, for measuring readers against it."""

    frame: np.ndarray  # grey HxW uint8
    corners: np.ndarray  # 4x2 float: the module grid's corners in frame pixels (TL, TR, BR, BL as drawn)
    modules: np.ndarray  # the module grid (True = dark as drawn; dark mode shows it inverted)
    dark_mode: bool = False


def render_phone_frame(
    code: str | bytes | np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = HD,
    difficulty: str | Difficulty = "hard",
) -> np.ndarray:
    """A grey camera frame (HxW uint8) of ``code`` on a phone screen; ``size`` is (width, height).

    ``code`` is a payload (encoded at level Q) or a ready module grid (True = dark).
    """
    return render_phone_scene(code, rng, size, difficulty).frame


def render_phone_scene(
    code: str | bytes | np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = HD,
    difficulty: str | Difficulty = "hard",
) -> Scene:
    """``render_phone_frame``'s frame, draw for draw, with where its code truly lies."""
    phone, homography, frame, level, held = _held_phone(code, rng, size, difficulty)
    return Scene(_camera(phone, homography, frame, level, rng, rng), held.corners_in(homography), held.modules)


def render_phone_sequence(
    code: str | bytes | np.ndarray,
    rng: np.random.Generator,
    count: int,
    size: tuple[int, int] = HD,
    difficulty: str | Difficulty = "hard",
) -> list[np.ndarray]:
    """``count`` consecutive frames of one phone held still in front of the camera.

    Pose, light, glare and focus stay; each frame has its own hand shake (a pixel or so), motion
    blur and sensor noise, as a video of a person holding up their phone does.
    """
    if not 1 <= count <= 1000:
        raise PhoneScreenError(f"a sequence has 1..1000 frames, got {count}")
    phone, homography, frame, level, _ = _held_phone(code, rng, size, difficulty)
    scene_seed = int(rng.integers(2**63))
    frames = []
    for _ in range(count):
        shake = np.array([[1, 0, rng.normal(0, 0.7)], [0, 1, rng.normal(0, 0.7)], [0, 0, 1]])
        scene_rng = np.random.default_rng(scene_seed)  # the same scene draws for every frame
        frames.append(_camera(phone, shake @ homography, frame, level, scene_rng, rng))
    return frames


def render_varied_frame(
    code: str | bytes | np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = HD,
    difficulty: str | Difficulty = "hard",
    look: Look | None = None,
) -> np.ndarray:
    """A frame like ``render_phone_frame``'s through a screen and camera model (``look``, drawn
    at random when None), with dark mode, rolling shutter, reflections and JPEG as it says."""
    return render_varied_scene(code, rng, size, difficulty, look).frame


def render_varied_scene(
    code: str | bytes | np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = HD,
    difficulty: str | Difficulty = "hard",
    look: Look | None = None,
) -> Scene:
    """``render_varied_frame``'s frame, draw for draw, with where its code truly lies."""
    look = random_look(rng) if look is None else look
    phone, homography, frame, level, held = _held_phone(code, rng, size, difficulty, look.dark_mode)
    # Rolling shutter: rows are exposed one after another, so a moving phone is sheared.
    skew = rng.uniform(*look.camera.shutter_skew) * (1 if rng.random() < 0.5 else -1) / frame[1]
    homography = np.array([[1.0, skew, -skew * frame[1] / 2], [0, 1, 0], [0, 0, 1]]) @ homography
    image = _camera(phone, homography, frame, level, rng, rng, look)
    return Scene(image, held.corners_in(homography), held.modules, look.dark_mode)


@dataclass(frozen=True)
class _Held:
    """The code's module grid and its rectangle on the phone raster (x, y, w, h)."""

    modules: np.ndarray
    rect: tuple[int, int, int, int]

    def corners_in(self, homography: np.ndarray) -> np.ndarray:
        """The grid's corners (TL, TR, BR, BL) in frame pixels under ``homography``."""
        x, y, w, h = self.rect
        raster = np.array([[[x, y], [x + w, y], [x + w, y + h], [x, y + h]]], dtype=np.float64)
        return cv2.perspectiveTransform(raster, homography)[0]


def _held_phone(code: str | bytes | np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                difficulty: str | Difficulty, dark_mode: bool = False,
                ) -> tuple[np.ndarray, np.ndarray, tuple[int, int], Difficulty, _Held]:
    """The phone raster, its pose in the camera, the frame size, the difficulty and the code."""
    modules = code if isinstance(code, np.ndarray) else qr_modules(code)
    if modules.ndim != 2 or modules.shape[0] != modules.shape[1] or modules.shape[0] < 21:
        raise PhoneScreenError(f"a QR module grid must be square and at least 21 wide, got {modules.shape}")
    level = _difficulty(difficulty)
    frame = _frame_size(size)
    phone, screen_rect = _phone_raster(modules, rng)
    if dark_mode:  # the app's dark theme: light modules and text on a dark screen
        screen = phone >= 0.0
        phone[screen] = 1.0 - phone[screen]
    px = rng.uniform(*level.px_per_module)
    homography = _pose(phone.shape, screen_rect, modules.shape[0], px, frame, level, rng)
    return phone, homography, frame, level, _Held(modules.astype(bool), screen_rect)


def empty_frame(rng: np.random.Generator, size: tuple[int, int] = HD, difficulty: str | Difficulty = "hard") -> np.ndarray:
    """A frame with no QR code: the background alone, or a phone showing text-like lines."""
    level = _difficulty(difficulty)
    width, height = _frame_size(size)
    if rng.random() < 0.5:
        return _camera(None, None, (width, height), level, rng, rng)
    lines = np.zeros((80, 80), dtype=bool)
    for row in range(4, 76, 6):  # an app screen full of text, not a code
        end = int(rng.integers(30, 76))
        lines[row:row + 2, 4:end] = rng.random(end - 4) < 0.8
    phone, screen_rect = _phone_raster(lines, rng, quiet=2)
    px = rng.uniform(*level.px_per_module)
    homography = _pose(phone.shape, screen_rect, lines.shape[0], px, (width, height), level, rng)
    return _camera(phone, homography, (width, height), level, rng, rng)


def _difficulty(difficulty: str | Difficulty) -> Difficulty:
    if isinstance(difficulty, Difficulty):
        return difficulty
    try:
        return DIFFICULTIES[difficulty]
    except KeyError:
        raise PhoneScreenError(f"unknown difficulty {difficulty!r}; choose one of {sorted(DIFFICULTIES)}") from None


def _frame_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(v) for v in size)
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise PhoneScreenError(f"frame size must be 64..4096 pixels each way, got {size}")
    return width, height


def _phone_raster(modules: np.ndarray, rng: np.random.Generator, quiet: int = 4) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The phone as a float raster (screen white = 1) and the code's rectangle on it (x, y, w, h)."""
    p = _SOURCE_PX_PER_MODULE
    n = modules.shape[0]
    code_px = (n + 2 * quiet) * p
    screen_w = int(code_px * rng.uniform(1.05, 1.25))
    screen_h = int(screen_w * rng.uniform(1.9, 2.2))
    bezel = int(screen_w * 0.05)
    phone = np.full((screen_h + 2 * bezel, screen_w + 2 * bezel), _BODY, dtype=np.float32)
    screen = phone[bezel:bezel + screen_h, bezel:bezel + screen_w]
    screen[:] = 1.0
    # App chrome around the code: a coloured header and text lines (grey after the camera).
    header = int(screen_h * 0.08)
    screen[:header] = rng.uniform(0.35, 0.6)
    x0 = (screen_w - code_px) // 2
    y0 = int(screen_h * rng.uniform(0.2, 0.35))
    for row in range(y0 + code_px + p * 3, screen_h - p * 3, p * 4):
        length = int(rng.uniform(0.3, 0.9) * screen_w)
        screen[row:row + p, p * 2:p * 2 + length] = rng.uniform(0.2, 0.5)
    dark = np.kron(modules.astype(np.float32), np.ones((p, p), dtype=np.float32))
    screen[y0 + quiet * p:y0 + quiet * p + n * p, x0 + quiet * p:x0 + quiet * p + n * p] = 1.0 - dark
    return phone, (bezel + x0 + quiet * p, bezel + y0 + quiet * p, n * p, n * p)


def _pose(shape: tuple[int, int], code_rect: tuple[int, int, int, int], n: int, px_per_module: float,
          frame: tuple[int, int], level: Difficulty, rng: np.random.Generator) -> np.ndarray:
    """Homography from the phone raster to the camera frame: a pinhole view of a tilted phone."""
    width, height = frame
    cx, cy = code_rect[0] + code_rect[2] / 2, code_rect[1] + code_rect[3] / 2
    tilt_x, tilt_y = (math.radians(rng.uniform(*level.tilt_deg)) for _ in range(2))
    roll = math.radians(rng.uniform(*level.roll_deg))
    rotation = _rotation(tilt_x, tilt_y, roll)
    focal = 1.1 * width  # a typical ~60 degree horizontal field of view
    # Distance chosen so the code's centre shows px_per_module camera pixels per module.
    module_src = _SOURCE_PX_PER_MODULE
    distance = focal * module_src / px_per_module
    corners = np.array([[code_rect[0], code_rect[1]], [code_rect[0] + code_rect[2], code_rect[1]],
                        [code_rect[0] + code_rect[2], code_rect[1] + code_rect[3]], [code_rect[0], code_rect[1] + code_rect[3]]],
                       dtype=np.float64)
    world = np.c_[corners - [cx, cy], np.zeros(4)] @ rotation.T + [0, 0, distance]
    image = focal * world[:, :2] / world[:, 2:3]
    # A code too big for the frame is held further away (small sensors: the person steps back).
    lo, hi = image.min(axis=0), image.max(axis=0)
    margin = 4 * px_per_module
    fit = min((width - 2 * margin) / (hi[0] - lo[0]), (height - 2 * margin) / (hi[1] - lo[1]))
    if fit < 1.0:
        if px_per_module * fit < 1.0:
            raise PhoneScreenError(f"a {n}-module code cannot fit a {width}x{height} frame at 1 px/module or more")
        image = (image - (lo + hi) / 2) * (0.98 * fit)
        lo, hi = image.min(axis=0), image.max(axis=0)
        margin *= fit
    span_x = (margin - lo[0], width - margin - hi[0])
    span_y = (margin - lo[1], height - margin - hi[1])
    image += [rng.uniform(*span_x), rng.uniform(*span_y)]
    return cv2.getPerspectiveTransform(corners.astype(np.float32), image.astype(np.float32))


def _rotation(tilt_x: float, tilt_y: float, roll: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(tilt_x), math.sin(tilt_x), math.cos(tilt_y), math.sin(tilt_y), math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return ry @ rx @ rz


def _background(frame: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A cluttered, unevenly lit scene (0..1): a gradient, soft blobs and a few hard edges."""
    width, height = frame
    small = rng.uniform(0.1, 0.6, size=(9, 16)).astype(np.float32)
    scene = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(3, 9))):  # desk edges, sleeves, a hand
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(20, width // 3)), int(rng.integers(20, height // 3))
        cv2.rectangle(scene, (x, y), (x + w, y + h), float(rng.uniform(0.05, 0.7)), -1)
    for _ in range(int(rng.integers(0, 3))):  # patterned cloth or a keyboard: texture that is no code
        pw, ph = int(rng.integers(40, width // 4)), int(rng.integers(40, height // 4))
        grain = rng.uniform(1.5, 5.0)
        noise = rng.uniform(0.0, 1.0, size=(max(2, int(ph / grain)), max(2, int(pw / grain)))).astype(np.float32)
        patch = cv2.resize(noise, (pw, ph), interpolation=cv2.INTER_LINEAR) * rng.uniform(0.1, 0.4)
        x, y = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
        scene[y:y + ph, x:x + pw] = rng.uniform(0.1, 0.4) + patch
    return np.clip(scene, 0.0, 1.0)


def _camera(phone: np.ndarray | None, homography: np.ndarray | None, frame: tuple[int, int],
            level: Difficulty, scene_rng: np.random.Generator, frame_rng: np.random.Generator,
            look: Look | None = None) -> np.ndarray:
    """Image the scene: place the phone, light it, blur, add glare, moiré and noise, quantise.

    ``scene_rng`` draws what a still scene keeps (background, light, glare, focus, noise level);
    ``frame_rng`` what changes every frame (motion blur, the noise itself). ``look`` adds its
    screen's black level and moiré, a reflection, and its camera's sensor, sharpening and JPEG.
    """
    rng = scene_rng
    scene = _background(frame, rng)
    white = rng.uniform(*level.white) / 255.0
    scene *= white
    if phone is not None and homography is not None:
        x0, y0, x1, y1 = _footprint(phone.shape, homography, frame)
        box = (x0, y0, x1 - x0, y1 - y0)
        # Render only the phone's footprint, at twice the resolution, then area-average it down.
        local = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]]) @ homography
        big = np.diag([_OVERSAMPLE, _OVERSAMPLE, 1.0]) @ local
        size = (box[2] * _OVERSAMPLE, box[3] * _OVERSAMPLE)
        warped = cv2.warpPerspective(phone, big, size, flags=cv2.INTER_LINEAR, borderValue=_BODY)
        mask = cv2.warpPerspective(np.ones_like(phone), big, size, flags=cv2.INTER_LINEAR)
        warped = cv2.resize(warped, box[2:], interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, box[2:], interpolation=cv2.INTER_AREA)
        contrast = rng.uniform(*level.contrast)
        if look is not None:
            contrast = 1.0 - min(0.7, (1.0 - contrast) * look.screen.black)  # even old LCDs keep 0.3
        body = np.clip(warped / _BODY, 0.0, 1.0)
        # The backlight and reflections lift the screen's black; the body stays dark.
        lit = white * ((1.0 - contrast + contrast * np.clip(warped, 0.0, 1.0)) * (1.0 - body) + 0.06 * body)
        if look is None:
            lit *= 1.0 + rng.uniform(*level.moire) * _moire(box, rng)
        else:
            lit *= 1.0 + rng.uniform(*level.moire) * look.screen.moire * _moire(box, rng, look.screen.moire_period)
            lit += white * _reflection(look.reflection, box, frame, homography, phone.shape, rng)
        lit += _glare(box, frame, homography, phone.shape, rng.uniform(*level.glare) / 255.0, rng)
        part = scene[y0:y1, x0:x1]  # a view: the phone is composited into the scene in place
        part *= 1.0 - mask
        part += lit * mask
    scene = _defocus(scene, rng.uniform(*level.defocus_px))
    noise = rng.uniform(*level.noise)
    scene = _motion_blur(scene, frame_rng.uniform(*level.motion_px), frame_rng.uniform(0, math.pi))
    if look is None:
        return _sensor(scene, noise, frame_rng)
    camera = look.camera
    sensor = rng.uniform(*camera.sensor)
    if sensor < 0.99:  # a low-resolution sensor, upscaled by the camera to the stream's size
        small = (max(16, int(frame[0] * sensor)), max(16, int(frame[1] * sensor)))
        scene = cv2.resize(scene, small, interpolation=cv2.INTER_AREA)
    image = _sensor(scene, noise * camera.noise, frame_rng)
    if image.shape[::-1] != frame:
        image = cv2.resize(image, frame, interpolation=cv2.INTER_LINEAR)
    amount = rng.uniform(*camera.sharpen)
    if amount > 0.05:  # the camera's own sharpening: halos along every edge
        soft = cv2.GaussianBlur(image, (0, 0), 1.2)
        image = cv2.addWeighted(image, 1.0 + amount, soft, -amount, 0.0)
    if camera.jpeg is not None:
        quality = int(rng.integers(camera.jpeg[0], camera.jpeg[1] + 1))
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else None
        image = decoded if decoded is not None else image
    return image


def _sensor(scene: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Quantise the scene (0..1) to camera levels with read noise and shot noise."""
    levels = scene.astype(np.float32) * 255.0
    # Read noise plus shot noise (which grows with the light), drawn as one Gaussian per pixel.
    spread = np.sqrt(noise * noise + 0.0225 * np.maximum(levels, 0.0))
    levels += rng.standard_normal(levels.shape, dtype=np.float32) * spread
    return np.clip(levels, 0, 255).astype(np.uint8)


def _reflection(kind: str, box: tuple[int, int, int, int], frame: tuple[int, int], homography: np.ndarray,
                phone_shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray | float:
    """What the glass mirrors, added to the screen's light: the holder's face (a dim, large, soft
    head-and-shoulders shape) or a ceiling light (a bright tube with soft edges, often saturating)."""
    if kind == "none":
        return 0.0
    xs, ys = _grid(box)
    src = np.array([[[rng.uniform(0.2, 0.8) * phone_shape[1], rng.uniform(0.2, 0.7) * phone_shape[0]]]], dtype=np.float32)
    cx, cy = cv2.perspectiveTransform(src, homography)[0, 0]
    scale = max(box[2], box[3])
    if kind == "face":
        strength = rng.uniform(0.08, 0.3)
        rx, ry = scale * rng.uniform(0.15, 0.3), scale * rng.uniform(0.2, 0.4)
        head = np.exp(-(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2) ** 2)
        shoulders = np.exp(-(((xs - cx) / (2.5 * rx)) ** 2 + ((ys - cy - 1.6 * ry) / ry) ** 2) ** 2)
        return strength * np.maximum(head, shoulders).astype(np.float32)
    strength = rng.uniform(0.4, 1.3)
    angle = rng.uniform(0, math.pi)
    length, width = scale * rng.uniform(0.3, 0.9), scale * rng.uniform(0.02, 0.07)
    dx, dy = xs - cx, ys - cy
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / length
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / width
    return strength * np.exp(-(u ** 8) - v * v).astype(np.float32)


def _footprint(shape: tuple[int, int], homography: np.ndarray, frame: tuple[int, int]) -> tuple[int, int, int, int]:
    """The phone's bounding box in the frame (x0, y0, x1, y1), a little padded, clipped."""
    h, w = shape
    corners = np.array([[[0, 0], [w, 0], [w, h], [0, h]]], dtype=np.float32)
    points = cv2.perspectiveTransform(corners, homography)[0]
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 2
    return max(0, x0), max(0, y0), max(min(frame[0], x1), max(0, x0) + 1), max(min(frame[1], y1), max(0, y0) + 1)


def _grid(box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Frame coordinates of a box's pixels, as a row (x) and a column (y) that broadcast."""
    x0, y0, w, h = box
    return np.arange(x0, x0 + w, dtype=np.float32)[None, :], np.arange(y0, y0 + h, dtype=np.float32)[:, None]


def _moire(box: tuple[int, int, int, int], rng: np.random.Generator,
           periods: tuple[float, float] = (4.0, 14.0)) -> np.ndarray:
    """The beat between the screen's pixel grid and the sensor's: slow waves across the screen."""
    xs, ys = _grid(box)
    waves = np.zeros((box[3], box[2]), dtype=np.float32)
    for _ in range(2):  # the grid's rows and columns beat separately
        period = rng.uniform(*periods)
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        waves += np.cos((xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period) + phase)
    return waves * 0.5


def _glare(box: tuple[int, int, int, int], frame: tuple[int, int], homography: np.ndarray,
           phone_shape: tuple[int, int], peak: float, rng: np.random.Generator) -> np.ndarray | float:
    """A reflection of a lamp or window on the glass: a soft bright ellipse somewhere on the screen."""
    if peak <= 0:
        return 0.0
    src = np.array([[[rng.uniform(0.1, 0.9) * phone_shape[1], rng.uniform(0.15, 0.6) * phone_shape[0]]]], dtype=np.float32)
    cx, cy = cv2.perspectiveTransform(src, homography)[0, 0]
    radius = rng.uniform(0.04, 0.15) * min(frame) * 2
    ratio = rng.uniform(1.5, 4.0)
    angle = rng.uniform(0, math.pi)
    xs, ys = _grid(box)
    dx, dy = xs - cx, ys - cy
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / radius
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / (radius / ratio)
    return peak * np.exp(-(u * u + v * v))


def _defocus(scene: np.ndarray, sigma: float) -> np.ndarray:
    """An out-of-focus lens, as a Gaussian of ``sigma`` camera pixels."""
    return cv2.GaussianBlur(scene, (0, 0), sigma) if sigma > 0.05 else scene


def _motion_blur(scene: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Hand shake during the exposure: a straight streak of ``length`` pixels at ``angle``."""
    if length < 1.0:
        return scene
    k = int(math.ceil(length)) * 2 + 1
    kernel = np.zeros((k, k), dtype=np.float32)
    half, c = length / 2, k // 2
    p0 = (int(round(c - half * math.cos(angle))), int(round(c - half * math.sin(angle))))
    p1 = (int(round(c + half * math.cos(angle))), int(round(c + half * math.sin(angle))))
    cv2.line(kernel, p0, p1, 1.0, 1, lineType=cv2.LINE_AA)
    return cv2.filter2D(scene, -1, kernel / kernel.sum())
