"""A stand-in for `picamera2.Picamera2` for machines without a Pi camera.

It keeps the parts of Picamera2's API the backend uses (create_video_configuration, configure,
set_controls, start, capture_array, stop, close, camera_controls) with the same call order
rules, and serves frames from any other `Camera` (a replay source) laid out as YUV420 planes,
so `Picamera2Camera` runs exactly the code it runs on a Pi.
"""

from __future__ import annotations

import copy
from typing import Any

import cv2
import numpy as np

from scanner.camera import Camera


class FakePicamera2:
    """Picamera2's capture API over a replay source."""

    def __init__(self, source: Camera, sensor_size: tuple[int, int] = (4608, 2592)) -> None:
        self._source = source
        self.sensor_size = sensor_size
        self.camera_controls: dict[str, tuple[Any, Any, Any]] = {
            "FrameRate": (1.0, 120.0, 30.0), "AfMode": (0, 2, 0), "ExposureTime": (100, 1000000, 20000)}
        self.controls: dict[str, Any] = {}
        self.started = False
        self.closed = False
        self._config: dict[str, Any] | None = None
        self._yuv: np.ndarray | None = None

    def create_video_configuration(self, main: dict[str, Any] | None = None, lores: dict[str, Any] | None = None,
                                   controls: dict[str, Any] | None = None, buffer_count: int = 6,
                                   **_: Any) -> dict[str, Any]:
        """A configuration dict shaped like Picamera2's."""
        main_cfg = {"size": (640, 480), "format": "XBGR8888"}
        main_cfg.update(main or {})
        return {"use_case": "video", "main": main_cfg, "lores": copy.deepcopy(lores),
                "controls": dict(controls or {}), "buffer_count": buffer_count}

    def configure(self, config: dict[str, Any]) -> None:
        """Check and apply a configuration; only while stopped, as on the real camera."""
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        width, height = config["main"]["size"]
        if width % 2 or height % 2 or width > self.sensor_size[0] or height > self.sensor_size[1]:
            raise ValueError(f"unsupported main size {width}x{height}")
        if config["main"]["format"] != "YUV420":
            raise ValueError("this fake only serves YUV420")
        for name in config["controls"]:
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
        self._config = config
        self.controls.update(config["controls"])
        # I420 layout: full Y plane, then quarter-size U and V planes.
        self._yuv = np.full((height * 3 // 2, width), 128, np.uint8)

    def set_controls(self, controls: dict[str, Any]) -> None:
        """Set controls, refusing names the camera does not have."""
        for name in controls:
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
        self.controls.update(controls)

    def start(self) -> None:
        """Start streaming; needs a configuration first."""
        if self._config is None:
            raise RuntimeError("Camera has not been configured")
        if self.closed:
            raise RuntimeError("Camera is closed")
        self._source.start()
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        """The next frame of the stream as a YUV420 array, blocking like the real camera."""
        if not self.started or self._yuv is None or self._config is None:
            raise RuntimeError("Camera is not running")
        if name != "main":
            raise RuntimeError(f"stream {name!r} is not configured")
        frame = self._source.read()
        width, height = self._config["main"]["size"]
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        y = self._yuv[:height]
        if frame.shape == y.shape:
            np.copyto(y, frame)
        else:  # the sensor scales to the configured size
            cv2.resize(frame, (width, height), dst=y, interpolation=cv2.INTER_AREA)
        return self._yuv.copy()  # the real camera hands out a fresh array per request

    def stop(self) -> None:
        """Stop streaming."""
        if self.started:
            self._source.stop()
        self.started = False

    def close(self) -> None:
        """Release the camera."""
        self.stop()
        self.closed = True
