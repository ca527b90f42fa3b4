"""Verdict counts kept at three time resolutions, so a dashboard query reads few rows.

Per checkpoint, counts are kept per minute, per hour and per (UTC) day; for the whole country
(registered checkpoints only: what an unscoped query with the checkpoint join would count)
the same three without the checkpoint; and all-time totals per checkpoint and result for
`/metrics`. All are written in the transaction that stores the events, so they always agree.

A query range [start, end) in minutes is split into whole days, whole hours at the day edges
and single minutes at the hour edges (`split_range`), so the result stays exact at minute
resolution while reading a day row in place of up to 1,440 minute rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

MINUTE, HOUR, DAY = 1, 60, 1440  # sizes of the resolutions, in minutes
SIZES: tuple[int, ...] = (MINUTE, HOUR, DAY)
# Table per resolution: per checkpoint, and for the whole country.
CHECKPOINT_TABLES = {MINUTE: "minute_counts", HOUR: "hour_counts", DAY: "day_counts"}
COUNTRY_TABLES = {MINUTE: "country_minute_counts", HOUR: "country_hour_counts", DAY: "country_day_counts"}
TOTALS_TABLE = "checkpoint_totals"

# (minute, checkpoint, result, reason) -> count: what one stored batch adds.
Increments = Mapping[tuple[int, str, str, str], int]


@dataclass(frozen=True)
class Piece:
    """Units lo <= u < hi of one resolution (`size` minutes each), e.g. hours 490000..490005."""

    size: int
    lo: int
    hi: int

    @property
    def checkpoint_table(self) -> str:
        """The per-checkpoint table holding this resolution."""
        return CHECKPOINT_TABLES[self.size]

    @property
    def country_table(self) -> str:
        """The whole-country table holding this resolution."""
        return COUNTRY_TABLES[self.size]


def split_range(start: int, end: int, grid: tuple[int, int] | None = None) -> list[Piece]:
    """Cover minutes [start, end) with the fewest units of the three resolutions.

    `grid` = (origin, width) in minutes: buckets that must not be straddled (a chart's bars
    start at `origin` every `width` minutes), so a resolution is used only when its units
    line up with the bars.
    """
    sizes = [size for size in SIZES
             if grid is None or (grid[1] % size == 0 and grid[0] % size == 0)]
    return _split(start, end, sizes)


def _split(start: int, end: int, sizes: list[int]) -> list[Piece]:
    if start >= end:
        return []
    size = sizes[-1]
    lo, hi = -(-start // size), end // size
    if size == MINUTE:
        return [Piece(MINUTE, start, end)]
    if lo >= hi:  # no whole unit fits: finer units only
        return _split(start, end, sizes[:-1])
    return [*_split(start, lo * size, sizes[:-1]), Piece(size, lo, hi), *_split(hi * size, end, sizes[:-1])]


def create_tables(db: Any) -> None:
    """Make the roll-up tables (clustered by their key, so a range read is one b-tree walk)."""
    for size, table in CHECKPOINT_TABLES.items():
        if size == MINUTE:
            continue  # exists since schema 1; rebuilt by `cluster_minute_counts`
        db.execute(
            f"CREATE TABLE {table} (checkpoint TEXT NOT NULL, unit INTEGER NOT NULL, result TEXT NOT NULL,"
            " reason TEXT NOT NULL, count INTEGER NOT NULL,"
            " PRIMARY KEY (checkpoint, unit, result, reason)) WITHOUT ROWID"
        )
    for table in COUNTRY_TABLES.values():
        db.execute(
            f"CREATE TABLE {table} (unit INTEGER NOT NULL, result TEXT NOT NULL, reason TEXT NOT NULL,"
            " count INTEGER NOT NULL, PRIMARY KEY (unit, result, reason)) WITHOUT ROWID"
        )
    db.execute(
        f"CREATE TABLE {TOTALS_TABLE} (checkpoint TEXT NOT NULL, result TEXT NOT NULL,"
        " count INTEGER NOT NULL, PRIMARY KEY (checkpoint, result)) WITHOUT ROWID"
    )


def cluster_minute_counts(db: Any) -> None:
    """Rebuild schema 1's minute_counts keyed by checkpoint first, without rowid, and with a
    `unit` column (the minute), so all per-checkpoint resolutions are read the same way."""
    db.execute("ALTER TABLE minute_counts RENAME TO minute_counts_v1")
    db.execute(
        "CREATE TABLE minute_counts (checkpoint TEXT NOT NULL, unit INTEGER NOT NULL, result TEXT NOT NULL,"
        " reason TEXT NOT NULL, count INTEGER NOT NULL,"
        " PRIMARY KEY (checkpoint, unit, result, reason)) WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO minute_counts (checkpoint, unit, result, reason, count)"
        " SELECT checkpoint, minute, result, reason, count FROM minute_counts_v1"
    )
    db.execute("DROP TABLE minute_counts_v1")


def backfill(db: Any) -> None:
    """Fill every roll-up from the per-minute counts (the migration that adds them)."""
    for size, table in CHECKPOINT_TABLES.items():
        if size != MINUTE:
            db.execute(
                f"INSERT INTO {table} (checkpoint, unit, result, reason, count)"
                f" SELECT checkpoint, unit / {size}, result, reason, SUM(count) FROM minute_counts"
                " GROUP BY 1, 2, 3, 4"
            )
    registered = "checkpoint IN (SELECT id FROM checkpoints)"
    for size, table in COUNTRY_TABLES.items():
        db.execute(
            f"INSERT INTO {table} (unit, result, reason, count) SELECT unit, result, reason, SUM(count)"
            f" FROM {CHECKPOINT_TABLES[size]} WHERE {registered} GROUP BY 1, 2, 3"
        )
    db.execute(
        f"INSERT INTO {TOTALS_TABLE} (checkpoint, result, count)"
        " SELECT checkpoint, result, SUM(count) FROM day_counts GROUP BY 1, 2"
    )
    bounds = db.execute("SELECT MIN(unit), MAX(unit) FROM minute_counts").fetchone()
    db.execute("INSERT INTO meta (key, value) VALUES ('first_minute', ?), ('last_minute', ?)",
               [bounds[0], bounds[1]])


def add(conn: Any, increments: Increments, registered: Iterable[str]) -> None:
    """Add one batch's new counts to every resolution (inside the batch's transaction)."""
    if not increments:
        return
    known = set(registered)
    # One pass over the increments for all seven tables (profiled: a pass per table, each key
    # made by a lambda, was a sixth of the embedded ingest's time in record_events).
    per_checkpoint: dict[int, dict[tuple[Any, ...], int]] = {size: {} for size in SIZES}
    country: dict[int, dict[tuple[Any, ...], int]] = {size: {} for size in SIZES}
    totals: dict[tuple[Any, ...], int] = {}
    for (minute, cp, result, reason), n in increments.items():
        counted = cp in known
        for size in SIZES:
            unit = minute // size
            table = per_checkpoint[size]
            key: tuple[Any, ...] = (cp, unit, result, reason)
            table[key] = table.get(key, 0) + n
            if counted:
                whole = country[size]
                key = (unit, result, reason)
                whole[key] = whole.get(key, 0) + n
        key = (cp, result)
        totals[key] = totals.get(key, 0) + n
    for size, table_name in CHECKPOINT_TABLES.items():
        _write(conn, table_name, ("checkpoint", "unit", "result", "reason"), per_checkpoint[size])
    for size, table_name in COUNTRY_TABLES.items():
        _write(conn, table_name, ("unit", "result", "reason"), country[size])
    _write(conn, TOTALS_TABLE, ("checkpoint", "result"), totals)
    first, last = min(k[0] for k in increments), max(k[0] for k in increments)
    # Written only when the bounds move, so concurrent writers rarely wait on these rows.
    conn.execute("UPDATE meta SET value = ? WHERE key = 'first_minute' AND (value IS NULL OR value > ?)",
                 (first, first))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'last_minute' AND (value IS NULL OR value < ?)",
                 (last, last))


def _write(conn: Any, table: str, columns: tuple[str, ...], merged: Mapping[tuple[Any, ...], int]) -> None:
    """Add merged counts to `table`'s."""
    if merged:
        # Rows in key order: writers committing at once lock them in the same order (no deadlock),
        # and `count = count + excluded.count` adds to what another writer committed meanwhile.
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}, count) VALUES ({', '.join('?' * (len(columns) + 1))})"
            f" ON CONFLICT ({', '.join(columns)}) DO UPDATE SET count = {table}.count + excluded.count",
            [(*k, n) for k, n in sorted(merged.items())],
        )


def include_checkpoint(conn: Any, checkpoint: str) -> None:
    """A checkpoint registered after events were counted for it: add them to the country's."""
    for size, table in COUNTRY_TABLES.items():
        conn.execute(
            f"INSERT INTO {table} (unit, result, reason, count) SELECT unit, result, reason, count"
            f" FROM {CHECKPOINT_TABLES[size]} WHERE checkpoint = ?"
            f" ON CONFLICT (unit, result, reason) DO UPDATE SET count = {table}.count + excluded.count",
            (checkpoint,),
        )
