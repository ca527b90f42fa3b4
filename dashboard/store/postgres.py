"""The PostgreSQL backend of the central store (psycopg 3 with a connection pool).

For the central at national scale: several ingest workers and web processes share one
database. Most statements are the portable ones of `SqlStore` (written with `?`, turned into
psycopg's `%s` here); this module adds the schema, its migrations, and the statements where
PostgreSQL does better: a batch of events goes in as one `INSERT ... SELECT FROM unnest(...)
ON CONFLICT (device, seq) DO NOTHING RETURNING`, so a redelivery is nothing, and the roll-ups
are upserts (`count = count + EXCLUDED.count`) in the same transaction, taken in key order, so
workers committing at once neither lose an update nor deadlock.

One `PostgresStore` is safe to share between threads: each statement or transaction borrows a
pooled connection. A database that cannot be reached raises `StoreUnavailable`, whose message
names the URL without its password.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from dashboard import rollup
from dashboard.store import pgnotify
from dashboard.store.base import (
    Event,
    StoreError,
    StoreUnavailable,
    counted_minute,
    to_ms,
)
from dashboard.store.sql import SqlStore, check_events, count_inserted, warn_counter_reset

logger = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql", "postgres")
# A deadlock or serialization failure: the transaction is rolled back and may simply run again.
_RETRYABLE = (psycopg.errors.TransactionRollback, psycopg.errors.DeadlockDetected,
              psycopg.errors.SerializationFailure)
_MIGRATION_LOCK = 0x63686F74  # pg_advisory_xact_lock key: one migrating process at a time
_ROLLUP_DDL = "(checkpoint text NOT NULL, unit bigint NOT NULL, result text NOT NULL, reason text NOT NULL," \
              " count bigint NOT NULL, PRIMARY KEY (checkpoint, unit, result, reason))"
_COUNTRY_DDL = "(unit bigint NOT NULL, result text NOT NULL, reason text NOT NULL, count bigint NOT NULL," \
               " PRIMARY KEY (unit, result, reason))"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, fit for a log line or an error message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unparsable URL)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def _one_line(error: BaseException) -> str:
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


DECISION_KEY = ("checkpoint", "minute", "officer", "outcome", "reason", "follows_result", "follows_reason")
_DECISION_TYPES = ("text", "bigint", "text", "text", "text", "text", "text")

# The schema at its first version: what SQLite reaches at its schema 5 (roll-ups, decisions,
# officers, rosters, completeness, audit log), plus the ended sessions the web processes share.
_SCHEMA_1 = [
    "CREATE TABLE meta (key text PRIMARY KEY, value bigint)",
    "INSERT INTO meta (key, value) VALUES ('changes', 0), ('first_minute', NULL), ('last_minute', NULL)",
    "CREATE TABLE checkpoints (id text PRIMARY KEY, name text NOT NULL, district text NOT NULL,"
    " province text NOT NULL, policy text)",
    "CREATE INDEX checkpoints_place ON checkpoints (province, district)",
    "CREATE TABLE devices (id text PRIMARY KEY, checkpoint text NOT NULL REFERENCES checkpoints (id),"
    " created_at bigint NOT NULL, state text NOT NULL DEFAULT 'unknown', last_seen bigint, status_at bigint,"
    " software text, trust_version bigint, trust_age_s double precision, backlog bigint, clock text,"
    " fps double precision, temperature_c double precision, uptime_s double precision, last_seq bigint,"
    " complete_at bigint)",
    "CREATE INDEX devices_checkpoint ON devices (checkpoint)",
    "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, device text NOT NULL,"
    " seq bigint NOT NULL, checkpoint text NOT NULL, ts bigint NOT NULL, received_at bigint NOT NULL,"
    " minute bigint NOT NULL, result text NOT NULL, reason text NOT NULL, policy text NOT NULL,"
    " trust_version bigint, outcome text, officer text, follows_seq bigint, follows_result text, follows_reason text,"
    " CONSTRAINT events_device_seq UNIQUE (device, seq))",
    "CREATE INDEX events_checkpoint_recent ON events (checkpoint, id)",  # a checkpoint's latest events
    "CREATE INDEX events_received ON events (received_at)",  # pruning
    *(f"CREATE TABLE {table} {_ROLLUP_DDL}" for table in rollup.CHECKPOINT_TABLES.values()),
    *(f"CREATE TABLE {table} {_COUNTRY_DDL}" for table in rollup.COUNTRY_TABLES.values()),
    f"CREATE TABLE {rollup.TOTALS_TABLE} (checkpoint text NOT NULL, result text NOT NULL, count bigint NOT NULL,"
    " PRIMARY KEY (checkpoint, result))",
    "CREATE TABLE ingest_rejects (reason text PRIMARY KEY, count bigint NOT NULL)",
    "CREATE TABLE users (username text PRIMARY KEY, password_hash text NOT NULL, role text NOT NULL,"
    " scope text NOT NULL, language text NOT NULL, created_at bigint NOT NULL)",
    "CREATE TABLE login_failures (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, username text,"
    " ip text, at bigint)",
    "CREATE INDEX login_failures_user ON login_failures (username, at)",
    "CREATE INDEX login_failures_ip ON login_failures (ip, at)",
    "CREATE TABLE trust_bundles (version bigint PRIMARY KEY, raw bytea NOT NULL, issued_at bigint,"
    " next_update bigint, uploaded_at bigint NOT NULL, uploaded_by text)",
    "CREATE TABLE ended_sessions (sid text PRIMARY KEY, until bigint NOT NULL)",
    # Officer decisions (SQLite's schema 4): their roll-up per minute, the officers, the rosters.
    f"CREATE TABLE decision_counts ({', '.join(f'{c} {t} NOT NULL' for c, t in zip(DECISION_KEY, _DECISION_TYPES, strict=True))},"
    f" count bigint NOT NULL, PRIMARY KEY ({', '.join(DECISION_KEY)}))",
    "CREATE TABLE officers (checkpoint text NOT NULL REFERENCES checkpoints (id), id text NOT NULL,"
    " name text NOT NULL, role text NOT NULL, pin text NOT NULL, updated_at bigint NOT NULL,"
    " PRIMARY KEY (checkpoint, id))",
    "CREATE TABLE rosters (checkpoint text PRIMARY KEY, version bigint NOT NULL, raw bytea NOT NULL,"
    " published_at bigint NOT NULL)",
    # Completeness (devices.last_seq, complete_at above) and the audit log (SQLite's schema 5).
    "CREATE TABLE audit_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at bigint NOT NULL,"
    " actor text NOT NULL, action text NOT NULL, target text NOT NULL, province text, detail text NOT NULL DEFAULT '')",
    "CREATE INDEX audit_log_province ON audit_log (province, id)",
]

# Append-only, like SQLite's: entry N brings the schema from version N to N+1.
MIGRATIONS: tuple[Sequence[str], ...] = (
    tuple(_SCHEMA_1),
    # The broker node each unit last said it is on (national cluster).
    ("ALTER TABLE devices ADD COLUMN broker text",),
    # Attacks on officer PINs each unit last reported (counts and staff ids only).
    ("ALTER TABLE devices ADD COLUMN pin_wrong_hour bigint", "ALTER TABLE devices ADD COLUMN pin_wrong_total bigint",
     "ALTER TABLE devices ADD COLUMN pin_lockouts bigint", "ALTER TABLE devices ADD COLUMN pin_locked boolean",
     "ALTER TABLE devices ADD COLUMN pin_officers text"),
    # A country's per-checkpoint pages read a few hours or minutes of every checkpoint at the
    # edges of a period: by time, not a walk of each checkpoint's keys (EXPLAIN: a seq scan of
    # hour_counts kept 2,227 of 60,460 rows; docs/national.md).
    tuple(f"CREATE INDEX {table}_unit ON {table} (unit)" for table in rollup.CHECKPOINT_TABLES.values()),
)


@functools.lru_cache(maxsize=512)
def _dialect(sql: str) -> str:
    """Portable `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


# A page's statements read thousands of roll-up rows, not millions: starting parallel workers
# costs more than it saves (EXPLAIN ANALYZE: a Gather added ~10 ms to a 3 ms aggregate), and a
# country's per-checkpoint chart hashes ~40,000 groups, which spilled to disk at the default 4 MB.
# The roll-ups a page reads are in memory: at the default random_page_cost (4, for spinning
# disks) a province's 30 days were read by a seq scan of all 554,273 day rows (~170 ms at 1M
# events) instead of its 159 checkpoints' index ranges (~40 ms).
_SESSION_OPTIONS = "-c max_parallel_workers_per_gather=0 -c work_mem=32MB -c random_page_cost=1.1"

# A connection back in the pool for less than this was working a moment ago: lending it again
# skips the check's round trip (a server lost meanwhile fails that one statement, StoreUnavailable).
_CHECK_IDLE_S = 2.0
_returned_at: dict[int, float] = {}  # id(connection) -> when it went back (set in _borrow: a pool
# `reset` callback would cost ~90 us a statement, measured)


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """The pool's check on lending, only for a connection idle long enough to have been cut."""
    if time.monotonic() - _returned_at.pop(id(conn), 0.0) >= _CHECK_IDLE_S:
        ConnectionPool.check_connection(conn)


class _Conn:
    """A psycopg connection speaking the portable SQL of `SqlStore`."""

    def __init__(self, conn: psycopg.Connection[Any], location: str) -> None:
        self.raw = conn
        self._location = location

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run a portable statement (`?` placeholders)."""
        return self.native(_dialect(sql), list(params))

    def native(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run a statement written for psycopg (`%s` placeholders)."""
        with self._translated():
            return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._translated(), self.raw.cursor() as cur:
            cur.executemany(_dialect(sql), rows)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """A lost server as StoreUnavailable; a deadlock or serialization failure stays itself (retried)."""
        try:
            yield
        except _RETRYABLE:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            raise StoreUnavailable(f"PostgreSQL at {self._location} is unavailable: {_one_line(e)}") from None


class _Rows:
    """The fetched result of one statement run outside a transaction (its connection is back in the pool)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _PooledStatements:
    """Runs each statement on a connection borrowed from the pool for just that statement."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        with self._store._borrow() as conn:
            cur = conn.execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
            return _Rows(rows, cur.rowcount)


class PostgresStore(SqlStore):
    """The central store in PostgreSQL; one instance serves every thread of a process."""

    shared = True  # one per process, not one per request (see dashboard.web.state)
    shared_sessions = True
    _integrity_errors = (psycopg.errors.UniqueViolation,)

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout_s: float = 10.0) -> None:
        if urlsplit(url).scheme not in URL_SCHEMES:
            raise StoreError(f"{redact_url(url)} is not a postgresql:// URL")
        self.url = url
        self.location = redact_url(url)
        self._timeout_s = connect_timeout_s
        self._local = threading.local()
        self._feed: pgnotify.ChangeFeed | None = None
        self._feed_lock = threading.Lock()
        self.migrate()  # first, on a connection of its own: its error says why the database is out of reach
        self._pool = ConnectionPool(
            # A request waits at most 5 s for a connection: a page then says the store is away.
            url, min_size=1, max_size=pool_size, open=False, name="chot-store", timeout=min(5.0, connect_timeout_s),
            # prepare_threshold 1: a page's statements (the same text each time) run as prepared
            # statements from their second use on a connection.
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout_s)), "prepare_threshold": 1,
                    "options": _SESSION_OPTIONS},
            check=_check_if_idle, reconnect_timeout=0,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise StoreUnavailable(f"PostgreSQL at {self.location} is unreachable: no connection in "
                                   f"{connect_timeout_s:.0f} s") from None

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._timeout_s)))
        except psycopg.Error as e:
            raise StoreUnavailable(f"PostgreSQL at {self.location} is unreachable: {_one_line(e)}") from None

    @contextmanager
    def _borrow(self) -> Iterator[_Conn]:
        current = getattr(self._local, "conn", None)
        if current is not None:  # inside a transaction of this thread: its connection
            yield current
            return
        try:
            cm = self._pool.connection()
            raw = cm.__enter__()
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise StoreUnavailable(f"PostgreSQL at {self.location} is unavailable: {_one_line(e)}") from None
        try:
            yield _Conn(raw, self.location)
        except BaseException as e:
            cm.__exit__(type(e), e, e.__traceback__)
            raise
        else:
            _returned_at[id(raw)] = time.monotonic()
            cm.__exit__(None, None, None)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_Conn]:
        if getattr(self._local, "conn", None) is not None:  # nested: part of the outer one
            yield self._local.conn
            return
        with self._borrow() as conn:
            conn.execute(begin)
            self._local.conn = conn
            try:
                yield conn
            except BaseException:
                self._local.conn = None
                try:
                    conn.native("ROLLBACK")
                except psycopg.Error:
                    pass  # a broken connection: the pool throws it away
                raise
            self._local.conn = None
            conn.execute("COMMIT")

    def _conn(self) -> Any:
        current = getattr(self._local, "conn", None)
        return current if current is not None else _PooledStatements(self)

    def _write(self) -> Any:
        return self._transaction("BEGIN")

    def _read(self) -> Any:
        """One snapshot for every statement of a query, as SQLite's read transaction gives."""
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def close(self) -> None:
        feed = getattr(self, "_feed", None)
        if feed is not None:
            feed.close()
            self._feed = None
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    # -- schema ------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version of the database."""
        row = self._conn().execute(
            "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN 0"
            " ELSE (SELECT COALESCE(MAX(version), 0) FROM schema_version) END").fetchone()
        return int(row[0])

    def migrate(self) -> None:
        """Bring the database to the newest schema, one migration per transaction, one process at a time."""
        with self._connect() as raw:
            conn = _Conn(raw, self.location)
            while True:
                with raw.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint PRIMARY KEY,"
                                 " applied_at bigint NOT NULL)")
                    current = int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                                  .fetchone()[0])
                    if current > len(MIGRATIONS):
                        raise StoreError(f"{self.location} has schema version {current}, newer than this chot"
                                         f" ({len(MIGRATIONS)})")
                    if current == len(MIGRATIONS):
                        return
                    for statement in MIGRATIONS[current]:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                 (current + 1, to_ms(datetime.now(timezone.utc))))
                logger.info("store %s migrated to schema version %d", self.location, current + 1)

    # -- ingest ------------------------------------------------------------------------------
    def record_events(self, batch: Sequence[Event]) -> int:
        if not batch:
            return 0
        check_events(batch)
        # Key order: two workers storing overlapping batches lock the same rows in the same order.
        ordered = sorted(batch, key=lambda e: (e.device, e.seq))
        for attempt in range(5):
            try:
                return self._record_events(ordered)
            except _RETRYABLE as e:  # a deadlock or serialization failure
                logger.warning("storing a batch was rolled back (%s); trying again", _one_line(e))
                time.sleep(0.05 * (attempt + 1))
        return self._record_events(ordered)

    def _record_events(self, batch: Sequence[Event]) -> int:
        columns: list[list[Any]] = [[] for _ in range(15)]
        seen: dict[str, int] = {}
        top_seq: dict[str, int] = {}
        for e in batch:
            received = to_ms(e.received_at)
            top_seq[e.device] = max(top_seq.get(e.device, -1), e.seq)
            for column, value in zip(columns, (e.device, e.seq, e.checkpoint, to_ms(e.ts), received,
                                               counted_minute(e), e.result, e.reason, e.policy,
                                               e.trust_version, e.outcome, e.officer, e.follows_seq,
                                               e.follows_result, e.follows_reason), strict=True):
                column.append(value)
            seen[e.device] = max(seen.get(e.device, 0), received)
        increments: dict[tuple[int, str, str, str], int] = {}
        decisions: dict[tuple[Any, ...], int] = {}
        with self._write() as conn:
            # One statement for the whole batch; RETURNING yields only the rows really inserted.
            inserted = conn.native(
                "INSERT INTO events (device, seq, checkpoint, ts, received_at, minute, result, reason, policy,"
                " trust_version, outcome, officer, follows_seq, follows_result, follows_reason)"
                " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[],"
                " %s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[],"
                " %s::bigint[], %s::text[], %s::text[])"
                " ON CONFLICT (device, seq) DO NOTHING RETURNING device, seq, minute, checkpoint, result, reason,"
                " officer, outcome, follows_result, follows_reason",
                columns,
            ).fetchall()
            count_inserted(inserted, increments, decisions)
            if len(inserted) < len(batch):
                self._warn_reused_seqs(conn, batch, {(d, q) for d, q, *_ in inserted})
            if increments:
                registered = [row[0] for row in conn.native(
                    "SELECT id FROM checkpoints WHERE id = ANY(%s)", [sorted({k[1] for k in increments})])]
                rollup.add(conn, increments, registered)
            if decisions:
                conn.executemany(
                    f"INSERT INTO decision_counts ({', '.join(DECISION_KEY)}, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    f" ON CONFLICT ({', '.join(DECISION_KEY)}) DO UPDATE"
                    " SET count = decision_counts.count + excluded.count",
                    [(*k, n) for k, n in sorted(decisions.items())],
                )
            conn.executemany(
                "UPDATE devices SET last_seen = GREATEST(COALESCE(last_seen, 0), ?),"
                " last_seq = GREATEST(COALESCE(last_seq, -1), ?) WHERE id = ?",
                [(at, top_seq[device], device) for device, at in sorted(seen.items())],
            )
            if inserted:
                self._count_change(conn, len(inserted), checkpoints=[row[3] for row in inserted])
        return len(inserted)

    def _count_change(self, conn: Any, n: int, *, checkpoints: Sequence[str] = (), device: str | None = None) -> None:
        """Move the marker and NOTIFY it with the checkpoints touched (sent by the server at commit,
        so a web process never hears of a change it cannot read yet)."""
        if device is not None:
            conn.native(
                "WITH m AS (UPDATE meta SET value = value + %s WHERE key = 'changes' RETURNING value)"
                " SELECT pg_notify(%s, json_build_object('m', m.value, 'c', json_build_array(d.checkpoint))::text)"
                " FROM m LEFT JOIN devices d ON d.id = %s", [n, pgnotify.CHANNEL, device])
            return
        names = sorted(set(checkpoints))
        listed = names if len(names) <= pgnotify.MAX_LISTED else None
        conn.native(
            "WITH m AS (UPDATE meta SET value = value + %s WHERE key = 'changes' RETURNING value)"
            " SELECT pg_notify(%s, json_build_object('m', m.value, 'c', %s::json)::text) FROM m",
            [n, pgnotify.CHANNEL, None if listed is None else json.dumps(listed)])

    def change_feed(self) -> pgnotify.ChangeFeed:
        """This process's LISTEN connection (started on first use, one per store)."""
        with self._feed_lock:
            if self._feed is None:
                self._feed = pgnotify.ChangeFeed(self.url, self.location)
            return self._feed

    @staticmethod
    def _warn_reused_seqs(conn: _Conn, batch: Sequence[Event], inserted: set[tuple[str, int]]) -> None:
        """As in SQLite: a known (device, seq) with another time means the unit's counter was reset."""
        others = [e for e in batch if (e.device, e.seq) not in inserted]
        stored = {(d, q): ts for d, q, ts in conn.native(
            "SELECT e.device, e.seq, e.ts FROM events e JOIN unnest(%s::text[], %s::bigint[]) AS k(device, seq)"
            " ON e.device = k.device AND e.seq = k.seq", [[e.device for e in others], [e.seq for e in others]])}
        warned: set[str] = set()
        for e in others:
            ts = stored.get((e.device, e.seq))
            if e.device not in warned and ts is not None and ts != to_ms(e.ts):
                warned.add(e.device)
                warn_counter_reset(e.device, e.seq)

    # -- sessions shared by every web process -------------------------------------------------
    def end_session(self, sid: str, until: datetime) -> None:
        now = to_ms(datetime.now(timezone.utc))
        with self._write() as conn:
            conn.execute("INSERT INTO ended_sessions (sid, until) VALUES (?, ?) ON CONFLICT (sid) DO UPDATE"
                         " SET until = excluded.until", (sid[:64], to_ms(until)))
            conn.execute("DELETE FROM ended_sessions WHERE until < ?", (now,))  # expired anyway

    def session_ended(self, sid: str) -> bool:
        return self._conn().execute("SELECT 1 FROM ended_sessions WHERE sid = ?", (sid,)).fetchone() is not None
