"""The capture thread: reads the camera as fast as it delivers and keeps only the latest frame.

Frames live in three preallocated grayscale buffers (a triple buffer): the thread writes into
one, the newest complete frame waits in another, and the decoder holds the third. When the
decoder falls behind, the waiting frame is overwritten (counted as dropped), never queued, so
a verdict always comes from what the camera sees now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from scanner.camera import Camera, CameraError, CameraUnavailable, SourceEnded
from scanner.worker import Worker

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Frame:
    """One grayscale frame in a reused buffer."""

    gray: np.ndarray
    seq: int = 0
    """Frame number since capture started (1 = first)."""
    ts: float = 0.0
    """time.monotonic() when the camera handed the frame over."""


def to_gray(src: np.ndarray, dst: np.ndarray) -> None:
    """Write the grayscale of `src` (gray, BGR or BGRA) into `dst` without allocating."""
    if src.ndim == 2:
        np.copyto(dst, src)
    elif src.shape[2] == 3:
        cv2.cvtColor(src, cv2.COLOR_BGR2GRAY, dst=dst)
    elif src.shape[2] == 4:
        cv2.cvtColor(src, cv2.COLOR_BGRA2GRAY, dst=dst)
    else:
        raise CameraError(f"unsupported frame layout {src.shape}")


class LatestFrame:
    """A triple buffer: one writer publishes frames, one reader takes only the newest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slots: list[Frame] = [Frame(np.zeros((1, 1), np.uint8)) for _ in range(3)]
        self._back, self._ready, self._front = 0, 1, 2
        self._fresh = False
        self._has_frame = False
        self.published = 0
        self.dropped = 0
        """Frames overwritten before the reader took them."""

    def back(self, height: int, width: int) -> Frame:
        """The slot the writer fills next, sized (height, width); reallocated only on a size change."""
        slot = self._slots[self._back]
        if slot.gray.shape != (height, width):
            slot.gray = np.empty((height, width), np.uint8)
        return slot

    def publish(self) -> None:
        """Make the back slot the newest frame; an untaken older one is dropped."""
        with self._cond:
            self._back, self._ready = self._ready, self._back
            if self._fresh:
                self.dropped += 1
            self._fresh = True
            self._has_frame = True
            self.published += 1
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not taken yet, waiting up to timeout; valid until the next take()."""
        with self._cond:
            if not self._fresh and not self._cond.wait_for(lambda: self._fresh, timeout):
                return None
            self._front, self._ready = self._ready, self._front
            self._fresh = False
            return self._slots[self._front]

    def peek(self, fn: Callable[[Frame], T]) -> T | None:
        """Run fn on the newest complete frame under the lock (keep fn short); None before any."""
        with self._cond:
            if not self._has_frame:
                return None
            return fn(self._slots[self._ready if self._fresh else self._front])

    def wake(self) -> None:
        """Wake a waiting reader (at shutdown)."""
        with self._cond:
            self._cond.notify_all()


class Capture:
    """Runs a camera in a named thread and offers the latest frame."""

    def __init__(self, camera: Camera, *, retry_seconds: float = 2.0) -> None:
        self.camera = camera
        self.retry_seconds = retry_seconds
        self.latest = LatestFrame()
        self.error: str | None = None
        """Last camera problem, for the screen and health; None while frames flow."""
        self.ended = False
        """True once a non-looping source has no more frames."""
        self.fps = 0.0
        self.last_frame_at = 0.0
        self._worker = Worker("capture", self._run)
        self._stop = self._worker.stopping

    def start(self) -> None:
        """Start the capture thread."""
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the camera."""
        self._stop.set()
        self.camera.interrupt()
        self._worker.stop(timeout)
        self.latest.wake()

    def take(self, timeout: float = 0.5) -> Frame | None:
        """The newest frame not yet taken (None on timeout or once stopped)."""
        return None if self._stop.is_set() else self.latest.take(timeout)

    @property
    def frames(self) -> int:
        """Frames captured so far."""
        return self.latest.published

    @property
    def dropped(self) -> int:
        """Frames dropped because the decoder was busy."""
        return self.latest.dropped

    @property
    def running(self) -> bool:
        """The thread is alive."""
        return self._worker.running

    def _run(self, stop: threading.Event) -> None:
        while not self._stop.is_set() and not self.ended:
            try:
                self.camera.start()
            except CameraUnavailable as e:
                self._fail(str(e))
                continue
            try:
                self._read_frames()
            except SourceEnded:
                logger.info("capture: source ended after %d frames", self.frames)
                self.ended = True
            except CameraError as e:
                if not self._stop.is_set():
                    self._fail(str(e))
            finally:
                self.camera.stop()
        self.fps = 0.0

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.fps = 0.0
        logger.error("camera: %s (retrying in %.0fs)", reason, self.retry_seconds)
        self._stop.wait(self.retry_seconds)

    def _read_frames(self) -> None:
        window_start, window_frames = time.monotonic(), 0
        seq = self.frames
        while not self._stop.is_set():
            raw = self.camera.read()
            now = time.monotonic()
            slot = self.latest.back(raw.shape[0], raw.shape[1])
            to_gray(raw, slot.gray)
            seq += 1
            slot.seq, slot.ts = seq, now
            self.latest.publish()
            self.error = None
            self.last_frame_at = now
            window_frames += 1
            if now - window_start >= 1.0:
                self.fps = window_frames / (now - window_start)
                window_start, window_frames = now, 0
