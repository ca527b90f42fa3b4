"""`chot dashboard migrate-store`: a SQLite store (pruned events, late registration, users,
trust) copied into PostgreSQL answers every query the same, and the check finds a difference."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from click.testing import CliRunner

from chot.cli import main
from dashboard.scope import Scope
from dashboard.store import Event, SqliteStore, StatusUpdate, Store
from dashboard.store.postgres import PostgresStore
from dashboard.store.transfer import check_transfer, digest
from tests.test_dashboard_store_rollup import SPAN, T0, fill

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAR = T0 + timedelta(days=400)


def answers(store: Store) -> list[object]:
    """Everything the dashboard asks, for whole and partial ranges and a few scopes."""
    out: list[object] = []
    for scope in (Scope.all(), Scope.of(provinces=["02"]), Scope.of(checkpoints=["C4", "LATE"])):
        for since, until in ((EPOCH, FAR), (T0 + timedelta(hours=5, minutes=7), T0 + timedelta(days=2, minutes=3))):
            out += [store.totals(scope, since, until), store.reasons(scope, since, until),
                    store.totals_by(scope, since, until, "checkpoint"),
                    store.timeseries(scope, since, min(until, since + SPAN), 3600)]
        out.append(store.recent_events(scope, limit=20))
    out += [store.list_users(), store.latest_trust_bundle(), store.reject_counts(),
            store.list_devices(Scope.all()), store.change_marker(),
            store.decision_counts(Scope.all(), EPOCH, FAR), store.list_officers(Scope.all()),
            store.latest_roster("C1"), store.audit_log(Scope.all()),
            store.login_failures("hanoi", "10.0.0.1", timedelta(days=3650))]
    return out


def test_a_sqlite_store_moves_to_postgres_with_every_answer_kept(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "chot.db"
    sqlite = SqliteStore(path)
    fill(sqlite)
    sqlite.add_device("d-C1", "C1")
    sqlite.prune_events(T0 + timedelta(hours=12))  # counts outlive these events: they must move too
    sqlite.create_user("hanoi", "scrypt:hash", "supervisor", Scope.of(provinces=["01"]), "en")
    sqlite.record_login_failure("hanoi", "10.0.0.1", at=T0)
    sqlite.save_trust_bundle(4, b"\x00signed\xff", T0, T0 + timedelta(days=1), "root")
    sqlite.record_rejects({"bad_json": 3})
    sqlite.record_audit("root", "user_created", "hanoi", province="01", at=T0)
    sqlite.record_status("d-C1", StatusUpdate("online", backlog=0), T0 + timedelta(days=2))
    sqlite.upsert_officer("C1", "CA-0142", "Nguyễn Văn An", "police", '{"scrypt": "hash"}')
    sqlite.save_roster("C1", 3, b"\x01signed roster")
    at = T0 + timedelta(days=2)
    sqlite.record_events([Event("d-C1", "C1", 9_000, at, "decision", "paper_proof", "vn-2021", 1, at,
                                outcome="let_through", officer="CA-0142", follows_seq=8_999, follows_result="red",
                                follows_reason="too_soon_after_dose"),
                          Event("d-C1", "C1", 9_001, at, "manual", "paper_proof", "vn-2021", 1, at,
                                outcome="turned_back", officer="CA-0142")])
    expected = answers(sqlite)

    conf = tmp_path / "central.toml"
    conf.write_text(f'data_dir = "{tmp_path}"\ndatabase = "{path}"\n')
    result = CliRunner().invoke(main, ["dashboard", "-c", str(conf), "migrate-store", "--to", postgres_url])
    assert result.exit_code == 0, result.output
    assert "store copied and checked" in result.output and "DIFF" not in result.output
    assert postgres_url.split(":")[2].split("@")[0] not in result.output  # no password printed

    pg = PostgresStore(postgres_url)
    assert answers(pg) == expected
    # The ingest carries on in PostgreSQL: new events get ids above the copied ones.
    now = T0 + SPAN
    assert pg.record_events([Event("d-C1", "C1", 10**6, now, "green", "complete_series", "vn-2021", 1, now)]) == 1
    assert pg.recent_events(Scope.all(), limit=1)[0].seq == 10**6

    again = CliRunner().invoke(main, ["dashboard", "-c", str(conf), "migrate-store", "--to", postgres_url])
    assert again.exit_code != 0 and "not empty" in again.output and "Traceback" not in again.output

    # The check can fail: one changed count is found, by table.
    pg._conn().execute("UPDATE day_counts SET count = count + 1 WHERE unit = (SELECT MIN(unit) FROM day_counts)")
    bad = {c.table for c in check_transfer(sqlite, pg) if not c.ok}
    assert "day_counts" in bad and "events" in bad  # events: the one added above
    pg.close()
    sqlite.close()


def test_digests_ignore_order_and_see_every_value() -> None:
    rows = [(1, "a", None, b"x"), (2, "b", 1.5, b"")]
    assert digest(rows) == digest(rows[::-1])
    assert digest(rows)[1] != digest([(1, "a", None, b"y"), rows[1]])[1]
    assert digest(rows + rows[:1])[0] == 3 and digest(rows + rows[:1])[1] != digest(rows)[1]


def test_without_a_target_the_command_says_what_it_needs(tmp_path: Path) -> None:
    conf = tmp_path / "central.toml"
    conf.write_text(f'data_dir = "{tmp_path}"\n')
    SqliteStore(tmp_path / "chot.db").close()
    result = CliRunner().invoke(main, ["dashboard", "-c", str(conf), "migrate-store"])
    assert result.exit_code != 0 and "--to postgresql://" in result.output
