"""Turns a stream of per-frame reads into scans: one per person presenting a code.

The same code read in consecutive frames is one scan. It becomes a new scan again once it has
gone unread for `gone_frames` decoded frames or `gone_seconds`, whichever comes first (the
person left and came back). A different code is a new scan at once. Only a keyed hash of each
payload is kept, under a key made at start and never stored, so memory holds no payload.
"""

from __future__ import annotations

import hashlib
import hmac
import os


class Debounce:
    """Decides, frame by frame, whether a read starts a new scan."""

    def __init__(self, gone_frames: int = 15, gone_seconds: float = 1.0) -> None:
        if gone_frames < 1 or gone_seconds <= 0:
            raise ValueError("gone_frames must be at least 1 and gone_seconds above 0")
        self.gone_frames = gone_frames
        self.gone_seconds = gone_seconds
        self._key = os.urandom(32)
        # keyed hash -> (frame number, time) of its last read; only codes still "in view"
        self._seen: dict[bytes, tuple[int, float]] = {}
        self._frame = 0

    def _digest(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def frame(self, payload: str | None, now: float) -> bool:
        """Feed one decoded frame (payload or None) at monotonic time `now`; True = a new scan."""
        self._frame += 1
        self._forget_gone(now)
        if payload is None:
            return False
        key = self._digest(payload)
        is_new = key not in self._seen
        self._seen[key] = (self._frame, now)
        return is_new

    def _forget_gone(self, now: float) -> None:
        if not self._seen:
            return
        gone = [k for k, (frame, ts) in self._seen.items()
                if self._frame - frame > self.gone_frames or now - ts >= self.gone_seconds]
        for k in gone:
            del self._seen[k]

    @property
    def in_view(self) -> int:
        """Distinct codes read recently and not yet counted as gone."""
        return len(self._seen)

    def reset(self) -> None:
        """Forget every code (e.g. after the camera restarts)."""
        self._seen.clear()
