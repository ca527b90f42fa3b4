"""The store's fast paths (hour/day roll-ups, country counts, all-time totals) answer exactly what
a brute-force count over the events table answers, for random ranges, scopes and buckets."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import rollup
from dashboard.scope import Scope
from dashboard.store import (
    MIGRATIONS,
    Bucket,
    Counts,
    Event,
    GroupCounts,
    ReasonCount,
    SqliteStore,
    Store,
    open_store,
)
from dashboard.store.sql import SqlStore
from tests.support.stores import BACKENDS, new_target

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
SPAN = timedelta(days=3)
# (id, district, province): three provinces, a district code shared by name only inside one.
CHECKPOINTS = [(f"C{i}", f"{10 * (i % 3) + i % 2:03d}", f"{i % 3 + 1:02d}") for i in range(9)]
LATE = ("LATE", "005", "02")  # gets events before it is registered
GHOST = "GHOST"  # never registered: nothing of it is ever counted
RESULTS = {"green": ("complete_series", "negative_test"), "yellow": ("partial_vaccination",),
           "red": ("signature", "cwt_expired", "policy_not_met")}
PAIRS = [(r, reason) for r, reasons in RESULTS.items() for reason in reasons]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_events(rng: random.Random, count: int, checkpoints: list[str]) -> list[Event]:
    """Events spread over SPAN (some with unit clocks far ahead or unset), with their own seqs."""
    events = []
    for seq in range(count):
        cp = rng.choice(checkpoints)
        received = T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        ts = received - timedelta(seconds=rng.randrange(600))
        if rng.random() < 0.03:
            ts = rng.choice([received + timedelta(hours=3), datetime(2000, 1, 1, tzinfo=timezone.utc)])
        result, reason = rng.choice(PAIRS)
        events.append(Event(f"d-{cp}", cp, seq, ts, result, reason, "vn-2021", 1, received))
    return events


def fill(store: Store, seed: int = 7) -> None:
    """Registry plus events: some for a checkpoint registered later, some for one never registered."""
    rng = random.Random(seed)
    for cp, district, province in CHECKPOINTS:
        store.upsert_checkpoint(cp, f"Name {cp}", district, province)
    names = [cp for cp, _d, _p in CHECKPOINTS]
    events = make_events(rng, 4000, [*names, LATE[0], GHOST])
    for start in range(0, 2000, 250):
        store.record_events(events[start:start + 250])
    store.upsert_checkpoint(LATE[0], "Late one", LATE[1], LATE[2])
    for start in range(2000, len(events), 250):
        store.record_events(events[start:start + 250])
    store.upsert_checkpoint("C0", "Renamed C0", CHECKPOINTS[0][1], "03")  # moved: counts follow it
    store.record_events(events[:100])  # redelivered: counted once


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    """The filled store on each backend (the same events, so the same answers)."""
    store = open_store(new_target(request.param, request, tmp_path_factory.mktemp("rollup") / "chot.db"))
    assert isinstance(store, SqlStore)  # both backends: the brute-force checks read its tables
    fill(store)
    yield store
    store.close()


# -- brute force: the events table joined with the registry, counted in Python ---------------

def minute_range(since: datetime, until: datetime) -> tuple[int, int]:
    start = -(-int(since.timestamp()) // 60)
    end = max(start, -(-int(until.timestamp()) // 60))
    return start, end


def brute_rows(conn: Any, scope: Scope, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    start, end = minute_range(since, until)
    where, params = scope.sql("c.province", "c.district", "c.id")
    return conn.execute(
        "SELECT e.minute, c.id, c.name, c.district, c.province, e.result, e.reason FROM events e"
        f" JOIN checkpoints c ON c.id = e.checkpoint WHERE e.minute >= ? AND e.minute < ? AND {where}",
        [start, end, *params],
    ).fetchall()


def brute_totals(rows: list[tuple[Any, ...]]) -> Counts:
    return Counts(**Counter(r[5] for r in rows))


def brute_totals_by(rows: list[tuple[Any, ...]], level: str) -> list[GroupCounts]:
    groups: dict[str, tuple[str, Counter[str]]] = {}
    for _m, cp, name, district, province, result, _reason in rows:
        key, label = {"checkpoint": (cp, name), "district": (district, district),
                      "province": (province, province)}[level]
        groups.setdefault(key, (label, Counter()))[1][result] += 1
    return [GroupCounts(k, groups[k][0], Counts(**groups[k][1])) for k in sorted(groups)]


def brute_timeseries(rows: list[tuple[Any, ...]], since: datetime, until: datetime, bucket_s: int) -> list[Bucket]:
    start, end = minute_range(since, until)
    width = bucket_s // 60
    filled: list[Counter[str]] = [Counter() for _ in range(-(-(end - start) // width))]
    for minute, *_rest, result, _reason in rows:
        filled[(minute - start) // width][result] += 1
    return [Bucket(datetime.fromtimestamp((start + i * width) * 60, tz=timezone.utc), Counts(**c))
            for i, c in enumerate(filled)]


def brute_reasons(rows: list[tuple[Any, ...]]) -> list[ReasonCount]:
    counts = Counter((r[5], r[6]) for r in rows)
    return [ReasonCount(res, reason, n) for (res, reason), n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]


# -- strategies -------------------------------------------------------------------------------

def instants() -> st.SearchStrategy[datetime]:
    """Any second from a day before the data to a day after, so edges fall anywhere."""
    return st.integers(-86_400, int(SPAN.total_seconds()) + 86_400).map(lambda s: T0 + timedelta(seconds=s))


def scopes() -> st.SearchStrategy[Scope]:
    ids = [cp for cp, _d, _p in CHECKPOINTS] + [LATE[0], GHOST, "nowhere"]
    districts = sorted({d for _c, d, _p in CHECKPOINTS} | {LATE[1]})
    return st.one_of(
        st.just(Scope.all()),
        st.just(Scope.none()),
        st.builds(lambda p, d, c: Scope.of(p, d, c),
                  st.frozensets(st.sampled_from(["01", "02", "03", "99"]), max_size=2),
                  st.frozensets(st.sampled_from(districts), max_size=2),
                  st.frozensets(st.sampled_from(ids), max_size=3)),
    )


BUCKETS = st.one_of(st.sampled_from([60, 300, 900, 3600, 7200, 21600, 86400, 2 * 86400]),
                    st.integers(1, 3000).map(lambda k: 60 * k))


# -- properties -------------------------------------------------------------------------------

@FAST
@given(scope=scopes(), a=instants(), b=instants())
def test_totals_reasons_and_groups_match_brute_force(filled: SqlStore, scope: Scope, a: datetime,
                                                      b: datetime) -> None:
    since, until = min(a, b), max(a, b)
    rows = brute_rows(filled._conn(), scope, since, until)
    assert filled.totals(scope, since, until) == brute_totals(rows)
    assert filled.reasons(scope, since, until) == brute_reasons(rows)
    for level in ("province", "district", "checkpoint"):
        assert filled.totals_by(scope, since, until, level) == brute_totals_by(rows, level)


@FAST
@given(scope=scopes(), a=instants(), b=instants(), bucket_s=BUCKETS)
def test_timeseries_matches_brute_force(filled: SqlStore, scope: Scope, a: datetime, b: datetime,
                                        bucket_s: int) -> None:
    since, until = min(a, b), max(a, b)
    if (until - since).total_seconds() / bucket_s > 4000:
        until = since + timedelta(seconds=bucket_s * 4000)
    rows = brute_rows(filled._conn(), scope, since, until)
    assert filled.timeseries(scope, since, until, bucket_s) == brute_timeseries(rows, since, until, bucket_s)


def test_aligned_ranges_use_the_coarse_tables(filled: SqlStore) -> None:
    # The cases the pages ask for: local days (UTC+7) and whole periods, charted by hour or more.
    since = datetime(2026, 11, 19, 17, 0, tzinfo=timezone.utc)
    until = since + timedelta(days=2)
    start, end = minute_range(since, until)
    assert [p.size for p in rollup.split_range(start, end)] == [rollup.HOUR, rollup.DAY, rollup.HOUR]
    assert [p.size for p in rollup.split_range(start, end, grid=(start, 60))] == [rollup.HOUR]
    for scope in (Scope.all(), Scope.of(provinces=["01"]), Scope.of(checkpoints=["C4"])):
        rows = brute_rows(filled._conn(), scope, since, until)
        assert filled.timeseries(scope, since, until, 3600) == brute_timeseries(rows, since, until, 3600)
        assert filled.totals(scope, since, until) == brute_totals(rows)
        # UTC days charted by day and by two days: whole day rows, then minutes past the end.
        day_since, day_until = T0 - timedelta(days=1), T0 + SPAN + timedelta(minutes=90)
        rows = brute_rows(filled._conn(), scope, day_since, day_until)
        for bucket_s in (86400, 2 * 86400):
            assert (filled.timeseries(scope, day_since, day_until, bucket_s)
                    == brute_timeseries(rows, day_since, day_until, bucket_s))


def test_all_time_totals_come_from_running_totals(filled: SqlStore) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    far = T0 + timedelta(days=400)
    for scope in (Scope.all(), Scope.of(provinces=["02"]), Scope.none()):
        rows = brute_rows(filled._conn(), scope, epoch, far)
        assert filled.totals_by(scope, epoch, far, "checkpoint") == brute_totals_by(rows, "checkpoint")
        assert filled.totals(scope, epoch, far) == brute_totals(rows)
    assert sum(g.counts.total for g in filled.totals_by(Scope.all(), epoch, far, "province")) > 3000


@pytest.mark.parametrize("a,b,grid,sizes", [
    (0, 0, None, []),
    (5, 59, None, [1]),
    (59, 121, None, [1, 60, 1]),
    (30, 1440 * 2 + 90, None, [1, 60, 1440, 60, 1]),
    (60, 1440 * 3, (60, 120), [60]),  # 2-hour bars from 01:00: hours fit, days would straddle
    (60, 1440 * 3, (60, 90), [1]),  # 90-minute bars: only minutes fit
    (0, 1440 * 3, (0, 1440), [1440]),
])
def test_split_range_covers_exactly_once(a: int, b: int, grid: tuple[int, int] | None, sizes: list[int]) -> None:
    pieces = rollup.split_range(a, b, grid)
    assert [p.size for p in pieces] == sizes
    covered = [m for p in pieces for m in range(p.lo * p.size, p.hi * p.size)]
    assert covered == list(range(a, b))


def test_migration_backfills_a_version_2_file(tmp_path: Path) -> None:
    """A store written before the roll-ups existed gets them filled from its minute counts."""
    path = tmp_path / "chot.db"
    reference = SqliteStore(tmp_path / "reference.db")
    fill(reference, seed=11)
    db = sqlite_utils.Database(path)
    db["schema_version"].create({"version": int, "applied_at": int}, pk="version")
    for version, migration in enumerate(MIGRATIONS[:2], start=1):
        migration(db)
        db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", [version])
    # Copy the reference's registry and events, and its counts in the version 1 shape.
    ref = reference._conn()
    version_1_columns = {"checkpoints": "*", "events": "id, device, seq, checkpoint, ts, received_at, minute,"
                         " result, reason, policy, trust_version"}
    for table, columns in version_1_columns.items():
        rows = ref.execute(f"SELECT {columns} FROM {table}").fetchall()
        db.conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    db.conn.executemany(
        "INSERT INTO minute_counts (minute, checkpoint, result, reason, count) VALUES (?, ?, ?, ?, ?)",
        ref.execute("SELECT unit, checkpoint, result, reason, count FROM minute_counts").fetchall())
    db.conn.commit()
    db.close()
    migrated = SqliteStore(path)
    assert migrated.schema_version() == len(MIGRATIONS)
    conn = sqlite3.connect(path)
    for table in [*rollup.CHECKPOINT_TABLES.values(), *rollup.COUNTRY_TABLES.values(), rollup.TOTALS_TABLE]:
        query = f"SELECT * FROM {table} ORDER BY 1, 2, 3"
        assert conn.execute(query).fetchall() == ref.execute(query).fetchall(), table
    conn.close()
    since, until = T0 + timedelta(hours=5, minutes=7), T0 + timedelta(days=2, hours=3, minutes=59)
    for scope in (Scope.all(), Scope.of(provinces=["01"], checkpoints=["LATE"])):
        rows = brute_rows(migrated._conn(), scope, since, until)
        assert migrated.totals(scope, since, until) == brute_totals(rows)
        assert migrated.timeseries(scope, since, until, 1800) == brute_timeseries(rows, since, until, 1800)
    migrated.close()
    reference.close()


def test_a_query_sees_whole_batches_while_the_ingest_writes(tmp_path: Path) -> None:
    """Each batch adds one event to a day, one to an edge hour and one to an edge minute of the
    range, so a query reading its pieces from one snapshot always sees a multiple of three."""
    path = tmp_path / "chot.db"
    writer = SqliteStore(path)
    writer.upsert_checkpoint("C1", "C1", "001", "01")
    since = T0 - timedelta(minutes=1)  # minute edge, then hours 00..23 of the day before T0+1d
    until = T0 + timedelta(days=2, hours=1)  # a whole day, and hour 00 of the last day
    where = [T0 - timedelta(seconds=30), T0 + timedelta(hours=5), T0 + timedelta(days=2, minutes=30)]
    done = threading.Event()

    def write() -> None:
        for n in range(150):
            writer.record_events([Event("d1", "C1", 3 * n + i, at, "green", "complete_series", "vn-2021", 1, at)
                                  for i, at in enumerate(where)])
        done.set()

    thread = threading.Thread(target=write, name="writer")
    thread.start()
    reader = SqliteStore(path)
    seen = set()
    try:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            for scope in (Scope.all(), Scope.of(provinces=["01"])):
                total = reader.totals(scope, since, until).total
                assert total % 3 == 0
                assert sum(b.counts.total for b in reader.timeseries(scope, since, until, 60)) % 3 == 0
                assert sum(r.count for r in reader.reasons(scope, since, until)) % 3 == 0
                seen.add(total)
    finally:
        thread.join(timeout=30)
        reader.close()
    assert done.is_set()
    assert len(seen) > 1  # the reads really overlapped the writes
    writer.close()


def test_opening_a_current_store_takes_no_write_lock(tmp_path: Path) -> None:
    """Each web request opens a store: with the schema current that is a read, so it never waits
    for the ingest's write transaction (which may hold the lock for a whole batch)."""
    path = tmp_path / "chot.db"
    SqliteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the ingest, mid-batch
    try:
        # A store that wanted the write lock would wait its whole busy timeout and then fail
        # ("database is locked"): succeeding at all while the lock is held is the proof.
        store = SqliteStore(path, timeout_s=2.0)
        assert store.totals(Scope.all(), T0, T0 + SPAN) == Counts()
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
