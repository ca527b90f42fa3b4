"""Clock sanity for a unit without a real-time clock.

A Raspberry Pi boots with whatever time it last saved (or 1970) until NTP answers. Judging
certificate expiry on such a clock is wrong, so the unit compares its clock with two facts it
trusts: the issue time of its signed trust bundle, and the latest time it has itself seen.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from common.atomicfile import write_atomic

logger = logging.getLogger(__name__)

ClockReason = Literal["ok", "behind_bundle", "behind_last_seen"]


@dataclass(frozen=True)
class ClockState:
    """Whether the unit's clock can be trusted, and if not why."""

    ok: bool
    reason: ClockReason


class ClockGuard:
    """Remembers the latest time seen (on disk, throttled) and checks `now` against it."""

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        *,
        tolerance: timedelta = timedelta(minutes=5),
        save_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self.state_path = Path(state_path)
        # Small steps back (NTP slewing, a bundle signed on a slightly fast clock) are normal.
        self.tolerance = tolerance
        self.save_every = save_every
        self._lock = threading.Lock()
        self._last_seen = self._load()
        self._last_saved = self._last_seen

    def _load(self) -> datetime | None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            seen = datetime.fromisoformat(data["last_seen"])
            if seen.tzinfo is None:
                raise ValueError("last_seen has no time zone")
            return seen
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("clock state %s unreadable (%s); starting without a last seen time",
                           self.state_path, e)
            return None

    @property
    def last_seen(self) -> datetime | None:
        """The latest time recorded so far (from this run or an earlier one)."""
        return self._last_seen

    def check(self, now: datetime, bundle_issued_at: datetime | None) -> ClockState:
        """Say whether `now` is plausible: not before the bundle's issue time nor the last seen time."""
        if bundle_issued_at is not None and now < bundle_issued_at - self.tolerance:
            return ClockState(False, "behind_bundle")
        last = self._last_seen
        if last is not None and now < last - self.tolerance:
            return ClockState(False, "behind_last_seen")
        return ClockState(True, "ok")

    def record(self, now: datetime) -> None:
        """Remember `now` if it is later than anything seen; write it at most every `save_every`."""
        if now.tzinfo is None:
            raise ValueError("record() needs a timezone-aware time")
        with self._lock:
            if self._last_seen is not None and now <= self._last_seen:
                return  # a clock that went back must not lower the mark
            self._last_seen = now
            if self._last_saved is not None and now - self._last_saved < self.save_every:
                return
            self._save(now)

    def flush(self) -> None:
        """Write the latest seen time now (on shutdown)."""
        with self._lock:
            if self._last_seen is not None and self._last_seen != self._last_saved:
                self._save(self._last_seen)

    def _save(self, now: datetime) -> None:
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.state_path, json.dumps({"last_seen": now.isoformat()}).encode())
            self._last_saved = now
        except OSError as e:
            logger.warning("cannot save clock state to %s: %s", self.state_path, e)
