"""Replay cameras for tests, benchmarks and the demo: recorded images or video, or scripted people.

- `ImageFolderCamera`: every image in a folder (sorted by name), at a set frame rate.
- `VideoFileCamera`: the frames of a video file, at a set frame rate.
- `ScriptedCamera`: phone-screen frames rendered from given payloads, each held for some frames,
  with empty frames between people, as a checkpoint queue looks to the camera.
Each loops or stops (SourceEnded) at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from scanner.camera import Camera, CameraUnavailable, SourceEnded
from scanner.qr.decode import UnreadableImageError
from scanner.qr.imageheader import refuse_before_decoding

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpeg", ".mjpg")
# Decoded images kept in memory at most; past this the folder is read from disk each loop.
_CACHE_BYTES = 64 * 1024 * 1024


class Pacer:
    """Releases one frame per 1/fps seconds; never bursts to catch up after a stall."""

    def __init__(self, fps: float, stopped: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self._stopped = stopped
        self._clock = clock
        self._due = 0.0

    def wait(self) -> None:
        """Sleep until the next frame is due (returns early when stopped)."""
        if not self.interval:
            return
        now = self._clock()
        if self._due > now:
            self._stopped.wait(self._due - now)
            self._due += self.interval
        else:
            self._due = now + self.interval


class PacedCamera(Camera):
    """Base of the replay cameras: paced frames and an interruptible wait."""

    def __init__(self, fps: float) -> None:
        self._stopped = threading.Event()
        self._pacer = Pacer(fps, self._stopped)

    def interrupt(self) -> None:
        self._stopped.set()


class ImageFolderCamera(PacedCamera):
    """Images of a folder as frames (gray), in name order."""

    name = "replay"

    def __init__(self, folder: str | Path, fps: float = 15.0, loop: bool = True) -> None:
        self.folder = Path(folder)
        self.loop = loop
        super().__init__(fps)
        self._paths: list[Path] = []
        self._cache: dict[int, np.ndarray] = {}
        self._cache_bytes = 0
        self._index = 0

    def start(self) -> None:
        if not self.folder.is_dir():
            raise CameraUnavailable(f"replay folder not found: {self.folder}")
        self._paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise CameraUnavailable(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        self._stopped.clear()
        self._index = 0

    def read(self) -> np.ndarray:
        if self._stopped.is_set():
            raise SourceEnded(str(self.folder))
        for _ in range(len(self._paths)):
            if self._index >= len(self._paths):
                if not self.loop:
                    raise SourceEnded(str(self.folder))
                self._index = 0
            i = self._index
            self._index += 1
            frame = self._load(i)
            if frame is not None:
                self._pacer.wait()
                return frame
        raise CameraUnavailable(f"no readable image in {self.folder}")

    def _load(self, i: int) -> np.ndarray | None:
        frame = self._cache.get(i)
        if frame is not None:
            return frame
        try:  # an operator's folder may hold any file: measure it before OpenCV allocates for it
            refuse_before_decoding(self._paths[i])
        except UnreadableImageError as err:
            logger.warning("replay: skipping %s: %s", self._paths[i].name, err.why)
            return None
        frame = cv2.imread(str(self._paths[i]), cv2.IMREAD_GRAYSCALE)
        if frame is None:
            logger.warning("replay: skipping unreadable image %s", self._paths[i].name)
            return None
        if self._cache_bytes + frame.nbytes <= _CACHE_BYTES:
            self._cache[i] = frame
            self._cache_bytes += frame.nbytes
        return frame

    def stop(self) -> None:
        self._stopped.set()


class VideoFileCamera(PacedCamera):
    """Frames of a video file (BGR), paced to fps (0 = as fast as they decode)."""

    name = "replay"

    def __init__(self, path: str | Path, fps: float = 15.0, loop: bool = True) -> None:
        self.path = Path(path)
        self.loop = loop
        super().__init__(fps)
        self._cap: cv2.VideoCapture | None = None
        self._frame: np.ndarray | None = None

    def start(self) -> None:
        if not self.path.is_file():
            raise CameraUnavailable(f"replay video not found: {self.path}")
        self._stopped.clear()
        self._open()

    def _open(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise CameraUnavailable(f"cannot open video {self.path} (unknown format?)")
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._stopped.is_set() or self._cap is None:
            raise SourceEnded(str(self.path))
        ok, frame = self._cap.read(self._frame)
        if not ok:
            if not self.loop:
                raise SourceEnded(str(self.path))
            self._cap.release()
            self._open()
            ok, frame = self._cap.read(self._frame)
            if not ok:
                raise CameraUnavailable(f"video {self.path} has no frames")
        self._frame = frame  # decode the next frame into the same buffer
        self._pacer.wait()
        return frame

    def stop(self) -> None:
        self._stopped.set()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_replay(source: str | Path, fps: float = 15.0, loop: bool = True) -> Camera:
    """A folder of images or a video file, whichever `source` is."""
    path = Path(source)
    if path.is_dir():
        return ImageFolderCamera(path, fps, loop)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise CameraUnavailable(f"replay source {path} is a single image: give its folder")
    return VideoFileCamera(path, fps, loop)


def read_payloads(source: str | Path) -> list[str]:
    """Payloads for a scripted camera: one per line of a text file, or one per *.txt in a folder."""
    path = Path(source)
    try:
        if path.is_dir():
            payloads = [p.read_text(encoding="utf-8").strip() for p in sorted(path.glob("*.txt"))]
        else:
            payloads = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as e:
        raise CameraUnavailable(f"cannot read scripted payloads from {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise CameraUnavailable(f"scripted payloads in {path} are not UTF-8 text") from None
    payloads = [p for p in payloads if p]
    if not payloads:
        raise CameraUnavailable(f"no payloads in {path}")
    return payloads


class ScriptedCamera(PacedCamera):
    """People presenting phones: each payload rendered on a phone screen, held, then a gap."""

    name = "scripted"

    def __init__(self, payloads: Sequence[str], width: int = 1280, height: int = 720, *, fps: float = 15.0,
                 loop: bool = True, hold_frames: int = 20, gap_frames: int = 10, difficulty: str = "easy",
                 variants: int = 2, seed: int = 7) -> None:
        if not payloads:
            raise CameraUnavailable("a scripted camera needs at least one payload")
        super().__init__(fps)
        self.width, self.height = width, height
        self.loop = loop
        self.hold_frames = hold_frames
        self.gap_frames = gap_frames
        self.difficulty = difficulty
        self.variants = max(1, variants)
        self.seed = seed
        self._payloads = list(payloads)
        # per person, a few renderings (a held phone moves a little between frames)
        self._frames: list[list[np.ndarray]] = []
        self._empty: np.ndarray | None = None
        self._tick = 0
        self.presented = 0
        """People (payloads) shown so far, counting each start of a hold."""

    def start(self) -> None:
        # Render every phone once, up front: a rendering costs far more than a frame interval.
        from scanner import phone_screen

        if not self._frames:
            rng = np.random.default_rng(self.seed)
            size = (self.width, self.height)
            try:
                self._frames = [[phone_screen.render_phone_frame(p, rng, size, self.difficulty)
                                 for _ in range(self.variants)] for p in self._payloads]
                self._empty = phone_screen.empty_frame(rng, size, self.difficulty)
            except (ValueError, TypeError) as e:  # payload too long for a QR code, bad difficulty
                raise CameraUnavailable(f"cannot render scripted frames: {e}") from None
        self._stopped.clear()
        self._tick = 0
        self.presented = 0

    @property
    def frames_per_person(self) -> int:
        """Frames from one person's phone appearing to the next one's."""
        return self.hold_frames + self.gap_frames

    def read(self) -> np.ndarray:
        if self._stopped.is_set():
            raise SourceEnded("scripted")
        person, step = divmod(self._tick, self.frames_per_person)
        if person >= len(self._frames):
            if not self.loop:
                raise SourceEnded("scripted")
            self._tick = 0
            person, step = 0, 0
        self._tick += 1
        if step == 0:
            self.presented += 1
        frame = self._frames[person][step % self.variants] if step < self.hold_frames else self._empty
        self._pacer.wait()
        assert frame is not None
        return frame

    def stop(self) -> None:
        self._stopped.set()
