"""Cameras: one small interface, several backends, chosen by `backends.open_camera(config)`.

A `Camera` hands out frames one at a time (`read()` blocks until the next one); one thread
starts, reads and stops it, and any other thread may `interrupt()` a blocked read. Keeping only
the latest frame, and dropping old ones when decoding falls behind, is the capture thread's job
(`scanner.capture.Capture.take()` is the latest-frame access). Backends import their libraries
only when used, so the package imports on a laptop without picamera2.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
import numpy as np

logger = logging.getLogger(__name__)


class CameraError(Exception):
    """A camera problem, with a reason a technician can act on."""


class CameraUnavailable(CameraError):
    """The camera or source cannot be opened (missing device, file, library or stream)."""


class SourceEnded(CameraError):
    """A non-looping replay source has no more frames."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(f"no more frames in {source}")


class Camera(ABC):
    """A source of frames: `start()`, then `read()` in one thread, then `stop()`."""

    name: str = "camera"

    @abstractmethod
    def start(self) -> None:
        """Open the device or source; raise CameraUnavailable with the reason if it can't."""

    @abstractmethod
    def read(self) -> np.ndarray:
        """Block until the next frame: a gray (H, W) or BGR/BGRA (H, W, C) uint8 array.

        The array may be reused by the next call: copy what you keep. Raises SourceEnded at the
        end of a non-looping source, CameraError on a failure the backend could not recover from.
        """

    @abstractmethod
    def stop(self) -> None:
        """Release the device; called by the thread that reads, safe to call twice."""

    def interrupt(self) -> None:
        """Ask a read() blocked in another thread to give up soon (no release here)."""
