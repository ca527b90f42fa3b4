"""Cameras: one small interface, several backends, chosen by `open_camera(config)`.

The interface and its errors are `scanner.camera.base`; each backend is a module of this
package. Backends import their libraries only when used, so the package imports on a laptop
without picamera2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.camera.base import Camera, CameraError, CameraUnavailable, SourceEnded

if TYPE_CHECKING:
    from scanner.config import CameraSection

__all__ = ["Camera", "CameraError", "CameraUnavailable", "SourceEnded", "open_camera"]


def open_camera(config: CameraSection) -> Camera:
    """Build the backend named in the config (not started yet)."""
    if config.backend == "picamera2":
        from scanner.camera.picamera2 import Picamera2Camera

        return Picamera2Camera(config.width, config.height, config.fps)
    if config.backend == "opencv":
        from scanner.camera.opencv import OpenCvCamera

        return OpenCvCamera(config.source or "0", config.width, config.height, config.fps,
                            reconnect_seconds=config.reconnect_seconds)
    if config.backend == "replay":
        from scanner.camera.replay import open_replay

        return open_replay(config.source, fps=config.fps, loop=config.loop)
    if config.backend == "scripted":
        from scanner.camera.replay import ScriptedCamera, read_payloads

        return ScriptedCamera(read_payloads(config.source), config.width, config.height, fps=config.fps,
                              loop=config.loop, hold_frames=config.hold_frames, gap_frames=config.gap_frames,
                              difficulty=config.difficulty)
    raise CameraUnavailable(f"unknown camera backend {config.backend!r}")
