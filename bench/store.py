"""Benchmark: the central store's dashboard queries at national scale.

Builds a store through the public `Store` API (`record_events`, as the ingest does) holding N
verdicts (default 100,000; `--million` for 1,000,000) from 200 checkpoints in 63 provinces over
8 days, then times each query the dashboard runs, unscoped (the ministry), scoped to one
province and to one checkpoint, for "today" and "the last 7 days" (local days in
Asia/Ho_Chi_Minh, as the web app asks for them), plus the whole overview snapshot, the
all-time per-checkpoint totals `/metrics` reads, and opening a store (once per web request).

Same seed, same data: the `digest` of every query's result is printed too, so two runs on
different code can be checked to answer the same (`--json` gives the per-query digests).
Each backend (SQLite, and PostgreSQL in a throwaway durable cluster) is built from the same
events and asked the same queries in one run; their digests must agree.

The daily report and its XLSX workbook are timed the same way; the overview snapshot, timed
beside them, is their peer (the `report / overview` ratio is printed).

    .venv/bin/python -m bench.store [--events 100000 | --million] [--repeat 5] [--backend all] [--json]

At national size (`--national-size`: 10,000,000 verdicts and officer decisions from 10,000
checkpoints in 63 provinces over 30 days; `--events` to choose another count) both stores are
filled quickly: the events with one COPY (PostgreSQL) or one prepared INSERT (SQLite), the
roll-ups, decision counts and device marks then computed from them in SQL as the ingest would
have kept them (`--fast-fill` does this at any size; at a small size its digests equal those
of the `record_events` build, which the tests check). Periods are then today and the last 30 days.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import flask

from dashboard.scope import Scope
from dashboard.store import Event, Store, open_store
from dashboard.store.base import to_ms
from dashboard.web.data.reports import Area, report, report_sheets
from dashboard.web.data.snapshots import WebSettings, bucket_for, day_period, overview
from dashboard.web.data.spreadsheet import xlsx_bytes

ROOT = Path(__file__).resolve().parent.parent

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# A fixed "now" (mid-afternoon local, inside an hour) keeps runs comparable across days.
NOW = datetime(2026, 11, 20, 8, 37, 20, tzinfo=timezone.utc)
DAYS = 8
CHECKPOINTS = 200
PROVINCES = 63
BATCH = 500
REASONS = {
    "green": (("complete_series", 70), ("recovered", 8), ("negative_test", 12), ("valid_certificate", 2)),
    "yellow": (("partial_vaccination", 4), ("trust_stale", 1), ("clock_untrusted", 1)),
    "red": (("signature", 2), ("cwt_expired", 2), ("kid_unknown", 1), ("positive_test", 1),
            ("test_too_old", 2), ("too_soon_after_dose", 1), ("policy_not_met", 1), ("revoked", 1)),
}


@dataclass(frozen=True)
class Shape:
    """The bench's country: how many checkpoints, over how many days, and the long period asked."""

    checkpoints: int = CHECKPOINTS
    days: float = DAYS
    long_days: int = 7
    decisions: bool = False
    """Officers' decisions after some yellow and red verdicts (and manual checks) too."""

    @property
    def width(self) -> int:
        return max(3, len(str(self.checkpoints - 1)))

    def checkpoint(self, i: int) -> str:
        return f"CP{i:0{self.width}d}"

    def device(self, i: int, unit: str) -> str:
        return f"u{i:0{self.width}d}{unit}"

    @property
    def long_label(self) -> str:
        return f"{self.long_days} days"


DEFAULT_SHAPE = Shape()
NATIONAL_SHAPE = Shape(checkpoints=10_000, days=30, long_days=30, decisions=True)
NATIONAL_EVENTS = 10_000_000


def registry(shape: Shape) -> list[tuple[str, str, str, str]]:
    """(id, name, district, province) of every checkpoint."""
    rows = []
    for i in range(shape.checkpoints):
        province = f"{i % PROVINCES + 1:02d}"
        district = f"{int(province) * 10 + (i // PROVINCES) % 3:03d}"
        rows.append((shape.checkpoint(i), f"Checkpoint {i}", district, province))
    return rows


def generate(events: int, seed: int, shape: Shape) -> Iterator[Event]:
    """The bench's events, the same for a seed: verdicts, and with `shape.decisions` about one
    decision per eight yellow or red verdicts and a few manual checks (each counted in `events`)."""
    rng = random.Random(seed)
    choices = [(result, reason) for result, pairs in REASONS.items() for reason, _w in pairs]
    weights = [w for pairs in REASONS.values() for _r, w in pairs]
    busy = [rng.uniform(0.2, 3.0) for _ in range(shape.checkpoints)]  # some checkpoints see far more people
    seqs: dict[str, int] = {}
    first = NOW - timedelta(days=shape.days)
    span_s = int((NOW - first).total_seconds())
    made = 0
    while made < events:
        n = min(10_000, events - made)
        places = rng.choices(range(shape.checkpoints), busy, k=n)
        verdicts = rng.choices(choices, weights, k=n)
        for i, (result, reason) in zip(places, verdicts, strict=True):
            if made >= events:
                break
            device = shape.device(i, rng.choice("ab"))
            cp = shape.checkpoint(i)
            seqs[device] = seq = seqs.get(device, 0) + 1
            ts = first + timedelta(seconds=rng.randrange(span_s))
            received = ts + timedelta(seconds=rng.randrange(1, 30))
            yield Event(device, cp, seq, ts, result, reason, "vn-2021", 7, received)
            made += 1
            if not shape.decisions or made >= events:
                continue
            if result != "green" and rng.random() < 0.125:
                seqs[device] = seqs[device] + 1
                outcome = "let_through" if rng.random() < 0.3 else "turned_back"
                yield Event(device, cp, seqs[device], ts + timedelta(seconds=5), "decision",
                            "paper_proof" if outcome == "let_through" else "refused", "vn-2021", 7,
                            received + timedelta(seconds=5), outcome, f"o{i % 7}", seq, result, reason)
                made += 1
            elif rng.random() < 0.002:
                seqs[device] = seqs[device] + 1
                yield Event(device, cp, seqs[device], ts + timedelta(seconds=2), "manual", "paper_proof", "vn-2021",
                            7, received + timedelta(seconds=2), "let_through", f"o{i % 7}")
                made += 1


def build(target: str, events: int, seed: int, shape: Shape = DEFAULT_SHAPE) -> dict[str, Any]:
    """Fill a new store at `target` (path or URL) through `record_events`, as the ingest does."""
    store = open_store(target)
    for cp, name, district, province in registry(shape):
        store.upsert_checkpoint(cp, name, district, province)
        for unit in "ab":
            store.add_device(shape.device(int(cp[2:]), unit), cp)
    started = time.perf_counter()
    batch: list[Event] = []
    for event in generate(events, seed, shape):
        batch.append(event)
        if len(batch) == BATCH:
            store.record_events(batch)
            batch = []
    if batch:
        store.record_events(batch)
    elapsed = time.perf_counter() - started
    store.close()
    return {"events": events, "build_s": round(elapsed, 2), "events_per_s": round(events / elapsed), "fill": "ingest"}


_EVENT_COLUMNS = ("device", "seq", "checkpoint", "ts", "received_at", "minute", "result", "reason", "policy",
                  "trust_version", "outcome", "officer", "follows_seq", "follows_result", "follows_reason")
# The roll-ups as the ingest keeps them (dashboard.rollup), computed from the stored events.
_ROLLUP_SQL = (
    "INSERT INTO minute_counts (checkpoint, unit, result, reason, count)"
    " SELECT checkpoint, minute, result, reason, COUNT(*) FROM events GROUP BY checkpoint, minute, result, reason",
    "INSERT INTO hour_counts (checkpoint, unit, result, reason, count)"
    " SELECT checkpoint, unit / 60, result, reason, SUM(count) FROM minute_counts GROUP BY checkpoint, unit / 60, result, reason",
    "INSERT INTO day_counts (checkpoint, unit, result, reason, count)"
    " SELECT checkpoint, unit / 24, result, reason, SUM(count) FROM hour_counts GROUP BY checkpoint, unit / 24, result, reason",
    *(f"INSERT INTO country_{t} (unit, result, reason, count) SELECT unit, result, reason, SUM(count) FROM {t}"
      " WHERE checkpoint IN (SELECT id FROM checkpoints) GROUP BY unit, result, reason"
      for t in ("minute_counts", "hour_counts", "day_counts")),
    "INSERT INTO checkpoint_totals (checkpoint, result, count)"
    " SELECT checkpoint, result, SUM(count) FROM day_counts GROUP BY checkpoint, result",
    "INSERT INTO decision_counts (checkpoint, minute, officer, outcome, reason, follows_result, follows_reason, count)"
    " SELECT checkpoint, minute, officer, outcome, reason, COALESCE(follows_result, ''), COALESCE(follows_reason, ''),"
    " COUNT(*) FROM events WHERE officer IS NOT NULL GROUP BY checkpoint, minute, officer, outcome, reason,"
    " COALESCE(follows_result, ''), COALESCE(follows_reason, '')",
    "UPDATE meta SET value = (SELECT MIN(unit) FROM minute_counts) WHERE key = 'first_minute'",
    "UPDATE meta SET value = (SELECT MAX(unit) FROM minute_counts) WHERE key = 'last_minute'",
    "UPDATE meta SET value = value + (SELECT COUNT(*) FROM events) WHERE key = 'changes'",
    "UPDATE devices SET last_seen = (SELECT MAX(received_at) FROM events e WHERE e.device = devices.id),"
    " last_seq = (SELECT MAX(seq) FROM events e WHERE e.device = devices.id)",
)


def _row(e: Event) -> tuple[Any, ...]:
    ts, received = int(e.ts.timestamp() * 1000), int(e.received_at.timestamp() * 1000)
    return (e.device, e.seq, e.checkpoint, ts, received, ts // 60_000, e.result, e.reason, e.policy, e.trust_version,
            e.outcome, e.officer, e.follows_seq, e.follows_result, e.follows_reason)


def fast_fill(target: str, events: int, seed: int, shape: Shape) -> dict[str, Any]:
    """Fill a new store with COPY (PostgreSQL) or one prepared INSERT (SQLite), then the roll-ups
    in SQL: minutes for a 10-million-event store instead of hours through `record_events`.
    (Every generated time is before its receipt and after 2021: counted at its own minute.)"""
    store: Any = open_store(target)
    started = time.perf_counter()
    with store._write() as conn:
        rows = registry(shape)
        conn.executemany("INSERT INTO checkpoints (id, name, district, province) VALUES (?, ?, ?, ?)", rows)
        made = to_ms(datetime.now(timezone.utc))  # as add_device does
        conn.executemany("INSERT INTO devices (id, checkpoint, created_at, state) VALUES (?, ?, ?, 'unknown')",
                         [(shape.device(int(cp[2:]), unit), cp, made) for cp, *_ in rows for unit in "ab"])
    stream = (_row(e) for e in generate(events, seed, shape))
    if store.shared:  # PostgreSQL: COPY in text format, in chunks
        with store._borrow() as conn, conn.raw.transaction(), conn.raw.cursor() as cur:
            with cur.copy(f"COPY events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN") as copy:
                chunk: list[str] = []
                for row in stream:
                    chunk.append("\t".join("\\N" if v is None else str(v) for v in row))
                    if len(chunk) == 50_000:
                        copy.write("\n".join(chunk) + "\n")
                        chunk = []
                if chunk:
                    copy.write("\n".join(chunk) + "\n")
    else:
        with store._write() as conn:
            conn.executemany(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * 15)})",
                             stream)
    loaded = time.perf_counter()
    with store._write() as conn:
        for statement in _ROLLUP_SQL:
            conn.execute(statement)
    if store.shared:
        with store._borrow() as conn:
            conn.native("VACUUM ANALYZE")  # what autovacuum does after a load: fresh statistics, visibility map
    else:
        store._conn().execute("ANALYZE")
    elapsed = time.perf_counter() - started
    store.close()
    return {"events": events, "build_s": round(elapsed, 2), "events_per_s": round(events / elapsed), "fill": "fast",
            "load_s": round(loaded - started, 2), "rollups_s": round(elapsed - (loaded - started), 2)}


def write_profile(events: int, seed: int, batch: int) -> dict[str, Any]:
    """Where `record_events` spends its time on SQLite (the embedded ingest's store), by statement
    kind, for events as the ingest sees them: all from the last minute, in batches of `batch`."""
    from dashboard.store import sqlite as sqlite_store  # only for this mode

    shape = Shape(days=1 / 1440)
    spent: dict[str, float] = {}

    class Timed:
        """The connection, timing each statement by its first words."""

        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def _time(self, kind: str, run: Callable[[], Any]) -> Any:
            t = time.perf_counter()
            try:
                return run()
            finally:
                spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - t

        def execute(self, sql: str, *args: Any) -> Any:
            words = sql.split()
            kind = " ".join(words[:3] if words[0] == "INSERT" else words[:2])
            return self._time(kind, lambda: self.conn.execute(sql, *args))

        def executemany(self, sql: str, rows: Any) -> Any:
            words = sql.split()
            return self._time(" ".join(words[:3]), lambda: self.conn.executemany(sql, rows))

    with tempfile.TemporaryDirectory(prefix="chot-bench-store-") as tmp:
        store: Any = open_store(str(Path(tmp) / "chot.db"))
        for cp, name, district, province in registry(shape):
            store.upsert_checkpoint(cp, name, district, province)
            for unit in "ab":
                store.add_device(shape.device(int(cp[2:]), unit), cp)
        conn = store._conn()
        store._write = lambda: sqlite_store._Transaction(Timed(conn))
        all_events = list(generate(events, seed, shape))
        started = time.perf_counter()
        for i in range(0, len(all_events), batch):
            store.record_events(all_events[i:i + batch])
        elapsed = time.perf_counter() - started
        store.close()
    shares = {kind: round(t / elapsed, 3) for kind, t in sorted(spent.items(), key=lambda kv: -kv[1])}
    return {"events": events, "batch": batch, "events_per_s": round(events / elapsed),
            "python_and_other": round(1 - sum(spent.values()) / elapsed, 3), "shares": shares}


def _plain(value: Any) -> Any:
    """A JSON-ready form of a query result, for the digest."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def digest(value: Any) -> str:
    """Short hash of a result, equal across runs exactly when the results are equal."""
    return hashlib.sha256(json.dumps(_plain(value), sort_keys=True).encode()).hexdigest()[:12]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time in ms of `repeat` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def _queries(store: Store, scope_name: str, scope: Scope, settings: WebSettings) -> dict[str, Callable[[Any], Any]]:
    """Each timed query of one scope, as a function of the period."""
    return {
        "totals": lambda p: store.totals(scope, p.since, p.until),
        "totals_by checkpoint": lambda p: store.totals_by(scope, p.since, p.until, "checkpoint"),
        "totals_by province": lambda p: store.totals_by(scope, p.since, p.until, "province"),
        "timeseries": lambda p: store.timeseries(scope, p.since, p.until, bucket_for(p)),
        "reasons": lambda p: store.reasons(scope, p.since, p.until),
        "overview snapshot": lambda p: overview(store, scope, settings, p, NOW),
        # The daily report (by checkpoint and local hour, reasons, health, completeness) and
        # the same as the XLSX workbook a supervisor downloads; its peer is the overview above.
        "daily report": lambda p: report(store, Area(scope_name, scope_name, scope), p, settings, NOW),
        "daily report XLSX": lambda p: len(xlsx_bytes(report_sheets(
            report(store, Area(scope_name, scope_name, scope), p, settings, NOW), settings))),
    }


def measure(target: str, repeat: int, shape: Shape = DEFAULT_SHAPE) -> list[dict[str, Any]]:
    """Time every query for every scope and period; one row per (query, scope)."""
    store: Store = open_store(target)
    today = NOW.astimezone(TZ).date()
    periods = {"today": day_period(today, today, TZ),
               shape.long_label: day_period(today - timedelta(days=shape.long_days - 1), today, TZ)}
    scopes = {"all": Scope.all(), "province": Scope.of(provinces=["01"]),
              "checkpoint": Scope.of(checkpoints=[shape.checkpoint(0)])}
    settings = WebSettings(timezone=TZ)
    rows: list[dict[str, Any]] = []
    for scope_name, scope in scopes.items():
        for name, query in _queries(store, scope_name, scope, settings).items():
            row: dict[str, Any] = {"query": name, "scope": scope_name}
            for label, period in periods.items():
                ms, result = timed(lambda: query(period), repeat)  # noqa: B023 - called right here
                row[label] = round(ms, 2)
                row[f"{label} digest"] = digest(result)
            rows.append(row)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    ms, result = timed(lambda: store.totals_by(Scope.all(), epoch, NOW + timedelta(days=1), "checkpoint"), repeat)
    rows.append({"query": "/metrics all-time totals_by checkpoint", "scope": "all", "all time": round(ms, 2),
                 "all time digest": digest(result)})
    if store.shared:
        # A pooled store is opened once per web process; a request only borrows a connection.
        ms, _ = timed(lambda: store.list_checkpoints(Scope.none()), max(repeat, 20))
        store.close()
    else:
        store.close()

        def open_close() -> None:
            open_store(target).list_checkpoints(Scope.none())  # open, first read, as a web request does

        ms, _ = timed(open_close, max(repeat, 20))
    rows.append({"query": "store for a web request (open or borrow)", "scope": "-", "once": round(ms, 2)})
    return rows


def render(info: dict[str, Any], rows: list[dict[str, Any]], shape: Shape = DEFAULT_SHAPE) -> str:
    """A plain text table."""
    long = shape.long_label
    how = "through record_events" if info.get("fill") != "fast" else "COPY or one INSERT, then roll-ups in SQL"
    lines = [f"{info['events']:,} events, {shape.checkpoints:,} checkpoints, {PROVINCES} provinces, {shape.days} days;"
             f" built in {info['build_s']} s ({info['events_per_s']:,} events/s {how});"
             f" median of {info['repeat']} runs, ms",
             f"{'query':40} {'scope':11} {'today':>9} {long:>9}  digest"]
    for row in rows:
        if "today" in row:
            lines.append(f"{row['query']:40} {row['scope']:11} {row['today']:9.2f} {row[long]:9.2f}"
                         f"  {row['today digest']}/{row[long + ' digest']}")
        else:
            key = "all time" if "all time" in row else "once"
            lines.append(f"{row['query']:40} {row['scope']:11} {row[key]:9.2f} {'':9}  {row.get(key + ' digest', '')}")
    by_name = {(r["query"], r["scope"]): r for r in rows}
    for scope in ("all", "province", "checkpoint"):
        peer = by_name.get(("overview snapshot", scope))
        for name in ("daily report", "daily report XLSX"):
            ratio_row = by_name.get((name, scope))
            if peer and ratio_row and peer["today"] and peer[long]:
                lines.append(f"{name + ' / overview':40} {scope:11} {ratio_row['today'] / peer['today']:8.1f}x"
                             f" {ratio_row[long] / peer[long]:8.1f}x")
    everything = digest([{k: v for k, v in r.items() if k.endswith("digest")} for r in rows])
    lines.append(f"digest of all results: {everything}")
    return "\n".join(lines)


def run_backend(backend: str, events: int, seed: int, repeat: int, db_path: Path | None,
                shape: Shape = DEFAULT_SHAPE, fast: bool = False) -> dict[str, Any]:
    """Build (or reuse, SQLite with --db) and measure one backend."""
    with tempfile.TemporaryDirectory(prefix="chot-bench-store-") as tmp:
        cluster = None
        try:
            if backend == "postgres":
                from testbed.postgres import PostgresCluster  # only when asked for

                cluster = PostgresCluster(durable=True)  # its own folder: the server user must reach it
                cluster.start()
                target = cluster.create_database("bench_store")
            else:
                target = str(db_path or Path(tmp) / "chot.db")
            if backend == "sqlite" and db_path and db_path.exists():
                info: dict[str, Any] = {"events": events, "build_s": 0.0, "events_per_s": 0, "reused": str(db_path)}
            else:
                info = fast_fill(target, events, seed, shape) if fast else build(target, events, seed, shape)
            info["repeat"] = repeat
            info["backend"] = backend
            with flask.Flask("bench_store", root_path=str(ROOT)).test_request_context():  # the overview's texts read the request's language
                rows = measure(target, repeat, shape)
        finally:
            if cluster is not None:
                cluster.remove()
    # Workbook bytes carry the zip's clock (they differ by the second they were made): the
    # answers compared across backends are the query results, the report's included.
    answers = [{k: v for k, v in r.items() if k.endswith("digest")} for r in rows if "XLSX" not in r["query"]]
    return {"info": info, "rows": rows, "digest": digest(answers)}


@click.command()
@click.option("--events", default=100_000, show_default=True, help="Verdicts to store.")
@click.option("--million", is_flag=True, help="Store 1,000,000 verdicts (overrides --events).")
@click.option("--repeat", default=5, show_default=True, help="Runs per query; the median is reported.")
@click.option("--seed", default=4, show_default=True, help="Random seed of the data.")
@click.option("--backend", type=click.Choice(["all", "sqlite", "postgres"]), default="all", show_default=True,
              help="Which store backends to build and query (all: both, in one run).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the built SQLite store here (reused when it exists) instead of a temporary file.")
@click.option("--national-size", "national", is_flag=True,
              help="10,000,000 verdicts and decisions (or --events), 10,000 checkpoints, 30 days, fast fill.")
@click.option("--fast-fill", "fast", is_flag=True, help="Fill with COPY / one INSERT and roll-ups in SQL.")
@click.option("--write-profile", "write_batch", type=int, default=0,
              help="Instead: profile record_events on SQLite in batches of this size (events of the last minute).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def main(ctx: click.Context, events: int, million: bool, repeat: int, seed: int, backend: str,
         db_path: Path | None, national: bool, fast: bool, write_batch: int, as_json: bool) -> None:
    """Time the dashboard's store queries on a store of national size, on each backend."""
    if write_batch:
        profile = write_profile(min(events, 200_000), seed, write_batch)
        if as_json:
            click.echo(json.dumps(profile, indent=2))
            return
        click.echo(f"record_events on SQLite: {profile['events']:,} events of the last minute in batches of"
                   f" {profile['batch']}: {profile['events_per_s']:,} events/s; share of the time:")
        for kind, share in profile["shares"].items():
            click.echo(f"  {share:6.1%}  {kind}")
        click.echo(f"  {profile['python_and_other']:6.1%}  Python around the statements")
        return
    shape = NATIONAL_SHAPE if national else DEFAULT_SHAPE
    if national and ctx.get_parameter_source("events") == click.core.ParameterSource.DEFAULT:
        events = NATIONAL_EVENTS
    events = 1_000_000 if million else events
    limit = 20_000_000 if national or fast else 5_000_000
    if not 1 <= events <= limit or not 1 <= repeat <= 100:
        raise click.BadParameter(f"--events must be 1..{limit:,} and --repeat 1..100")
    names = ["sqlite", "postgres"] if backend == "all" else [backend]
    results = {name: run_backend(name, events, seed, repeat, db_path, shape, fast or national) for name in names}
    same = len({r["digest"] for r in results.values()}) == 1
    if as_json:
        first = results[names[0]]
        click.echo(json.dumps({"info": first["info"], "rows": first["rows"], "backends": results,
                               "same_answers": same}, indent=2))
        return
    for name, result in results.items():
        click.echo(f"== {name}")
        click.echo(render(result["info"], result["rows"], shape))
    if len(results) > 1:
        click.echo(f"same answers on every backend: {same}")


if __name__ == "__main__":
    main()
