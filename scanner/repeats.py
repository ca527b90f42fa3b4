"""Spot a certificate shown twice at one unit, without keeping its identifier.

The verifier gives each verdict a keyed hash of the certificate identifier (`Verdict.uci_hash`);
the key is made fresh in memory when the unit starts and never written anywhere, so the hashes
cannot be linked to a certificate, to another unit, or across restarts. This log keeps those
hashes in memory only, for a few hours, to tell the officer "this certificate was already
scanned here at 07:42": a hint that one pass may be shared between people.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from datetime import datetime, timedelta


def new_key() -> bytes:
    """A per-process key for the verifier's keyed certificate-id hash."""
    return secrets.token_bytes(32)


class RepeatLog:
    """The last time each hashed certificate id was judged here, bounded in size and age."""

    def __init__(self, window: timedelta = timedelta(hours=12), max_entries: int = 20_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, uci_hash: str | None, now: datetime) -> datetime | None:
        """Record a scan; return when the same certificate was last scanned within the window."""
        if not uci_hash:
            return None
        with self._lock:
            previous = self._seen.pop(uci_hash, None)
            self._seen[uci_hash] = now
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            self._expire(now)
        if previous is not None and now - previous <= self.window:
            return previous
        return None

    def _expire(self, now: datetime) -> None:
        while self._seen:
            oldest_key = next(iter(self._seen))
            if now - self._seen[oldest_key] <= self.window:
                break
            del self._seen[oldest_key]

    def __len__(self) -> int:
        return len(self._seen)
