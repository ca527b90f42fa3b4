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
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import flask

ROOT = Path(__file__).resolve().parent.parent

from dashboard.scope import Scope  # noqa: E402
from dashboard.store import Event, Store, open_store  # noqa: E402
from dashboard.web.data.reports import Area, report, report_sheets  # noqa: E402
from dashboard.web.data.snapshots import WebSettings, bucket_for, day_period, overview  # noqa: E402
from dashboard.web.data.spreadsheet import xlsx_bytes  # noqa: E402

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


def build(target: str, events: int, seed: int) -> dict[str, Any]:
    """Fill a new store at `target` (path or URL) with the bench's registry and `events` verdicts."""
    rng = random.Random(seed)
    store = open_store(target)
    checkpoints = []
    for i in range(CHECKPOINTS):
        province = f"{i % PROVINCES + 1:02d}"
        district = f"{int(province) * 10 + (i // PROVINCES) % 3:03d}"
        cp = f"CP{i:03d}"
        store.upsert_checkpoint(cp, f"Checkpoint {i}", district, province)
        store.add_device(f"u{i:03d}a", cp)
        store.add_device(f"u{i:03d}b", cp)
        checkpoints.append(cp)
    choices = [(result, reason) for result, pairs in REASONS.items() for reason, _w in pairs]
    weights = [w for pairs in REASONS.values() for _r, w in pairs]
    busy = [rng.uniform(0.2, 3.0) for _ in checkpoints]  # some checkpoints see far more people
    seqs: dict[str, int] = {}
    first = NOW - timedelta(days=DAYS)
    span_s = int((NOW - first).total_seconds())
    started = time.perf_counter()
    batch: list[Event] = []
    for _ in range(events):
        i = rng.choices(range(len(checkpoints)), busy)[0]
        device = f"u{i:03d}{rng.choice('ab')}"
        seqs[device] = seqs.get(device, 0) + 1
        ts = first + timedelta(seconds=rng.randrange(span_s))
        result, reason = rng.choices(choices, weights)[0]
        batch.append(Event(device, checkpoints[i], seqs[device], ts, result, reason, "vn-2021", 7,
                           ts + timedelta(seconds=rng.randrange(1, 30))))
        if len(batch) == BATCH:
            store.record_events(batch)
            batch = []
    if batch:
        store.record_events(batch)
    elapsed = time.perf_counter() - started
    store.close()
    return {"events": events, "build_s": round(elapsed, 2), "events_per_s": round(events / elapsed)}


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


def measure(target: str, repeat: int) -> list[dict[str, Any]]:
    """Time every query for every scope and period; one row per (query, scope)."""
    store: Store = open_store(target)
    today = NOW.astimezone(TZ).date()
    periods = {"today": day_period(today, today, TZ), "7 days": day_period(today - timedelta(days=6), today, TZ)}
    scopes = {"all": Scope.all(), "province": Scope.of(provinces=["01"]), "checkpoint": Scope.of(checkpoints=["CP000"])}
    settings = WebSettings(timezone=TZ)
    rows: list[dict[str, Any]] = []
    for scope_name, scope in scopes.items():
        queries: dict[str, Callable[[Any], Any]] = {
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
        for name, query in queries.items():
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


def render(info: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A plain text table."""
    lines = [f"{info['events']:,} events, {CHECKPOINTS} checkpoints, {PROVINCES} provinces, {DAYS} days;"
             f" built in {info['build_s']} s ({info['events_per_s']:,} events/s through record_events);"
             f" median of {info['repeat']} runs, ms",
             f"{'query':40} {'scope':11} {'today':>9} {'7 days':>9}  digest"]
    for row in rows:
        if "today" in row:
            lines.append(f"{row['query']:40} {row['scope']:11} {row['today']:9.2f} {row['7 days']:9.2f}"
                         f"  {row['today digest']}/{row['7 days digest']}")
        else:
            key = "all time" if "all time" in row else "once"
            lines.append(f"{row['query']:40} {row['scope']:11} {row[key]:9.2f} {'':9}  {row.get(key + ' digest', '')}")
    by_name = {(r["query"], r["scope"]): r for r in rows}
    for scope in ("all", "province", "checkpoint"):
        peer = by_name.get(("overview snapshot", scope))
        for name in ("daily report", "daily report XLSX"):
            row = by_name.get((name, scope))
            if peer and row and peer["today"] and peer["7 days"]:
                lines.append(f"{name + ' / overview':40} {scope:11} {row['today'] / peer['today']:8.1f}x"
                             f" {row['7 days'] / peer['7 days']:8.1f}x")
    everything = digest([{k: v for k, v in r.items() if k.endswith("digest")} for r in rows])
    lines.append(f"digest of all results: {everything}")
    return "\n".join(lines)


def run_backend(backend: str, events: int, seed: int, repeat: int, db_path: Path | None) -> dict[str, Any]:
    """Build (or reuse, SQLite with --db) and measure one backend."""
    with tempfile.TemporaryDirectory(prefix="chot-bench-store-") as tmp:
        cluster = None
        try:
            if backend == "postgres":
                from testbed.postgres import PostgresCluster  # noqa: PLC0415 - only when asked for

                cluster = PostgresCluster(durable=True)  # its own folder: the server user must reach it
                cluster.start()
                target = cluster.create_database("bench_store")
            else:
                target = str(db_path or Path(tmp) / "chot.db")
            if backend == "sqlite" and db_path and db_path.exists():
                info: dict[str, Any] = {"events": events, "build_s": 0.0, "events_per_s": 0, "reused": str(db_path)}
            else:
                info = build(target, events, seed)
            info["repeat"] = repeat
            info["backend"] = backend
            with flask.Flask("bench").test_request_context():  # the overview's texts read the request's language
                rows = measure(target, repeat)
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def main(events: int, million: bool, repeat: int, seed: int, backend: str, db_path: Path | None,
         as_json: bool) -> None:
    """Time the dashboard's store queries on a store of national size, on each backend."""
    events = 1_000_000 if million else events
    if not 1 <= events <= 5_000_000 or not 1 <= repeat <= 100:
        raise click.BadParameter("--events must be 1..5,000,000 and --repeat 1..100")
    names = ["sqlite", "postgres"] if backend == "all" else [backend]
    results = {name: run_backend(name, events, seed, repeat, db_path) for name in names}
    same = len({r["digest"] for r in results.values()}) == 1
    if as_json:
        first = results[names[0]]
        click.echo(json.dumps({"info": first["info"], "rows": first["rows"], "backends": results,
                               "same_answers": same}, indent=2))
        return
    for name, result in results.items():
        click.echo(f"== {name}")
        click.echo(render(result["info"], result["rows"]))
    if len(results) > 1:
        click.echo(f"same answers on every backend: {same}")


if __name__ == "__main__":
    main()
