"""USB webcams, video files and RTSP streams through OpenCV's VideoCapture.

A source that fails (unplugged webcam, dropped stream, end of file) is reopened after a pause,
until `stop()`; so a unit survives a loose USB cable without a restart.
"""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from scanner.camera import Camera, CameraError, CameraUnavailable

logger = logging.getLogger(__name__)


def _parse_source(source: str) -> int | str:
    """"0" means device index 0; anything else is a path or URL."""
    return int(source) if source.strip().isdigit() else source


class OpenCvCamera(Camera):
    """cv2.VideoCapture with reconnect on failure."""

    name = "opencv"

    def __init__(self, source: str = "0", width: int = 1280, height: int = 720, fps: float = 15.0, *,
                 reconnect_seconds: float = 2.0) -> None:
        self.source = _parse_source(source)
        self.width, self.height, self.fps = width, height, fps
        self.reconnect_seconds = reconnect_seconds
        self.reconnects = 0
        """Times the source was reopened after a failure."""
        self._stopped = threading.Event()
        self._cap: cv2.VideoCapture | None = None
        self._frame: np.ndarray | None = None

    @property
    def _label(self) -> str:
        # RTSP URLs may carry a password: never log more than scheme and host.
        if isinstance(self.source, int):
            return f"camera {self.source}"
        if "://" in self.source:
            scheme, rest = self.source.split("://", 1)
            return f"{scheme}://{rest.split('@')[-1].split('/')[0]}"
        return self.source

    def start(self) -> None:
        self._stopped.clear()
        self._open()

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise CameraUnavailable(f"cannot open {self._label}")
        if isinstance(self.source, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps > 0:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the latest frame, not a queue of old ones
        self._cap = cap
        logger.info("opencv: opened %s", self._label)

    def read(self) -> np.ndarray:
        while not self._stopped.is_set():
            cap = self._cap
            if cap is not None:
                ok, frame = cap.read(self._frame)
                if ok:
                    self._frame = frame
                    return frame
                logger.warning("opencv: %s gave no frame; reopening in %.1fs", self._label, self.reconnect_seconds)
                cap.release()
                self._cap = None
                self._frame = None
            if self._stopped.wait(self.reconnect_seconds):
                break
            try:
                self._open()
                self.reconnects += 1
            except CameraUnavailable as e:
                logger.warning("opencv: %s", e)
        raise CameraError(f"{self._label} stopped")

    def interrupt(self) -> None:
        self._stopped.set()

    def stop(self) -> None:
        self._stopped.set()
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
