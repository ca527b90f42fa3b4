"""The SQLite backend of the central store: one file in WAL mode through sqlite-utils.

The embedded default. Migrations are numbered functions; roll-ups (`dashboard.rollup`) are kept
in each batch's own transaction. The statements SQLite shares with PostgreSQL are in
`dashboard.store.sql` (`SqlStore`); this module holds the connections, the schema and the batch
insert.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlite_utils

from dashboard import rollup
from dashboard.store.base import Event, StoreError, counted_minute, to_ms
from dashboard.store.sql import SqlStore, check_events, count_inserted, warn_counter_reset

logger = logging.getLogger(__name__)

_INSERT_CHUNK = 200  # rows per INSERT statement (15 parameters each)


def _migration_1(db: Any) -> None:
    """The first schema: registry, events, per-minute counts, users, login failures, trust."""
    db["meta"].create({"key": str, "value": int}, pk="key")
    db.execute("INSERT INTO meta (key, value) VALUES ('changes', 0)")
    db["checkpoints"].create(
        {"id": str, "name": str, "district": str, "province": str, "policy": str},
        pk="id", not_null=["name", "district", "province"],
    )
    db["checkpoints"].create_index(["province", "district"])
    db["devices"].create(
        {"id": str, "checkpoint": str, "created_at": int, "state": str, "last_seen": int,
         "status_at": int, "software": str, "trust_version": int, "trust_age_s": float,
         "backlog": int, "clock": str, "fps": float, "temperature_c": float, "uptime_s": float},
        pk="id", not_null=["checkpoint", "created_at", "state"], defaults={"state": "unknown"},
        foreign_keys=[("checkpoint", "checkpoints", "id")],
    )
    db["devices"].create_index(["checkpoint"])
    db["events"].create(
        {"id": int, "device": str, "seq": int, "checkpoint": str, "ts": int, "received_at": int,
         "minute": int, "result": str, "reason": str, "policy": str, "trust_version": int},
        pk="id", not_null=["device", "seq", "checkpoint", "ts", "received_at", "minute", "result",
                           "reason", "policy"],
    )
    db["events"].create_index(["device", "seq"], unique=True)
    db["events"].create_index(["checkpoint", "id"])
    db["minute_counts"].create(
        {"minute": int, "checkpoint": str, "result": str, "reason": str, "count": int},
        pk=("minute", "checkpoint", "result", "reason"), not_null=["count"],
    )
    db["minute_counts"].create_index(["checkpoint", "minute"])
    db["users"].create(
        {"username": str, "password_hash": str, "role": str, "scope": str, "language": str,
         "created_at": int},
        pk="username", not_null=["password_hash", "role", "scope", "language", "created_at"],
    )
    db["login_failures"].create({"id": int, "username": str, "ip": str, "at": int}, pk="id")
    db["login_failures"].create_index(["username", "at"])
    db["login_failures"].create_index(["ip", "at"])
    db["trust_bundles"].create(
        {"version": int, "raw": bytes, "issued_at": int, "next_update": int, "uploaded_at": int,
         "uploaded_by": str},
        pk="version", not_null=["raw", "uploaded_at"],
    )


def _migration_2(db: Any) -> None:
    """Refused-message counts by reason, so operators see them across ingest restarts."""
    db["ingest_rejects"].create({"reason": str, "count": int}, pk="reason", not_null=["count"])


def _migration_3(db: Any) -> None:
    """Hourly and daily roll-ups, whole-country counts and all-time totals (backfilled), so
    dashboard queries read a few rows per day instead of one per minute and checkpoint."""
    rollup.cluster_minute_counts(db)
    rollup.create_tables(db)
    rollup.backfill(db)


DECISION_EVENT_COLUMNS = ("outcome", "officer", "follows_seq", "follows_result", "follows_reason")
_DECISION_KEY = ("checkpoint", "minute", "officer", "outcome", "reason", "follows_result", "follows_reason")


def _migration_4(db: Any) -> None:
    """Officer decisions: their fields on events (NULL for verdicts; adding nullable columns
    rewrites nothing) and a per-minute roll-up by officer, outcome, reason and followed verdict."""
    for name, sql_type in zip(DECISION_EVENT_COLUMNS, ("TEXT", "TEXT", "INTEGER", "TEXT", "TEXT"), strict=True):
        db.execute(f"ALTER TABLE events ADD COLUMN {name} {sql_type}")
    db.execute(
        "CREATE TABLE decision_counts (checkpoint TEXT NOT NULL, minute INTEGER NOT NULL, officer TEXT NOT NULL,"
        " outcome TEXT NOT NULL, reason TEXT NOT NULL, follows_result TEXT NOT NULL, follows_reason TEXT NOT NULL,"
        f" count INTEGER NOT NULL, PRIMARY KEY ({', '.join(_DECISION_KEY)})) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE officers (checkpoint TEXT NOT NULL REFERENCES checkpoints (id), id TEXT NOT NULL,"
        " name TEXT NOT NULL, role TEXT NOT NULL, pin TEXT NOT NULL, updated_at INTEGER NOT NULL,"
        " PRIMARY KEY (checkpoint, id))"
    )
    db.execute(
        "CREATE TABLE rosters (checkpoint TEXT PRIMARY KEY, version INTEGER NOT NULL, raw BLOB NOT NULL,"
        " published_at INTEGER NOT NULL)"
    )


def _migration_5(db: Any) -> None:
    """Completeness (each unit's highest stored seq, and when it last said its outbox was empty)
    and the audit log of administrative actions. Plain SQL, as a PostgreSQL port would write it."""
    db.execute("ALTER TABLE devices ADD COLUMN last_seq INTEGER")
    db.execute("ALTER TABLE devices ADD COLUMN complete_at INTEGER")
    db.execute("UPDATE devices SET last_seq = (SELECT MAX(seq) FROM events WHERE events.device = devices.id)")
    db.execute(
        "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL,"
        " action TEXT NOT NULL, target TEXT NOT NULL, province TEXT, detail TEXT NOT NULL DEFAULT '')"
    )
    db.execute("CREATE INDEX audit_log_province ON audit_log (province, id)")


def _migration_6(db: Any) -> None:
    """The broker node each unit last said it is on (national cluster; NULL on one broker)."""
    db.execute("ALTER TABLE devices ADD COLUMN broker TEXT")


def _migration_7(db: Any) -> None:
    """Attacks on officer PINs each unit last reported (counts and staff ids only)."""
    for column in _PIN_COLUMNS:
        db.execute(f"ALTER TABLE devices ADD COLUMN {column}")


_PIN_COLUMNS = ("pin_wrong_hour INTEGER", "pin_wrong_total INTEGER", "pin_lockouts INTEGER", "pin_locked INTEGER",
                "pin_officers TEXT")

# Append-only: migration N brings the schema from version N-1 to N. Never edit a shipped one.
MIGRATIONS: tuple[Any, ...] = (_migration_1, _migration_2, _migration_3, _migration_4, _migration_5,
                                _migration_6, _migration_7)


class SqliteStore(SqlStore):
    """The embedded store: one SQLite file in WAL mode, one connection per thread."""

    _integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self._timeout_s = timeout_s
        if self.path != ":memory:":
            try:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the folder for {self.path}: {e.strerror}") from None
        self._local = threading.local()
        self._all_conns: list[Any] = []
        self._conns_lock = threading.Lock()
        try:
            self.migrate()
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(f"{self.path} cannot be used as the chot store: {e}") from None

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.OperationalError as e:
                raise StoreError(f"cannot open the database {self.path}: {e}") from None
            self._local.conn = conn  # before the pragmas, so close() can release it if they fail
            with self._conns_lock:
                self._all_conns.append(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the ingest acknowledges a message only after commit, so a commit must survive
            # a power cut; batching keeps the fsync count low.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _db(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self._conn())
            self._local.db = db
        return db

    def _write(self) -> _Transaction:
        return _Transaction(self._conn())

    def _read(self) -> _Transaction:
        """A read transaction: the statements of one query see one snapshot, never half a batch."""
        return _Transaction(self._conn(), "BEGIN")

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._all_conns:
                try:
                    conn.close()
                except Exception:  # closing from another thread may be refused
                    logger.debug("could not close a store connection", exc_info=True)
            self._all_conns.clear()
        self._local = type(self._local)()

    # -- schema ------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version of the open file."""
        db = self._db()
        if "schema_version" not in db.table_names():
            return 0
        row = self._conn().execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> None:
        """Bring the file to the newest schema, one migration per transaction."""
        if self.schema_version() == len(MIGRATIONS):
            return  # the usual case: no write lock, so opening a store never waits on the ingest
        db = self._db()
        with self._write():
            if "schema_version" not in db.table_names():
                db["schema_version"].create({"version": int, "applied_at": int}, pk="version")
        while True:
            with self._write():
                # Re-read inside the write lock: another process may have migrated meanwhile.
                current = self.schema_version()
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.path} has schema version {current}, newer than this chot ({len(MIGRATIONS)})"
                    )
                if current == len(MIGRATIONS):
                    return
                MIGRATIONS[current](db)
                db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                           [current + 1, to_ms(datetime.now(timezone.utc))])
            logger.info("store %s migrated to schema version %d", self.path, current + 1)

    # -- ingest ------------------------------------------------------------------------------
    def record_events(self, batch: Sequence[Event]) -> int:
        if not batch:
            return 0
        check_events(batch)
        increments: dict[tuple[int, str, str, str], int] = {}
        decisions: dict[tuple[Any, ...], int] = {}
        seen: dict[str, int] = {}
        top_seq: dict[str, int] = {}
        rows = []
        for e in batch:
            # Event made its times aware UTC already: their epoch values directly (profiled: the
            # checks of to_ms twice an event were a tenth of record_events).
            received = int(e.received_at.timestamp() * 1000)
            rows.append((e.device, e.seq, e.checkpoint, int(e.ts.timestamp() * 1000), received, counted_minute(e),
                         e.result, e.reason, e.policy, e.trust_version, e.outcome, e.officer, e.follows_seq,
                         e.follows_result, e.follows_reason))
            if received > seen.get(e.device, 0):
                seen[e.device] = received
            if e.seq > top_seq.get(e.device, -1):
                top_seq[e.device] = e.seq
        new = 0
        with self._write() as conn:
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start:start + _INSERT_CHUNK]
                # RETURNING on INSERT OR IGNORE yields only the rows really inserted: the new events.
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO events (device, seq, checkpoint, ts, received_at, minute, result,"
                    " reason, policy, trust_version, outcome, officer, follows_seq, follows_result, follows_reason)"
                    " VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                    + " RETURNING device, seq, minute, checkpoint, result, reason, officer, outcome,"
                    " follows_result, follows_reason",
                    [value for row in chunk for value in row],
                ).fetchall()
                new += len(inserted)
                count_inserted(inserted, increments, decisions)
                if len(inserted) < len(chunk):
                    self._warn_reused_seqs(conn, chunk, {(d, q) for d, q, *_ in inserted})
            if increments:
                names = json.dumps(sorted({key[1] for key in increments}))
                registered = [row[0] for row in conn.execute(
                    "SELECT id FROM checkpoints WHERE id IN (SELECT value FROM json_each(?))", (names,))]
                rollup.add(conn, increments, registered)
            if decisions:
                conn.executemany(
                    f"INSERT INTO decision_counts ({', '.join(_DECISION_KEY)}, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET count = count + excluded.count",
                    [(*k, n) for k, n in decisions.items()],
                )
            conn.executemany(
                "UPDATE devices SET last_seen = MAX(COALESCE(last_seen, 0), ?),"
                " last_seq = MAX(COALESCE(last_seq, -1), ?) WHERE id = ?",
                [(at, top_seq[device], device) for device, at in seen.items()],
            )
            if new:
                conn.execute("UPDATE meta SET value = value + ? WHERE key = 'changes'", (new,))
        return new

    @staticmethod
    def _warn_reused_seqs(conn: Any, chunk: list[tuple[Any, ...]], inserted: set[tuple[str, int]]) -> None:
        """Warn once per device whose known seq came back with another time (see warn_counter_reset)."""
        warned: set[str] = set()
        for device, seq, _cp, ts, *_ in chunk:
            if (device, seq) in inserted or device in warned:
                continue
            row = conn.execute("SELECT ts FROM events WHERE device = ? AND seq = ?", (device, seq)).fetchone()
            if row is not None and row[0] != ts:
                warned.add(device)
                warn_counter_reset(device, seq)

class _Transaction:
    """`with` block around BEGIN IMMEDIATE (or `begin`) ... COMMIT (ROLLBACK on error) on one connection."""

    def __init__(self, conn: Any, begin: str = "BEGIN IMMEDIATE") -> None:
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> Any:
        self.conn.execute(self.begin)
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
