"""Moving a SQLite store to PostgreSQL (`chot dashboard migrate-store`), checked table by table.

Every table is copied as it is, roll-ups included: counts outlive pruned events, so they cannot
be rebuilt from the events. The target must be a new (empty) chot database. Afterwards each
table's row count and digest (an order-free sum of row hashes, so collations do not matter)
are compared on both sides; the move is good only if all agree.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dashboard import rollup
from dashboard.store.base import StoreError
from dashboard.store.postgres import DECISION_KEY, PostgresStore
from dashboard.store.sqlite import SqliteStore

logger = logging.getLogger(__name__)

# table -> columns, in copy order (parents before children). A SQLite table missing here makes
# the move refuse to start, so a table added later is never silently left behind.
TABLES: dict[str, tuple[str, ...]] = {
    "checkpoints": ("id", "name", "district", "province", "policy"),
    "devices": ("id", "checkpoint", "created_at", "state", "last_seen", "status_at", "software", "trust_version",
                "trust_age_s", "backlog", "clock", "fps", "temperature_c", "uptime_s", "last_seq", "complete_at"),
    "events": ("id", "device", "seq", "checkpoint", "ts", "received_at", "minute", "result", "reason", "policy",
               "trust_version", "outcome", "officer", "follows_seq", "follows_result", "follows_reason"),
    "decision_counts": (*DECISION_KEY, "count"),
    "officers": ("checkpoint", "id", "name", "role", "pin", "updated_at"),
    "rosters": ("checkpoint", "version", "raw", "published_at"),
    **{t: ("checkpoint", "unit", "result", "reason", "count") for t in rollup.CHECKPOINT_TABLES.values()},
    **{t: ("unit", "result", "reason", "count") for t in rollup.COUNTRY_TABLES.values()},
    rollup.TOTALS_TABLE: ("checkpoint", "result", "count"),
    "ingest_rejects": ("reason", "count"),
    "users": ("username", "password_hash", "role", "scope", "language", "created_at"),
    "login_failures": ("id", "username", "ip", "at"),
    "trust_bundles": ("version", "raw", "issued_at", "next_update", "uploaded_at", "uploaded_by"),
    "audit_log": ("id", "at", "actor", "action", "target", "province", "detail"),
    "meta": ("key", "value"),
}
IDENTITY_TABLES = ("events", "login_failures", "audit_log")  # their id sequences continue after the copied ids
NOT_COPIED = frozenset({"schema_version"})  # each backend keeps its own migrations


class TransferError(StoreError):
    """The move cannot start or did not copy everything; the message says which table and why."""


@dataclass(frozen=True)
class TableCheck:
    """One table after the move: rows and digest on each side."""

    table: str
    source_rows: int
    target_rows: int
    source_digest: str
    target_digest: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_digest == self.target_digest


def digest(rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    """(row count, order-free digest) of rows: the sum of each row's SHA-256, modulo 2**256."""
    total, count = 0, 0
    for row in rows:
        canonical = repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)).encode()
        total = (total + int.from_bytes(hashlib.sha256(canonical).digest(), "big")) % (1 << 256)
        count += 1
    return count, f"{total:064x}"


def _sqlite_tables(source: SqliteStore) -> set[str]:
    rows = source._conn().execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {row[0] for row in rows}


def migrate_store(source: SqliteStore, target: PostgresStore, *,
                  progress: Callable[[str, int], None] | None = None) -> list[TableCheck]:
    """Copy every table of `source` into the empty `target`, then check counts and digests."""
    unknown = _sqlite_tables(source) - set(TABLES) - NOT_COPIED
    if unknown:
        raise TransferError(f"the SQLite store has tables this move does not know: {', '.join(sorted(unknown))}")
    with target._write() as conn:
        for table in ("checkpoints", "events", "users", "trust_bundles"):
            if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                raise TransferError(f"{target.location} is not empty ({table} has rows): give a new database")
        conn.execute("DELETE FROM meta")  # the copy brings the source's change marker and bounds
        with source._read():  # one snapshot of the source, even if its ingest is still writing
            src = source._conn()
            for table, columns in TABLES.items():
                names = ", ".join(columns)
                with conn.raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    copied = 0
                    for row in src.execute(f"SELECT {names} FROM {table}"):
                        copy.write_row(row)
                        copied += 1
                if progress:
                    progress(table, copied)
        for table in IDENTITY_TABLES:
            conn.native(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false)"
                        f" FROM {table}")
    return check_transfer(source, target)


def check_transfer(source: SqliteStore, target: PostgresStore) -> list[TableCheck]:
    """Row counts and digests of every copied table, on both sides."""
    checks = []
    for table, columns in TABLES.items():
        query = f"SELECT {', '.join(columns)} FROM {table}"
        with source._read():
            s_rows, s_digest = digest(source._conn().execute(query))
        with target._read() as conn, conn.raw.cursor(name=f"check_{table}") as cur:
            cur.itersize = 10_000  # a server-side cursor: a big events table is read in slices
            cur.execute(query)
            t_rows, t_digest = digest(cur)
        checks.append(TableCheck(table, s_rows, t_rows, s_digest, t_digest))
    return checks
