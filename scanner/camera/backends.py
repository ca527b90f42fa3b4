"""Choosing a camera backend from the config: the one place that reads `camera.backend`.

Apart from the interface (`scanner.camera`), so the backends can import it without a circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.camera import Camera, CameraUnavailable

if TYPE_CHECKING:
    from scanner.config import CameraSection


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
