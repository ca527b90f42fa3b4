"""The demo's own reading of the central store, on either backend, for its reconciliation.

The reconciliation must not trust the dashboard's code to check the dashboard: it reads the
`events` table itself, read-only, with sqlite3 for the embedded file or psycopg for a
postgresql:// URL (the national profile). Statements are written once with `?` placeholders.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from dashboard.store import is_postgres_url

COUNTS_BY_DEVICE = "SELECT device, result, count(*) FROM events GROUP BY device, result"
SEQS_OF_DEVICE = "SELECT seq, result FROM events WHERE device = ?"
DOUBLED = "SELECT count(*) FROM (SELECT device, seq FROM events GROUP BY device, seq HAVING count(*) > 1) AS d"


class StoreUnreadable(RuntimeError):
    """The central store could not be read (with `strict=True`)."""


def rows(target: str, query: str, args: tuple[Any, ...] = (), *, strict: bool = False) -> list[tuple[Any, ...]]:
    """The rows of a read-only query on the store at `target` (a SQLite path or a postgresql:// URL).

    A store that cannot be read now (not made yet, busy, restarting) gives [] unless `strict`.
    """
    try:
        if is_postgres_url(target):
            return _postgres_rows(target, query, args)
        return _sqlite_rows(target, query, args)
    except (sqlite3.Error, OSError, _psycopg_error()) as err:
        if strict:
            raise StoreUnreadable(f"reading the central store failed: {err}") from err
        return []


def _sqlite_rows(path: str, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if not Path(path).exists():
        raise OSError(f"no store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def _postgres_rows(url: str, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import psycopg  # only the national profile needs the driver

    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.read_only = True  # its transaction can change nothing
        return conn.execute(query.replace("?", "%s"), args).fetchall()


def _psycopg_error() -> type[Exception]:
    try:
        import psycopg
    except ImportError:
        return sqlite3.Error  # no driver: only SQLite stores are read
    return psycopg.Error


def stored_counts(target: str, devices: list[str]) -> dict[str, dict[str, int]]:
    """Per device (every one of `devices` at least), per result: events in the store."""
    out: dict[str, dict[str, int]] = {d: {} for d in devices}
    for device, result, n in rows(target, COUNTS_BY_DEVICE):
        out.setdefault(device, {})[result] = int(n)
    return out


def stored_seqs(target: str, device: str) -> dict[int, str]:
    """seq -> result of one device's events in the store."""
    return {int(seq): result for seq, result in rows(target, SEQS_OF_DEVICE, (device,))}


def doubled(target: str) -> int:
    """How many (device, seq) the store holds more than once (the unique key says none)."""
    return int(rows(target, DOUBLED, strict=True)[0][0])
