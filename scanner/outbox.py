"""The unit's durable event queue: every verdict is written here before it is reported.

One SQLite file (WAL, synchronous=FULL) holds the events not yet stored by the central, the
per-device sequence counter and today's counts. An event lives here until the central's ingest
acknowledges it on the unit's ack topic; the broker's PUBACK only marks it handed over
(`sent_at`), because a broker that dies before delivering loses what it had acknowledged.
Only the event schema may be stored: no names, dates of birth, certificate ids or payloads
(privacy by construction).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from protocol.events import (
    VERDICT_FIELDS,
    EventFieldError,
    counted_as,
    encode_event,
    validate_decision,
    validate_verdict,
)
from protocol.fields import DECISION_KINDS, RESULTS

logger = logging.getLogger(__name__)

EVENT_FIELDS = VERDICT_FIELDS
_EVENT_COLUMNS_V1 = ("seq", "ts", "result", "reason", "policy", "trust_version")
# Officer decisions (protocol.events) share the table and the seq: `result` holds how they
# are counted ("decision" after a scan, "manual" without), `reason` the decision's reason.
DECISION_COLUMNS = {"kind": "TEXT", "outcome": "TEXT", "officer": "TEXT", "follows_seq": "INTEGER",
                    "follows_result": "TEXT", "follows_reason": "TEXT"}
COUNTED_KINDS = DECISION_KINDS
# Seconds a handed-over event's `sent_at` may lie ahead of the clock before it counts as due
# (the clock went back, e.g. a Pi without RTC corrected by NTP): never stuck, at worst resent.
_CLOCK_BACK_SLACK = 60.0
# The next seq is also kept in a small sidecar file (`<outbox>.seq`), so a restored or replaced
# outbox file never hands out a seq twice (the ingest would silently drop the repeat).


class OutboxError(Exception):
    """Base of every outbox error; `reason` is readable by an operator."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class OutboxFieldError(OutboxError):
    """An event carried a field outside the event schema, or a value of the wrong shape."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"event field {field!r}: {problem}")


class OutboxCorruptError(OutboxError):
    """The outbox file is damaged or not an outbox; it was moved aside, never deleted."""

    def __init__(self, path: Path, moved_to: Path | None, problem: str) -> None:
        self.path = path
        self.moved_to = moved_to
        self.problem = problem
        kept = f"kept as {moved_to}" if moved_to else "left in place"
        super().__init__(f"outbox {path} is unusable ({problem}); {kept}; events in it were not sent")


@dataclass(frozen=True)
class Event:
    """One verdict as reported: the only shape that leaves the unit."""

    seq: int
    ts: str
    result: str
    reason: str
    policy: str | None
    trust_version: int | None
    sent_at: float | None = None
    """When the broker last acknowledged it (Unix time), None if never; not in the payload."""
    kind: str | None = None
    """None for a verdict, "decision" for an officer's decision."""
    outcome: str | None = None
    officer: str | None = None
    follows_seq: int | None = None
    follows_result: str | None = None
    follows_reason: str | None = None

    def payload(self) -> bytes:
        """JSON bytes for the MQTT event topic (protocol.events)."""
        return encode_event(self.seq, self.ts, vars(self))


class Outbox:
    """SQLite outbox: `record` durably, `pending` in seq order, `mark_sent` on the broker's
    PUBACK, `acknowledge` when the central has stored them."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._seq_path = self.path.with_name(self.path.name + ".seq")
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._open()
        self.db = sqlite_utils.Database(self._conn)
        self._seq_fd = os.open(self._seq_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._next_seq = self._restore_seq()

    # -- opening -----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self._ensure_schema(conn)
            return conn
        except sqlite3.OperationalError as e:
            # Locked, unreadable, no space: the file may be fine, so leave it where it is.
            if conn is not None:
                conn.close()
            raise OutboxError(f"cannot open outbox {self.path}: {e}") from None
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            moved = self._move_aside()
            logger.error("outbox %s is corrupt (%s); moved to %s", self.path, e, moved)
            raise OutboxCorruptError(self.path, moved, str(e)) from None

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        db = sqlite_utils.Database(conn)
        if not db["events"].exists():
            db.table("events").create(
                {"seq": int, "ts": str, "result": str, "reason": str, "policy": str,
                 "trust_version": int, "sent_at": float},
                pk="seq", not_null={"ts", "result", "reason"},
            )
        elif set(db["events"].columns_dict) == set(_EVENT_COLUMNS_V1):
            self._add_sent_at(conn)
        if db["events"].exists() and set(db["events"].columns_dict) == {*_EVENT_COLUMNS_V1, "sent_at"}:
            self._add_decision_columns(conn)
        if not db["meta"].exists():
            db.table("meta").create({"key": str, "value": int}, pk="key")
        if not db["counts"].exists():
            db.table("counts").create({"day": str, "result": str, "n": int}, pk=("day", "result"))
        expected = {"events": {*_EVENT_COLUMNS_V1, "sent_at", *DECISION_COLUMNS},
                    "meta": {"key", "value"}, "counts": {"day", "result", "n"}}
        for table, columns in expected.items():
            have = set(db[table].columns_dict)
            if have != columns:
                raise sqlite3.DatabaseError(f"table {table} has columns {sorted(have)}, not an outbox")
        conn.execute("CREATE INDEX IF NOT EXISTS events_unsent ON events (sent_at, seq)")

    def _add_sent_at(self, conn: sqlite3.Connection) -> None:
        """Upgrade an outbox written before central acknowledgements, in place, keeping every row."""
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
            if "sent_at" not in columns:  # another process may have upgraded it meanwhile
                # NULL = never handed over: right for every old row (old units deleted on PUBACK).
                conn.execute("ALTER TABLE events ADD COLUMN sent_at REAL")
                logger.info("outbox %s upgraded: events now wait for the central's acknowledgement",
                            self.path)

    def _add_decision_columns(self, conn: sqlite3.Connection) -> None:
        """Upgrade an outbox written before officer decisions, in place (verdict rows keep NULLs)."""
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
            for name, sql_type in DECISION_COLUMNS.items():
                if name not in columns:
                    conn.execute(f"ALTER TABLE events ADD COLUMN {name} {sql_type}")

    def _move_aside(self) -> Path | None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            os.replace(self.path, target)
        except OSError:
            return None
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
        return target

    def _restore_seq(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        top = self._conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        db_next = max(row[0] if row else 1, top + 1)
        mark = self._read_seq_mark()
        if mark > db_next:
            # The file is older than seqs already handed out: restored from a copy, or new.
            logger.warning("outbox %s is behind its seq mark; continuing at %d", self.path, mark)
        next_seq = max(db_next, mark)
        self._write_seq_mark(next_seq)
        return next_seq

    def _read_seq_mark(self) -> int:
        try:
            return int(os.pread(self._seq_fd, 32, 0).decode("ascii").strip() or 0)
        except (OSError, ValueError) as e:
            logger.warning("outbox seq mark %s unreadable (%s); using the outbox alone",
                           self._seq_path, e)
            return 0

    def _write_seq_mark(self, next_seq: int) -> None:
        """Fixed-size in-place write + fdatasync: one sector, so old or new, never half."""
        os.pwrite(self._seq_fd, f"{next_seq:>20}\n".encode("ascii"), 0)
        os.fdatasync(self._seq_fd)

    # -- public API ----------------------------------------------------------------------
    def record(self, fields: dict[str, Any], ts: datetime) -> int:
        """Store one event (a verdict's fields, or a decision's with `kind`) durably and return its
        seq; refuse anything outside the schema."""
        if "kind" in fields:
            try:
                clean = validate_decision(fields)
            except EventFieldError as e:
                raise OutboxFieldError(e.field, e.problem) from None
            clean["result"] = counted_as(clean)
        else:
            clean = dict.fromkeys(DECISION_COLUMNS) | validate_fields(fields)
        if ts.tzinfo is None:
            raise OutboxFieldError("ts", "must be timezone-aware")
        ts_text = ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        day = ts.astimezone().date().isoformat()
        with self._lock:
            seq = self._next_seq
            self._write_seq_mark(seq + 1)  # first the mark: a crash in between leaves a gap, not a reuse
            with self._conn:  # one transaction: event, counter and seq commit together
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(
                    "INSERT INTO events (seq, ts, result, reason, policy, trust_version, kind, outcome,"
                    " officer, follows_seq, follows_result, follows_reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, ts_text, clean["result"], clean["reason"], clean["policy"],
                     clean["trust_version"], *(clean[name] for name in DECISION_COLUMNS)),
                )
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (seq + 1,))
                self._conn.execute(
                    "INSERT INTO counts (day, result, n) VALUES (?, ?, 1) "
                    "ON CONFLICT(day, result) DO UPDATE SET n=n+1", (day, clean["result"]))
            self._next_seq = seq + 1
        return seq

    def pending(self, limit: int = 100, resend_before: float | None = None) -> list[Event]:
        """Events to (re)send, lowest seq first: never handed to the broker, plus (when
        `resend_before`, Unix time, is given) those handed over before it and still not
        acknowledged by the central."""
        columns = ("seq, ts, result, reason, policy, trust_version, sent_at, kind, outcome, officer, follows_seq,"
                   " follows_result, follows_reason")
        with self._lock:
            if resend_before is None:
                rows = self._conn.execute(
                    f"SELECT {columns} FROM events WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
                    (int(limit),)).fetchall()
            else:
                ahead = max(resend_before, time.time()) + _CLOCK_BACK_SLACK
                rows = self._conn.execute(
                    f"SELECT {columns} FROM events WHERE sent_at IS NULL OR sent_at < ? OR sent_at > ? "
                    "ORDER BY seq LIMIT ?", (resend_before, ahead, int(limit))).fetchall()
        return [Event(*row) for row in rows]

    def mark_sent(self, seq: int, at: float | None = None) -> None:
        """The broker acknowledged this event: keep it, marked handed over, until the central
        acknowledges it (idempotent; an event already acknowledged stays gone)."""
        with self._lock, self._conn:
            self._conn.execute("UPDATE events SET sent_at = ? WHERE seq = ?",
                               (time.time() if at is None else at, seq))

    def acknowledge(self, ranges: Iterable[tuple[int, int]]) -> int:
        """The central stored these seqs (inclusive `(first, last)` ranges): forget them; returns
        how many were still here."""
        spans = [(int(first), int(last)) for first, last in ranges]
        if not spans:
            return 0
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return sum(self._conn.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", span).rowcount
                       for span in spans)

    def backlog(self) -> int:
        """How many events the central has not acknowledged yet (sent or not)."""
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def unsent(self) -> int:
        """How many events were never handed to the broker."""
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM events WHERE sent_at IS NULL").fetchone()[0]

    def counts_today(self, day: date, kinds: tuple[str, ...] = RESULTS) -> dict[str, int]:
        """Verdicts per result on `day` (the unit's local date); with `kinds=COUNTED_KINDS` the
        officer decisions after a scan ("decision") and manual checks ("manual")."""
        counts = dict.fromkeys(kinds, 0)
        with self._lock:
            rows = self._conn.execute(
                "SELECT result, n FROM counts WHERE day = ?", (day.isoformat(),)).fetchall()
        counts.update({result: n for result, n in rows if result in counts})
        return counts

    @property
    def next_seq(self) -> int:
        """The seq the next `record` will use."""
        return self._next_seq

    def close(self) -> None:
        """Close the database (the WAL is checkpointed by SQLite)."""
        with self._lock:
            self._conn.close()
            os.close(self._seq_fd)


def validate_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check a verdict's fields against the contract; the error names the field, never its value."""
    try:
        return validate_verdict(fields)
    except EventFieldError as e:
        raise OutboxFieldError(e.field, e.problem) from None
