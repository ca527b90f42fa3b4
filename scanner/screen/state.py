"""The officer screen's state: the verdict on show (for a few seconds) and the unit's status.

Readers wait for a change by version number (server-sent events). The verdict, with the
holder's name and date of birth, is dropped from memory when its time on screen is over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scanner.repeats import RepeatLog
from scanner.screen.view import verdict_view
from verifier import Verdict


class ScreenState:
    """Thread-safe state with a change counter."""

    def __init__(self, language: str = "vi", verdict_seconds: float = 4.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.language = language
        self.verdict_seconds = verdict_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._version = 0
        self._verdict: dict[str, Any] | None = None
        self._verdict_until = 0.0
        self._shown = 0
        self._status: dict[str, Any] = {}
        self._desk: dict[str, Any] | None = None
        self._closed = False
        self.repeats = RepeatLog()
        self.advice: Callable[[Verdict], dict[str, Any] | None] | None = None
        """What the person can do next after a verdict (the policy's decision rules), if set."""

    def show(self, verdict: Verdict) -> None:
        """Put a verdict on screen (replacing any earlier one) for verdict_seconds."""
        view = verdict_view(verdict)
        now = datetime.now().astimezone()
        before = self.repeats.note(verdict.uci_hash, now)
        if before is not None:  # the same certificate was shown here earlier: a shared pass?
            view["lines"].append({"vi": "Đã quét ở đây lúc", "en": "Already scanned here at",
                                  "value": before.strftime("%H:%M")})
            view["repeat"] = True
        if self.advice is not None and verdict.result in ("yellow", "red"):
            view["next_step"] = self.advice(verdict)
        with self._cond:
            self._shown += 1
            view["id"] = self._shown
            self._verdict = view
            self._verdict_until = self._clock() + self.verdict_seconds
            self._changed()

    def hold(self, seconds: float) -> None:
        """Keep the verdict on show for `seconds` from now (an officer is deciding on it)."""
        with self._cond:
            until = self._clock() + seconds
            if self._verdict is not None and until > self._verdict_until + 0.5:
                self._verdict_until = until
                self._changed()

    def release(self, seconds: float = 2.0) -> None:
        """The decision is made: let the verdict go after a short look at the confirmation."""
        with self._cond:
            if self._verdict is not None:
                self._verdict_until = min(self._verdict_until, self._clock() + seconds)
                self._changed()

    def update_desk(self, desk: dict[str, Any]) -> None:
        """Replace the officer part (who is signed in, what can be decided) if it changed."""
        with self._cond:
            if desk != self._desk:
                self._desk = desk
                self._changed()

    def update_status(self, status: dict[str, Any]) -> None:
        """Replace the status part (trust, network, clock, counts, camera) if it changed."""
        with self._cond:
            if status != self._status:
                self._status = dict(status)
                self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._cond.notify_all()

    @property
    def version(self) -> int:
        """Changes so far."""
        return self._version

    @property
    def has_verdict(self) -> bool:
        """A verdict is on screen now."""
        return self._verdict is not None

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, as JSON-ready data."""
        with self._cond:
            remaining = max(0.0, self._verdict_until - self._clock()) if self._verdict else 0.0
            return {"version": self._version, "language": self.language, "verdict": self._verdict,
                    "verdict_remaining_s": round(remaining, 2), "status": self._status, "desk": self._desk}

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until the version differs from `seen`, the timeout passes or close(); the version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen or self._closed, timeout)
            return self._version

    def expire_due(self) -> float:
        """Drop the verdict if its time is over; seconds until the next check is needed."""
        with self._cond:
            if self._verdict is None:
                return 1.0
            remaining = self._verdict_until - self._clock()
            if remaining > 0:
                return remaining
            self._verdict = None  # personal data leaves memory with the verdict
            self._changed()
            return 1.0

    def run_expiry(self, stop: threading.Event) -> None:
        """Loop clearing expired verdicts until `stop` is set."""
        while not stop.is_set():
            delay = self.expire_due()
            with self._cond:
                self._cond.wait_for(lambda: stop.is_set() or self._closed, min(delay, 1.0))

    def close(self) -> None:
        """Wake every waiter for shutdown and drop the verdict."""
        with self._cond:
            self._closed = True
            self._verdict = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """close() was called."""
        return self._closed
