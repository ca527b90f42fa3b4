"""Live updates pushed by PostgreSQL: the ingest's NOTIFY, one LISTEN connection per web process.

Each committed batch of events (and each unit status) announces, on the channel `chot_changes`,
the store's new change marker and the checkpoints it touched: `{"m": 1234, "c": ["IC7", ...]}`
(`"c": null` when a batch touched too many to list). No personal data: ids of places and a counter.

A web process keeps one `ChangeFeed`: a thread holding one connection that LISTENs, and wakes
only the subscriptions (live streams) whose checkpoints changed. When that connection is lost,
`listening` turns False and `problem` says why, every subscription is woken once so its stream
falls back to polling the change marker, and the thread reconnects every `retry_s`; once back,
every stream is woken again (changes made meanwhile were not announced to this process).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "chot_changes"
MAX_LISTED = 400  # checkpoints named in one payload (PostgreSQL's limit is 8000 bytes); more: "all"


def payload(marker: int, checkpoints: Iterable[str]) -> str:
    """The text NOTIFY carries for a change: the marker and the touched checkpoints (or all)."""
    names = sorted(set(checkpoints))
    return json.dumps({"m": marker, "c": names if len(names) <= MAX_LISTED else None}, separators=(",", ":"))


class Subscription:
    """One live stream's interest: woken when a change touches one of `checkpoints` (None: any)."""

    def __init__(self, feed: ChangeFeed, checkpoints: frozenset[str] | None) -> None:
        self.feed = feed
        self.checkpoints = checkpoints
        self._event = threading.Event()

    def wait(self, timeout_s: float) -> bool:
        """Sleep until a change of interest (or the feed's state changed); False on timeout."""
        woke = self._event.wait(max(0.0, timeout_s))
        self._event.clear()
        return woke

    def wake(self) -> None:
        self._event.set()

    def close(self) -> None:
        self.feed.unsubscribe(self)


class ChangeFeed:
    """The LISTEN side, one per web process (see the module docstring)."""

    def __init__(self, url: str, location: str, *, retry_s: float = 5.0, connect_timeout_s: float = 5.0) -> None:
        self._url = url
        self._location = location
        self.retry_s = retry_s
        self._timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._stop = threading.Event()
        self._first = threading.Event()
        self.listening = False
        self.problem: str | None = "not connected yet"
        self.marker = 0
        self.backend_pid: int | None = None
        self._thread = threading.Thread(target=self._run, name="chot-store-listen", daemon=True)
        self._thread.start()
        self._first.wait(connect_timeout_s + 1.0)  # the first attempt's outcome, so a page starts right

    # -- streams -----------------------------------------------------------------------------
    def subscribe(self, checkpoints: Iterable[str] | None) -> Subscription:
        sub = Subscription(self, None if checkpoints is None else frozenset(checkpoints))
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def _wake(self, checkpoints: frozenset[str] | None) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if checkpoints is None or sub.checkpoints is None or not checkpoints.isdisjoint(sub.checkpoints):
                sub.wake()

    def deliver(self, text: str) -> None:
        """Take one notification's payload: move the marker, wake the streams it concerns."""
        try:
            data = json.loads(text)
            marker = int(data["m"])
            listed = data.get("c")
            checkpoints = None if listed is None else frozenset(str(c) for c in listed)
        except (ValueError, KeyError, TypeError):
            logger.warning("live updates: a notification that is not chot's was ignored")
            return
        with self._lock:
            self.marker = max(self.marker, marker)
        self._wake(checkpoints)

    # -- the listening thread -------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, int(self._timeout_s)),
                                       application_name="chot-listen")
                conn.execute(f"LISTEN {CHANNEL}")
                row = conn.execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()
                with self._lock:
                    self.marker = max(self.marker, int(row[0]) if row else 0)
                    self.listening, self.problem, self.backend_pid = True, None, conn.info.backend_pid
                logger.info("live updates: listening to %s for changes", self._location)
                self._wake(None)  # changes made while this process was not listening
                self._first.set()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        self.deliver(note.payload)
            except psycopg.Error as e:
                text = " ".join(str(e).split()) or type(e).__name__
                with self._lock:
                    was = self.listening
                    self.listening, self.problem, self.backend_pid = False, f"no listening connection: {text}", None
                if was or not self._first.is_set():
                    logger.warning("live updates: lost the listening connection to %s (%s); live pages poll"
                                   " the store until it is back", self._location, text)
                self._wake(None)  # every stream polls from now on
                self._first.set()
                self._stop.wait(self.retry_s)
            finally:
                if conn is not None:
                    conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3.0)
        with self._lock:
            self.listening = False
            self.problem = "closed"
