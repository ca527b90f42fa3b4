"""The SQLite backend of the central store: one file in WAL mode through sqlite-utils.

The embedded default. Migrations are numbered functions; roll-ups (`dashboard.rollup`) are kept
in each batch's own transaction.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from dashboard import rollup
from dashboard.scope import Scope
from dashboard.store.base import (
    AUDIT_ACTIONS, CODE_RE, COUNTED, LANGUAGES, LEVELS, MAX_BUCKETS, RESULTS, ROLES, STATUS_COLUMNS, USERNAME_RE,
    AuditEntry, Bucket, Checkpoint, Counts, DecisionCount, Device, OfficerRecord, RosterRecord, DuplicateUser, Event,
    GroupCounts, InvalidRecord, ReasonCount, OFFICER_RE, Store, StatusUpdate, StoreError, TrustRecord, UnknownCheckpoint,
    UnknownUser, User, check_id,
    counted_minute, from_ms, minute_range, to_ms,
)
from dashboard.store.sql import SqlStore

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
    for name, sql_type in zip(DECISION_EVENT_COLUMNS, ("TEXT", "TEXT", "INTEGER", "TEXT", "TEXT")):
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


# Append-only: migration N brings the schema from version N-1 to N. Never edit a shipped one.
MIGRATIONS: tuple[Any, ...] = (_migration_1, _migration_2, _migration_3, _migration_4, _migration_5)


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
                except Exception:  # noqa: BLE001 - closing from another thread may be refused
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

    # -- registry ----------------------------------------------------------------------------
    def upsert_checkpoint(
        self, id: str, name: str, district: str, province: str, policy: str | None = None
    ) -> Checkpoint:
        check_id("checkpoint", id)
        for label, value in (("name", name), ("district", district), ("province", province)):
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise InvalidRecord(f"checkpoint {label} must be 1-200 characters, got {value!r}")
        if policy is not None and not CODE_RE.match(policy):
            raise InvalidRecord(f"policy must be a lower-case code, got {policy!r}")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM checkpoints WHERE id = ?", (id,)).fetchone() is None:
                rollup.include_checkpoint(conn, id)  # events counted before it was registered
            conn.execute(
                "INSERT INTO checkpoints (id, name, district, province, policy) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, district = excluded.district,"
                " province = excluded.province, policy = excluded.policy",
                (id, name.strip(), district.strip(), province.strip(), policy),
            )
        return Checkpoint(id, name.strip(), district.strip(), province.strip(), policy)

    def list_checkpoints(self, scope: Scope) -> list[Checkpoint]:
        where, params = scope.sql("province", "district", "id")
        rows = self._conn().execute(
            f"SELECT id, name, district, province, policy FROM checkpoints WHERE {where}"
            " ORDER BY province, district, id", params,
        ).fetchall()
        return [Checkpoint(*row) for row in rows]

    def add_device(self, device_id: str, checkpoint: str) -> Device:
        check_id("device", device_id)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM checkpoints WHERE id = ?", (checkpoint,)).fetchone() is None:
                raise UnknownCheckpoint(checkpoint)
            conn.execute(
                "INSERT INTO devices (id, checkpoint, created_at, state) VALUES (?, ?, ?, 'unknown')"
                " ON CONFLICT(id) DO UPDATE SET checkpoint = excluded.checkpoint",
                (device_id, checkpoint, to_ms(datetime.now(timezone.utc))),
            )
        device = self.get_device(device_id)
        assert device is not None
        return device

    def remove_device(self, device_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            return cur.rowcount > 0

    _DEVICE_SELECT = (
        "SELECT d.id, d.checkpoint, c.district, c.province, c.name, d.created_at, d.state,"
        " d.last_seen, d.status_at, d.software, d.trust_version, d.trust_age_s, d.backlog, d.clock,"
        " d.fps, d.temperature_c, d.uptime_s, d.last_seq, d.complete_at"
        " FROM devices d JOIN checkpoints c ON c.id = d.checkpoint"
    )

    @staticmethod
    def _device(row: Sequence[Any]) -> Device:
        return Device(
            row[0], row[1], row[2], row[3], row[4], from_ms(row[5]) or datetime.now(timezone.utc),
            row[6], from_ms(row[7]), from_ms(row[8]), *row[9:17], row[17], from_ms(row[18]),
        )

    def get_device(self, device_id: str) -> Device | None:
        row = self._conn().execute(self._DEVICE_SELECT + " WHERE d.id = ?", (device_id,)).fetchone()
        return None if row is None else self._device(row)

    def list_devices(self, scope: Scope) -> list[Device]:
        where, params = scope.sql("c.province", "c.district", "c.id")
        rows = self._conn().execute(
            self._DEVICE_SELECT + f" WHERE {where} ORDER BY d.checkpoint, d.id", params
        ).fetchall()
        return [self._device(row) for row in rows]

    # -- ingest ------------------------------------------------------------------------------
    def record_events(self, batch: Sequence[Event]) -> int:
        if not batch:
            return 0
        for event in batch:
            if not isinstance(event, Event):
                raise InvalidRecord(f"record_events takes Event records, got {type(event).__name__}")
        increments: dict[tuple[int, str, str, str], int] = {}
        decisions: dict[tuple[Any, ...], int] = {}
        seen: dict[str, int] = {}
        top_seq: dict[str, int] = {}
        rows = []
        for e in batch:
            received = to_ms(e.received_at)
            rows.append((e.device, e.seq, e.checkpoint, to_ms(e.ts), received, counted_minute(e), e.result,
                         e.reason, e.policy, e.trust_version, e.outcome, e.officer, e.follows_seq,
                         e.follows_result, e.follows_reason))
            seen[e.device] = max(seen.get(e.device, 0), received)
            top_seq[e.device] = max(top_seq.get(e.device, -1), e.seq)
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
                for _device, _seq, minute, cp, result, reason, officer, outcome, f_result, f_reason in inserted:
                    key = (minute, cp, result, reason)
                    increments[key] = increments.get(key, 0) + 1
                    if officer is not None:
                        dkey = (cp, minute, officer, outcome, reason, f_result or "", f_reason or "")
                        decisions[dkey] = decisions.get(dkey, 0) + 1
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
        """A duplicate (device, seq) with a different time is not a redelivery: the unit's counter
        restarted (a new SD card?), and its new events would be dropped. Say so loudly."""
        warned: set[str] = set()
        for device, seq, _cp, ts, *_ in chunk:
            if (device, seq) in inserted or device in warned:
                continue
            row = conn.execute("SELECT ts FROM events WHERE device = ? AND seq = ?", (device, seq)).fetchone()
            if row is not None and row[0] != ts:
                warned.add(device)
                logger.warning("device %s sent seq %d again with another time: its sequence counter was"
                               " reset, so these events are not counted; register it under a new id", device, seq)

    def record_status(self, device_id: str, status: StatusUpdate, received_at: datetime) -> bool:
        at = to_ms(received_at)
        values = [getattr(status, name) for name in STATUS_COLUMNS]
        sets = ", ".join(f"{name} = ?" for name in STATUS_COLUMNS)
        with self._write() as conn:
            if status.state == "online":
                # An online unit with an empty outbox has delivered everything it judged until now.
                empty = status.backlog == 0
                cur = conn.execute(
                    f"UPDATE devices SET state = ?, status_at = ?, {sets},"
                    " last_seen = MAX(COALESCE(last_seen, 0), ?),"
                    " complete_at = CASE WHEN ? THEN MAX(COALESCE(complete_at, 0), ?) ELSE complete_at END"
                    " WHERE id = ?",
                    (status.state, at, *values, at, 1 if empty else 0, at, device_id),
                )
            else:
                # An offline will carries no health: keep the last known values for the page.
                cur = conn.execute(
                    "UPDATE devices SET state = ?, status_at = ? WHERE id = ?",
                    (status.state, at, device_id),
                )
            if cur.rowcount:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'changes'")
            return cur.rowcount > 0

    # -- queries -----------------------------------------------------------------------------
    def _sum_counts(self, scope: Scope, start: int, end: int, keys: Callable[[rollup.Piece], str], *,
                    grid: tuple[int, int] | None = None, per_checkpoint: bool = False) -> dict[tuple[Any, ...], int]:
        """SUM(count) grouped by the `keys` expression over minutes [start, end), read from the
        coarsest roll-ups that fit; unscoped queries not split by checkpoint read the country's."""
        conn = self._conn()
        country = scope.everything and not per_checkpoint
        if country:
            where, params = "1 = 1", []
        else:
            # Same rows as a join on checkpoints: only registered checkpoints inside the scope.
            inner, params = scope.sql("province", "district", "id")
            where = f"checkpoint IN (SELECT id FROM checkpoints WHERE {inner})"
        sums: dict[tuple[Any, ...], int] = {}
        for piece in rollup.split_range(start, end, grid):
            table = piece.country_table if country else piece.checkpoint_table
            expr = keys(piece)
            rows = conn.execute(
                f"SELECT {expr}, SUM(count) FROM {table} WHERE unit >= ? AND unit < ? AND {where} GROUP BY {expr}",
                [piece.lo, piece.hi, *params],
            )
            for *key, n in rows:
                sums[tuple(key)] = sums.get(tuple(key), 0) + int(n)
        return sums

    def _all_time_totals(self, scope: Scope, start: int, end: int) -> dict[tuple[str, str], int] | None:
        """Per (checkpoint, result) counts from the running totals, if [start, end) holds every
        counted minute (the `/metrics` case); None when it does not."""
        conn = self._conn()
        first, last = (row[0] for row in conn.execute(
            "SELECT value FROM meta WHERE key IN ('first_minute', 'last_minute') ORDER BY key"))
        if first is not None and not start <= first <= last < end:
            return None
        inner, params = scope.sql("province", "district", "id")
        rows = conn.execute(
            f"SELECT checkpoint, result, count FROM {rollup.TOTALS_TABLE}"
            f" WHERE checkpoint IN (SELECT id FROM checkpoints WHERE {inner})", params,
        )
        return {(cp, result): int(n) for cp, result, n in rows}

    def totals(self, scope: Scope, since: datetime, until: datetime) -> Counts:
        start, end = minute_range(since, until)
        by_result: dict[str, int] = {}
        with self._read():
            all_time = self._all_time_totals(scope, start, end)
            if all_time is not None:
                for (_cp, result), n in all_time.items():
                    by_result[result] = by_result.get(result, 0) + n
            else:
                by_result = {key[0]: n for key, n in self._sum_counts(scope, start, end, lambda p: "result").items()}
        return Counts(**{result: n for result, n in by_result.items() if result in COUNTED and n})

    def totals_by(self, scope: Scope, since: datetime, until: datetime, level: str) -> list[GroupCounts]:
        if level not in LEVELS:
            raise InvalidRecord(f"level must be province, district or checkpoint, got {level!r}")
        start, end = minute_range(since, until)
        where, params = scope.sql("province", "district", "id")
        column = {"province": 3, "district": 2, "checkpoint": 0}[level]
        with self._read() as conn:
            sums: Mapping[tuple[Any, ...], int] | None = self._all_time_totals(scope, start, end)
            if sums is None:
                sums = self._sum_counts(scope, start, end, lambda p: "checkpoint, result", per_checkpoint=True)
            # Provinces and districts are labelled by their code, checkpoints by their name.
            place = {row[0]: (row[column], row[1] if level == "checkpoint" else row[column])
                     for row in conn.execute(f"SELECT id, name, district, province FROM checkpoints WHERE {where}",
                                             params)}
        groups: dict[str, tuple[str, dict[str, int]]] = {}
        for (cp, result), n in sums.items():
            if cp in place:
                key, label = place[cp]
                counts = groups.setdefault(key, (label, {}))[1]
                counts[result] = counts.get(result, 0) + n
        return [GroupCounts(k, groups[k][0], Counts(**groups[k][1])) for k in sorted(groups)]

    def timeseries(self, scope: Scope, since: datetime, until: datetime, bucket_s: int) -> list[Bucket]:
        if not isinstance(bucket_s, int) or bucket_s < 60 or bucket_s % 60:
            raise InvalidRecord(f"bucket_s must be a positive multiple of 60, got {bucket_s!r}")
        start, end = minute_range(since, until)
        width = bucket_s // 60
        count = -(-(end - start) // width)
        if count > MAX_BUCKETS:
            raise InvalidRecord(f"{count} buckets asked for; at most {MAX_BUCKETS}: use wider buckets")
        # Units of a roll-up are used only where they fall inside one bucket (see split_range).
        with self._read():
            sums = self._sum_counts(scope, start, end, lambda p: f"(unit * {p.size} - {start}) / {width}, result",
                                    grid=(start, width))
        filled: list[dict[str, int]] = [{} for _ in range(count)]
        for (index, result), n in sums.items():
            filled[int(index)][result] = n
        return [
            Bucket(datetime.fromtimestamp((start + i * width) * 60, tz=timezone.utc), Counts(**c))
            for i, c in enumerate(filled)
        ]

    def reasons(self, scope: Scope, since: datetime, until: datetime) -> list[ReasonCount]:
        start, end = minute_range(since, until)
        with self._read():
            sums = self._sum_counts(scope, start, end, lambda p: "result, reason")
        ordered = sorted(sums.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
        # Verdict reasons only: decisions have their own counts (decision_counts).
        return [ReasonCount(result, reason, n) for (result, reason), n in ordered if result in RESULTS]

    def decision_counts(self, scope: Scope, since: datetime, until: datetime) -> list[DecisionCount]:
        start, end = minute_range(since, until)
        inner, params = scope.sql("province", "district", "id")
        rows = self._conn().execute(
            "SELECT checkpoint, officer, outcome, reason, follows_result, follows_reason, SUM(count)"
            " FROM decision_counts WHERE minute >= ? AND minute < ?"
            f" AND checkpoint IN (SELECT id FROM checkpoints WHERE {inner})"
            " GROUP BY checkpoint, officer, outcome, reason, follows_result, follows_reason"
            " ORDER BY checkpoint, officer, outcome, reason, follows_result, follows_reason",
            [start, end, *params],
        ).fetchall()
        return [DecisionCount(*row[:6], int(row[6])) for row in rows]

    def recent_events(self, scope: Scope, checkpoint: str | None = None, limit: int = 50) -> list[Event]:
        limit = max(0, min(int(limit), 1000))
        where, params = scope.sql("c.province", "c.district", "c.id")
        if checkpoint is not None:
            where += " AND e.checkpoint = ?"
            params.append(checkpoint)
        rows = self._conn().execute(
            "SELECT e.device, e.checkpoint, e.seq, e.ts, e.result, e.reason, e.policy,"
            " e.trust_version, e.received_at, e.outcome, e.officer, e.follows_seq, e.follows_result,"
            " e.follows_reason FROM events e JOIN checkpoints c ON c.id = e.checkpoint"
            f" WHERE {where} ORDER BY e.id DESC LIMIT ?", [*params, limit],
        ).fetchall()
        return [
            Event(d, cp, seq, from_ms(ts), res, reason, pol, tv, from_ms(rec), *rest)  # type: ignore[arg-type]
            for d, cp, seq, ts, res, reason, pol, tv, rec, *rest in rows
        ]

    def change_marker(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()
        return int(row[0])

    def prune_events(self, received_before: datetime) -> int:
        # Per-minute counts are kept, so totals and charts stay exact; only the single rows (used
        # for recent lists and to recognise redeliveries) go. Units resend within hours, not months.
        cutoff = to_ms(received_before)
        deleted = 0
        while True:  # in slices, so the ingest is never locked out for long
            with self._write() as conn:
                cur = conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_at < ? LIMIT 5000)",
                    (cutoff,),
                )
            deleted += cur.rowcount
            if cur.rowcount < 5000:
                return deleted

    def record_rejects(self, counts: Mapping[str, int]) -> None:
        rows = [(reason[:64], int(n)) for reason, n in counts.items() if n]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO ingest_rejects (reason, count) VALUES (?, ?)"
                " ON CONFLICT(reason) DO UPDATE SET count = count + excluded.count", rows,
            )

    def reject_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT reason, count FROM ingest_rejects ORDER BY reason")
        return {reason: int(n) for reason, n in rows}

    # -- officers and rosters ------------------------------------------------------------------
    def upsert_officer(self, checkpoint: str, officer_id: str, name: str, role: str, pin: str) -> OfficerRecord:
        if not isinstance(officer_id, str) or not OFFICER_RE.match(officer_id):
            raise InvalidRecord(f"officer id must be 1-32 letters, digits, '_', '.' or '-', got {officer_id!r}")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            raise InvalidRecord("officer name must be 1-100 characters")
        if not isinstance(pin, str) or not pin.startswith("{"):
            raise InvalidRecord("an officer needs a PIN hash")
        now = to_ms(datetime.now(timezone.utc))
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM checkpoints WHERE id = ?", (checkpoint,)).fetchone() is None:
                raise UnknownCheckpoint(checkpoint)
            conn.execute(
                "INSERT INTO officers (checkpoint, id, name, role, pin, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (checkpoint, id) DO UPDATE SET name = excluded.name, role = excluded.role,"
                " pin = excluded.pin, updated_at = excluded.updated_at",
                (checkpoint, officer_id, name.strip(), role, pin, now),
            )
        return OfficerRecord(checkpoint, officer_id, name.strip(), role, pin, from_ms(now))

    def remove_officer(self, checkpoint: str, officer_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM officers WHERE checkpoint = ? AND id = ?", (checkpoint, officer_id))
            return cur.rowcount > 0

    def list_officers(self, scope: Scope, checkpoint: str | None = None) -> list[OfficerRecord]:
        inner, params = scope.sql("province", "district", "id")
        where = f"checkpoint IN (SELECT id FROM checkpoints WHERE {inner})"
        if checkpoint is not None:
            where += " AND checkpoint = ?"
            params.append(checkpoint)
        rows = self._conn().execute(
            f"SELECT checkpoint, id, name, role, pin, updated_at FROM officers WHERE {where} ORDER BY checkpoint, id",
            params,
        ).fetchall()
        return [OfficerRecord(*row[:5], from_ms(row[5])) for row in rows]

    def save_roster(self, checkpoint: str, version: int, raw: bytes) -> RosterRecord:
        now = to_ms(datetime.now(timezone.utc))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO rosters (checkpoint, version, raw, published_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (checkpoint) DO UPDATE SET version = excluded.version, raw = excluded.raw,"
                " published_at = excluded.published_at",
                (checkpoint, int(version), bytes(raw), now),
            )
        return RosterRecord(checkpoint, int(version), bytes(raw), from_ms(now))

    def latest_roster(self, checkpoint: str) -> RosterRecord | None:
        row = self._conn().execute(
            "SELECT checkpoint, version, raw, published_at FROM rosters WHERE checkpoint = ?", (checkpoint,)
        ).fetchone()
        return None if row is None else RosterRecord(row[0], row[1], bytes(row[2]), from_ms(row[3]))

    # -- users -------------------------------------------------------------------------------
    def create_user(
        self, username: str, password_hash: str, role: str, scopes: Scope, language: str = "vi"
    ) -> User:
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise InvalidRecord(f"username must be 1-64 letters, digits, '_', '.', '@' or '-', got {username!r}")
        if role not in ROLES:
            raise InvalidRecord(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if language not in LANGUAGES:
            raise InvalidRecord(f"language must be vi or en, got {language!r}")
        if not password_hash:
            raise InvalidRecord("a password hash is required")
        scope = Scope.all() if role == "admin" else scopes
        created = datetime.now(timezone.utc)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO users (username, password_hash, role, scope, language, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (username, password_hash, role, json.dumps(scope.to_json()), language, to_ms(created)),
                )
        except sqlite3.IntegrityError:
            raise DuplicateUser(username) from None
        return User(username, password_hash, role, scope, language, from_ms(to_ms(created)))

    @staticmethod
    def _user(row: Sequence[Any]) -> User:
        return User(row[0], row[1], row[2], Scope.from_json(json.loads(row[3])), row[4], from_ms(row[5]))

    def get_user(self, username: str) -> User | None:
        row = self._conn().execute(
            "SELECT username, password_hash, role, scope, language, created_at FROM users"
            " WHERE username = ?", (username,),
        ).fetchone()
        return None if row is None else self._user(row)

    def list_users(self) -> list[User]:
        rows = self._conn().execute(
            "SELECT username, password_hash, role, scope, language, created_at FROM users ORDER BY username"
        ).fetchall()
        return [self._user(row) for row in rows]

    def set_user_language(self, username: str, language: str) -> None:
        if language not in LANGUAGES:
            raise InvalidRecord(f"language must be vi or en, got {language!r}")
        with self._write() as conn:
            cur = conn.execute("UPDATE users SET language = ? WHERE username = ?", (language, username))
            if cur.rowcount == 0:
                raise UnknownUser(username)

    def record_login_failure(self, username: str, ip: str, at: datetime | None = None) -> None:
        when = to_ms(at or datetime.now(timezone.utc))
        with self._write() as conn:
            conn.execute("INSERT INTO login_failures (username, ip, at) VALUES (?, ?, ?)",
                         (username[:200], ip[:64], when))
            # Old attempts say nothing about guessing now; keep the table small.
            conn.execute("DELETE FROM login_failures WHERE at < ?", (when - 86_400_000,))

    def clear_login_failures(self, username: str, ip: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM login_failures WHERE username = ? AND ip = ?", (username, ip))

    def login_failures(self, username: str, ip: str, window: timedelta, now: datetime | None = None) -> int:
        since = to_ms((now or datetime.now(timezone.utc)) - window)
        conn = self._conn()
        by_user = conn.execute("SELECT COUNT(*) FROM login_failures WHERE username = ? AND at >= ?",
                               (username, since)).fetchone()[0]
        by_ip = conn.execute("SELECT COUNT(*) FROM login_failures WHERE ip = ? AND at >= ?",
                             (ip, since)).fetchone()[0]
        return int(max(by_user, by_ip))

    def delete_user(self, username: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0

    def set_user_access(self, username: str, role: str, scopes: Scope) -> User:
        if role not in ROLES:
            raise InvalidRecord(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        scope = Scope.all() if role == "admin" else scopes
        with self._write() as conn:
            cur = conn.execute("UPDATE users SET role = ?, scope = ? WHERE username = ?",
                               (role, json.dumps(scope.to_json()), username))
            if cur.rowcount == 0:
                raise UnknownUser(username)
        user = self.get_user(username)
        assert user is not None
        return user

    # -- audit -------------------------------------------------------------------------------
    def record_audit(self, actor: str, action: str, target: str, province: str | None = None,
                     detail: str = "", at: datetime | None = None) -> AuditEntry:
        if action not in AUDIT_ACTIONS:
            raise InvalidRecord(f"audit action must be one of {', '.join(AUDIT_ACTIONS)}, got {action!r}")
        when = to_ms(at or datetime.now(timezone.utc))
        row = (when, str(actor)[:64], action, str(target)[:200], province, str(detail)[:500])
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, province, detail) VALUES (?, ?, ?, ?, ?, ?)", row)
        return AuditEntry(int(cur.lastrowid), from_ms(when), *row[1:])  # type: ignore[arg-type]

    def audit_log(self, scope: Scope, limit: int = 200) -> list[AuditEntry]:
        limit = max(0, min(int(limit), 5000))
        if scope.everything:
            where, params = "1 = 1", []
        else:
            provinces = sorted(scope.provinces)
            where = f"province IN ({', '.join('?' for _ in provinces)})" if provinces else "0 = 1"
            params = provinces
        rows = self._conn().execute(
            f"SELECT id, at, actor, action, target, province, detail FROM audit_log WHERE {where}"
            " ORDER BY id DESC LIMIT ?", [*params, limit],
        ).fetchall()
        return [AuditEntry(r[0], from_ms(r[1]), *r[2:]) for r in rows]  # type: ignore[arg-type]

    # -- trust -------------------------------------------------------------------------------
    def save_trust_bundle(
        self,
        version: int,
        raw: bytes,
        issued_at: datetime | None,
        next_update: datetime | None,
        uploaded_by: str | None = None,
    ) -> TrustRecord:
        if not isinstance(version, int) or version < 0:
            raise InvalidRecord(f"bundle version must be a non-negative integer, got {version!r}")
        uploaded = datetime.now(timezone.utc)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO trust_bundles (version, raw, issued_at, next_update, uploaded_at,"
                    " uploaded_by) VALUES (?, ?, ?, ?, ?, ?)",
                    (version, bytes(raw), issued_at and to_ms(issued_at), next_update and to_ms(next_update),
                     to_ms(uploaded), uploaded_by),
                )
        except sqlite3.IntegrityError:
            raise InvalidRecord(f"trust bundle version {version} is already stored") from None
        return TrustRecord(version, bytes(raw), issued_at, next_update, from_ms(to_ms(uploaded)),  # type: ignore[arg-type]
                           uploaded_by)

    def latest_trust_bundle(self) -> TrustRecord | None:
        row = self._conn().execute(
            "SELECT version, raw, issued_at, next_update, uploaded_at, uploaded_by FROM trust_bundles"
            " ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return TrustRecord(row[0], bytes(row[1]), from_ms(row[2]), from_ms(row[3]),
                           from_ms(row[4]), row[5])  # type: ignore[arg-type]


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
