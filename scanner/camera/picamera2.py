"""The Raspberry Pi camera through Picamera2 (libcamera).

The main stream is configured as YUV420 at the configured size: its first `height` rows are
the luminance plane, which is the grayscale image the QR decoder wants, so no colour
conversion happens at all. Picamera2 is imported only in `start()`, so this module loads on any
machine; tests pass a factory that builds `FakePicamera2` and run this same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from scanner.camera import Camera, CameraError, CameraUnavailable

logger = logging.getLogger(__name__)

# libcamera's AfModeEnum.Continuous: keeps phones at arm's length in focus on Camera Module 3.
_AF_CONTINUOUS = 2


class Picamera2Camera(Camera):
    """Frames from Picamera2's main stream, luminance plane only."""

    name = "picamera2"

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 15.0,
                 factory: Callable[[], Any] | None = None) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._factory = factory
        self._cam: Any = None

    def start(self) -> None:
        factory = self._factory
        if factory is None:
            try:
                from picamera2 import Picamera2  # only on a Pi (python3-picamera2)
            except ImportError:
                raise CameraUnavailable("picamera2 is not installed (on a Pi: apt install python3-picamera2)") from None
            factory = Picamera2
        try:
            cam = factory()
        except (RuntimeError, IndexError, OSError) as e:
            raise CameraUnavailable(f"no Pi camera found: {e}") from None
        controls: dict[str, Any] = {}
        if self.fps > 0:
            controls["FrameRate"] = float(self.fps)
        config = cam.create_video_configuration(main={"size": (self.width, self.height), "format": "YUV420"},
                                                controls=controls, buffer_count=4)
        try:
            cam.configure(config)
            if "AfMode" in getattr(cam, "camera_controls", {}):
                cam.set_controls({"AfMode": _AF_CONTINUOUS})
            cam.start()
        except (RuntimeError, ValueError, OSError) as e:
            cam.close()
            raise CameraUnavailable(f"Pi camera refused {self.width}x{self.height} YUV420: {e}") from None
        self._cam = cam
        logger.info("picamera2 started at %dx%d, %.1f fps", self.width, self.height, self.fps)

    def read(self) -> np.ndarray:
        cam = self._cam
        if cam is None:
            raise CameraError("picamera2 camera is not started")
        try:
            yuv = cam.capture_array("main")
        except (RuntimeError, OSError) as e:
            raise CameraError(f"Pi camera capture failed: {e}") from None
        # YUV420 is planar: rows [0, height) are Y; the array may be wider (stride padding).
        return yuv[: self.height, : self.width]

    def stop(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            cam.stop()
        finally:
            cam.close()
