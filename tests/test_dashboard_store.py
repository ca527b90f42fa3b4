"""The store on both backends (SQLite files, PostgreSQL databases): schema, exact counts, scope
filtering, users, trust, concurrent writers; plus Scope and config."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from common.typedconfig import ConfigError
from dashboard.config import parse_config
from dashboard.scope import Scope, ScopeError
from dashboard.store import (
    MIGRATIONS,
    DuplicateUser,
    Event,
    InvalidRecord,
    SqliteStore,
    StatusUpdate,
    Store,
    StoreError,
    UnknownCheckpoint,
    UnknownUser,
    open_store,
)

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    # Two provinces: Hà Nội (01) with two districts, Lào Cai (10) with one.
    s.upsert_checkpoint("IC7", "IC7 Nội Bài", "017", "01")
    s.upsert_checkpoint("HN2", "Hà Nội 2", "018", "01")
    s.upsert_checkpoint("LC1", "Lào Cai 1", "080", "10")
    for device, checkpoint in (("u1", "IC7"), ("u2", "IC7"), ("u3", "HN2"), ("u4", "LC1")):
        s.add_device(device, checkpoint)
    yield s
    s.close()


def ev(device: str, checkpoint: str, seq: int, at: datetime, result: str = "green",
       reason: str = "complete_series", received: datetime | None = None) -> Event:
    return Event(device, checkpoint, seq, at, result, reason, "vn-2021", 3, received or at)


# -- schema --------------------------------------------------------------------------------

def test_new_file_gets_the_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "chot.db"
    s = SqliteStore(path)
    assert s.schema_version() == len(MIGRATIONS)
    s.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    again = open_store(str(path))  # reopening migrates nothing
    assert isinstance(again, SqliteStore) and again.schema_version() == len(MIGRATIONS)
    again.close()


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "chot.db"
    # A file written by schema version 1 (its migration alone), with data in it.
    db = sqlite_utils.Database(path)
    db["schema_version"].create({"version": int, "applied_at": int}, pk="version")
    MIGRATIONS[0](db)
    db.execute("INSERT INTO schema_version (version, applied_at) VALUES (1, 0)")
    db.conn.commit()
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO checkpoints (id, name, district, province) VALUES ('IC7', 'IC7', '017', '01')")
    conn.commit()
    conn.close()
    s = SqliteStore(path)
    assert s.schema_version() == len(MIGRATIONS) >= 2
    assert [c.id for c in s.list_checkpoints(Scope.all())] == ["IC7"]  # data kept
    s.record_rejects({"bad_json": 2, "unknown_field": 1})
    s.record_rejects({"bad_json": 1, "too_large": 0})
    assert s.reject_counts() == {"bad_json": 3, "unknown_field": 1}
    s.close()


def test_a_newer_schema_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "chot.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_gives_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "chot.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="cannot be used as the chot store"):
        SqliteStore(path)
    with pytest.raises(StoreError, match="not supported"):
        open_store("mysql://user@host/chot")


def test_unopenable_path_gives_a_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot"):
        SqliteStore(blocker / "chot.db")


# -- events and counts ---------------------------------------------------------------------

def test_events_are_stored_once_and_counted_per_minute(store: SqliteStore) -> None:
    batch = [ev("u1", "IC7", i, T0 + timedelta(seconds=20 * i)) for i in range(1, 7)]
    batch.append(ev("u1", "IC7", 7, T0, "red", "signature"))
    marker = store.change_marker()
    assert store.record_events(batch) == 7
    assert store.record_events(batch[:3]) == 0  # redelivered
    assert store.record_events([batch[0], ev("u2", "IC7", 1, T0)]) == 1  # same seq, other device
    assert store.change_marker() == marker + 8
    day = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    totals = store.totals(Scope.all(), *day)
    assert (totals.green, totals.yellow, totals.red, totals.total) == (7, 0, 1, 8)
    assert totals.pass_rate == pytest.approx(7 / 8)
    series = store.timeseries(Scope.all(), T0, T0 + timedelta(minutes=3), 60)
    assert [b.counts.total for b in series] == [4, 3, 1]  # seconds 0,0,0(u2),20,40 | 60,80,100 | 120
    assert [b.start for b in series] == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert [(r.result, r.reason, r.count) for r in store.reasons(Scope.all(), *day)] == [
        ("green", "complete_series", 7), ("red", "signature", 1)]


def test_a_reset_sequence_counter_is_reported(store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    store.record_events([ev("u1", "IC7", 1, T0), ev("u1", "IC7", 2, T0)])
    assert store.record_events([ev("u1", "IC7", 1, T0)]) == 0  # a redelivery: quiet
    assert "sequence counter was reset" not in caplog.text
    assert store.record_events([ev("u1", "IC7", 1, T0 + timedelta(hours=5))]) == 0
    assert "device u1 sent seq 1 again" in caplog.text


def test_pruning_keeps_the_counts(store: SqliteStore) -> None:
    old = [ev("u1", "IC7", i, T0, received=T0) for i in range(1, 7)]
    new = [ev("u1", "IC7", 100, T0 + timedelta(days=100), received=T0 + timedelta(days=100))]
    store.record_events(old + new)
    assert store.prune_events(T0 + timedelta(days=1)) == 6
    assert store.totals(Scope.all(), T0, T0 + timedelta(days=101)).total == 7  # counts intact
    assert [e.seq for e in store.recent_events(Scope.all())] == [100]
    assert store.prune_events(T0 + timedelta(days=1)) == 0


def test_half_open_range_and_empty_buckets(store: SqliteStore) -> None:
    store.record_events([ev("u1", "IC7", 1, T0), ev("u1", "IC7", 2, T0 + timedelta(minutes=10))])
    assert store.totals(Scope.all(), T0, T0 + timedelta(minutes=10)).total == 1
    assert store.totals(Scope.all(), T0 + timedelta(minutes=10), T0 + timedelta(minutes=11)).total == 1
    series = store.timeseries(Scope.all(), T0, T0 + timedelta(minutes=15), 300)
    assert [b.counts.total for b in series] == [1, 0, 1]
    with pytest.raises(InvalidRecord, match="multiple of 60"):
        store.timeseries(Scope.all(), T0, T0 + timedelta(hours=1), 90)
    with pytest.raises(InvalidRecord, match="buckets"):
        store.timeseries(Scope.all(), T0, T0 + timedelta(days=30), 60)


def test_unit_clock_ahead_or_unset_counts_at_receipt(store: SqliteStore) -> None:
    received = T0
    store.record_events([
        ev("u1", "IC7", 1, T0 + timedelta(days=2), received=received),  # clock far ahead
        ev("u1", "IC7", 2, datetime(1970, 1, 1, tzinfo=timezone.utc), received=received),  # never set
        ev("u1", "IC7", 3, T0 - timedelta(hours=3), received=received),  # backlog: its own time
    ])
    assert store.totals(Scope.all(), T0, T0 + timedelta(minutes=1)).total == 2
    assert store.totals(Scope.all(), T0 - timedelta(hours=3), T0 - timedelta(hours=2)).total == 1


def test_scope_filters_every_query(store: SqliteStore) -> None:
    store.record_events([ev("u1", "IC7", 1, T0), ev("u3", "HN2", 1, T0, "yellow", "partial"),
                         ev("u4", "LC1", 1, T0, "red", "signature"), ev("u4", "LC1", 2, T0, "red", "revoked")])
    span = (T0, T0 + timedelta(minutes=1))
    hanoi, laocai, district = Scope.of(provinces=["01"]), Scope.of(provinces=["10"]), Scope.of(districts=["018"])
    assert store.totals(hanoi, *span).total == 2
    assert store.totals(laocai, *span).red == 2
    assert store.totals(district, *span).yellow == 1
    assert store.totals(Scope.of(checkpoints=["IC7"]), *span).green == 1
    assert store.totals(Scope.none(), *span).total == 0
    by_province = store.totals_by(Scope.all(), *span, "province")
    assert [(g.key, g.counts.total) for g in by_province] == [("01", 2), ("10", 2)]
    by_checkpoint = store.totals_by(hanoi, *span, "checkpoint")
    assert [(g.key, g.label) for g in by_checkpoint] == [("HN2", "Hà Nội 2"), ("IC7", "IC7 Nội Bài")]
    assert [g.key for g in store.totals_by(laocai, *span, "district")] == ["080"]
    assert {r.reason for r in store.reasons(laocai, *span)} == {"signature", "revoked"}
    assert {e.checkpoint for e in store.recent_events(hanoi)} == {"IC7", "HN2"}
    assert store.recent_events(hanoi, checkpoint="LC1") == []  # asking for it by name does not help
    assert [c.id for c in store.list_checkpoints(laocai)] == ["LC1"]
    assert sorted(d.id for d in store.list_devices(hanoi)) == ["u1", "u2", "u3"]
    with pytest.raises(InvalidRecord):
        store.totals_by(Scope.all(), *span, "country")


def test_events_refuse_anything_but_the_contract_fields() -> None:
    good = dict(device="u1", checkpoint="IC7", seq=1, ts=T0, result="green", reason="partial",
                policy="vn-2021", trust_version=1, received_at=T0)
    Event(**good)  # type: ignore[arg-type]  # mixed values: the checks are what is tested
    for change in ({"result": "blue"}, {"reason": "Nguyễn Văn A"}, {"reason": "x" * 65}, {"policy": "VN 2021"},
                   {"seq": -1}, {"seq": True}, {"ts": datetime(2026, 1, 1)}, {"device": "a/b"},
                   {"checkpoint": "#"}, {"trust_version": "7"}):
        with pytest.raises(InvalidRecord) as e:
            Event(**{**good, **change})  # type: ignore[arg-type]  # wrong values on purpose
        assert "Nguy" not in str(e.value)  # refused text is never echoed back (it may be a name)
    with pytest.raises(InvalidRecord):
        SqliteStore.record_events(None, [{"seq": 1}])  # type: ignore[arg-type, list-item]  # wrong types on purpose


# -- registry and status -------------------------------------------------------------------

def test_registry_and_status(store: SqliteStore) -> None:
    with pytest.raises(UnknownCheckpoint):
        store.add_device("u9", "NOPE")
    with pytest.raises(InvalidRecord):
        store.add_device("bad id", "IC7")
    device = store.get_device("u1")
    assert device is not None and device.state == "unknown" and not device.online
    assert (device.province, device.district, device.checkpoint_name) == ("01", "017", "IC7 Nội Bài")
    marker = store.change_marker()
    status = StatusUpdate("online", software="0.1.0", trust_version=7, trust_age_s=60.0, backlog=0,
                          clock="ok", fps=15.0, temperature_c=48.5, uptime_s=10.0)
    assert store.record_status("u1", status, T0)
    assert not store.record_status("ghost", status, T0)
    assert store.record_status("u1", StatusUpdate("offline"), T0 + timedelta(minutes=5))
    assert store.change_marker() == marker + 2
    device = store.get_device("u1")
    assert device is not None
    assert device.state == "offline" and device.status_at == T0 + timedelta(minutes=5)
    assert (device.software, device.trust_version, device.fps) == ("0.1.0", 7, 15.0)  # last known kept
    assert device.last_seen == T0
    store.record_events([ev("u1", "IC7", 1, T0, received=T0 + timedelta(minutes=9))])
    assert store.get_device("u1").last_seen == T0 + timedelta(minutes=9)
    # Moving a unit and removing it.
    assert store.add_device("u1", "LC1").province == "10"
    assert store.remove_device("u1") and not store.remove_device("u1")
    assert store.get_device("u1") is None
    assert store.totals(Scope.all(), T0, T0 + timedelta(minutes=1)).total == 1  # its counts stay


# -- users ---------------------------------------------------------------------------------

def test_users(store: SqliteStore) -> None:
    scope = Scope.of(provinces=["01"], checkpoints=["LC1"])
    user = store.create_user("hanoi", "pbkdf2:sha256$x", "supervisor", scope)
    assert user.language == "vi" and user.scope == scope
    assert store.get_user("hanoi") == user
    admin = store.create_user("root", "hash", "admin", Scope.none(), language="en")
    assert admin.scope == Scope.all()  # an admin sees everything whatever was passed
    with pytest.raises(DuplicateUser):
        store.create_user("hanoi", "h", "viewer", scope)
    with pytest.raises(InvalidRecord, match="role"):
        store.create_user("x", "h", "god", scope)
    with pytest.raises(InvalidRecord, match="username"):
        store.create_user("a b", "h", "viewer", scope)
    store.set_user_language("hanoi", "en")
    assert store.get_user("hanoi").language == "en"
    with pytest.raises(UnknownUser):
        store.set_user_language("nobody", "en")
    with pytest.raises(InvalidRecord):
        store.set_user_language("hanoi", "fr")
    assert [u.username for u in store.list_users()] == ["hanoi", "root"]
    assert store.get_user("nobody") is None


def test_login_failures_window(store: SqliteStore) -> None:
    now = T0
    for i in range(3):
        store.record_login_failure("hanoi", "10.0.0.1", at=now - timedelta(minutes=i))
    store.record_login_failure("other", "10.0.0.1", at=now)
    store.record_login_failure("hanoi", "10.0.0.2", at=now - timedelta(hours=2))
    window = timedelta(minutes=15)
    assert store.login_failures("hanoi", "10.0.0.1", window, now) == 4  # by ip: 4, by user: 3
    assert store.login_failures("hanoi", "10.0.0.9", window, now) == 3
    assert store.login_failures("hanoi", "10.0.0.9", timedelta(hours=3), now) == 4
    store.clear_login_failures("hanoi", "10.0.0.1")
    assert store.login_failures("hanoi", "10.0.0.1", window, now) == 1


# -- trust ---------------------------------------------------------------------------------

def test_trust_bundles(store: SqliteStore) -> None:
    assert store.latest_trust_bundle() is None
    store.save_trust_bundle(3, b"three", T0, T0 + timedelta(days=1), "root")
    store.save_trust_bundle(5, b"five", None, None)
    latest = store.latest_trust_bundle()
    assert latest is not None and (latest.version, latest.raw, latest.issued_at) == (5, b"five", None)
    with pytest.raises(InvalidRecord, match="already stored"):
        store.save_trust_bundle(5, b"again", None, None)


# -- concurrency ---------------------------------------------------------------------------

def test_ingest_writer_and_web_readers_share_the_store(store: Store, store_target: str) -> None:
    """Two writers (ingest workers) and a reader (a web process), each with its own store, as
    separate processes would have. The writers' batches overlap: every seq reaches both of them,
    as a redelivery to two workers does, and is stored and counted once."""
    reader = open_store(store_target)
    errors: list[BaseException] = []
    seen_markers: list[int] = []
    stored: list[int] = []

    def write(order: int) -> None:
        writer = open_store(store_target)
        try:
            for start in range(0, 2000, 200)[::order]:
                batch = [ev(d, cp, s, T0 + timedelta(seconds=s % 50), "green" if s % 3 else "red")
                         for d, cp in (("u1", "IC7"), ("u4", "LC1")) for s in range(start, start + 200)]
                stored.append(writer.record_events(batch))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which fails the test
            errors.append(e)
        finally:
            writer.close()

    marker = reader.change_marker()
    threads = [threading.Thread(target=write, args=(order,)) for order in (1, -1)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen_markers.append(reader.change_marker())
        reader.totals(Scope.all(), T0, T0 + timedelta(minutes=1))
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(stored) == 4000  # each event new for exactly one writer
    span = (T0, T0 + timedelta(minutes=1))
    totals = reader.totals(Scope.all(), *span)
    assert (totals.total, totals.red) == (4000, 2 * len([s for s in range(2000) if s % 3 == 0]))
    # Every roll-up agrees: the day's, the hour's, the minutes' and the per-checkpoint ones.
    assert reader.totals(Scope.all(), T0 - timedelta(hours=7), T0 + timedelta(hours=17)).total == 4000
    assert sum(b.counts.total for b in reader.timeseries(Scope.all(), T0, T0 + timedelta(hours=1), 60)) == 4000
    assert [(g.key, g.counts.total) for g in reader.totals_by(Scope.of(provinces=["01", "10"]), *span,
                                                              "checkpoint")] == [("IC7", 2000), ("LC1", 2000)]
    assert reader.change_marker() == marker + 4000
    assert seen_markers == sorted(seen_markers)
    reader.close()


def test_ended_sessions_are_shared_where_the_store_keeps_them(store: Store, store_target: str) -> None:
    if not store.shared_sessions:
        with pytest.raises(NotImplementedError):
            store.session_ended("x")
        return
    other = open_store(store_target)  # another web process
    assert not other.session_ended("sid-1")
    store.end_session("sid-1", T0 + timedelta(days=3650))
    store.end_session("sid-old", T0 - timedelta(days=1))  # already expired: forgotten
    assert other.session_ended("sid-1") and not other.session_ended("sid-2")
    other.end_session("sid-2", datetime.now(timezone.utc) + timedelta(hours=1))
    assert not store.session_ended("sid-old") and store.session_ended("sid-2")
    other.close()


# -- Scope -----------------------------------------------------------------------------------

def test_scope_parse_allows_and_sql() -> None:
    scope = Scope.parse(["province:01", " district:080 ", "checkpoint:IC7"])
    assert scope.entries() == ["province:01", "district:080", "checkpoint:IC7"]
    assert Scope.parse(scope.entries()) == scope == Scope.from_json(scope.to_json())
    assert scope.allows("01", "017", "HN2") and scope.allows("10", "080", "LC1")
    assert scope.allows("99", "999", "IC7") and not scope.allows("10", "081", "LC2")
    assert Scope.parse(["all"]).allows("99", None, None)
    assert Scope.none().is_empty and not Scope.none().allows("01", "017", "IC7")
    where, params = scope.sql("p", "d", "c")
    assert where == "(p IN (?) OR d IN (?) OR c IN (?))" and params == ["01", "080", "IC7"]
    assert Scope.none().sql() == ("0 = 1", [])
    for bad in (["planet:earth"], ["province:"], ["01"]):
        with pytest.raises(ScopeError):
            Scope.parse(bad)


# -- central config --------------------------------------------------------------------------

def test_config_defaults_follow_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config({"data_dir": str(tmp_path)})
    assert cfg.database == str(tmp_path / "chot.db") and cfg.timezone == "Asia/Ho_Chi_Minh"
    assert cfg.broker.password_file == tmp_path / "mosquitto" / "passwd"
    assert cfg.broker.template.is_file()  # the shipped template is found
    assert cfg.mqtt.ingest.resolved_password() is None
    monkeypatch.setenv("CHOT_INGEST_MQTT_PASSWORD", "from-env")
    assert cfg.mqtt.ingest.resolved_password() == "from-env"


@pytest.mark.parametrize(("data", "where"), [
    ({"mqtt": {"port": 0}}, "mqtt"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"broker": {"tls_port": 8883}}, "broker"),
    ({"web": {"colour": "red"}}, "web.colour"),
    ({"alarms": {"offline_after_s": "soon"}}, "alarms.offline_after_s"),
])
def test_config_errors_name_the_key(data: dict, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert where in str(e.value)


# -- CLI: accounts -----------------------------------------------------------------------------

def test_cli_create_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from chot.cli import main
    from dashboard.web.auth import MIN_PASSWORD_LENGTH

    conf = tmp_path / "central.toml"
    conf.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    runner = CliRunner()
    base = ["dashboard", "-c", str(conf), "create-user"]
    monkeypatch.setenv("CHOT_NEW_USER_PASSWORD", "a-long-enough-password")
    result = runner.invoke(main, [*base, "hanoi", "--role", "supervisor", "--scope", "province:01",
                                  "--scope", "checkpoint:LC1", "--language", "en"])
    assert result.exit_code == 0, result.output
    assert "province:01" in result.output and "a-long-enough-password" not in result.output
    store = SqliteStore(tmp_path / "data" / "chot.db")
    user = store.get_user("hanoi")
    assert user is not None and user.scope == Scope.of(provinces=["01"], checkpoints=["LC1"])
    assert user.language == "en" and "a-long-enough-password" not in user.password_hash
    store.close()
    for args, words in (
        (["hanoi", "--role", "viewer", "--scope", "all"], "already exists"),
        (["x", "--role", "viewer"], "at least one --scope"),
        (["x", "--role", "viewer", "--scope", "planet:mars"], "not 'all' or"),
        (["x y", "--role", "admin"], "username"),
    ):
        result = runner.invoke(main, [*base, *args])
        assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    monkeypatch.delenv("CHOT_NEW_USER_PASSWORD")
    short = "s" * (MIN_PASSWORD_LENGTH - 1)
    result = runner.invoke(main, [*base, "y", "--role", "admin"], input=f"{short}\n{short}\n")
    assert result.exit_code != 0 and "at least" in result.output
    result = runner.invoke(main, [*base, "y", "--role", "admin"], input="correct-horse-battery\n" * 2)
    assert result.exit_code == 0, result.output


def test_cli_reports_config_errors_by_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chot.cli import main

    conf = tmp_path / "central.toml"
    conf.write_text('[mqtt]\nport = "high"\n')
    result = CliRunner().invoke(main, ["dashboard", "-c", str(conf), "check-config"])
    assert result.exit_code != 0 and "mqtt.port" in result.output and "Traceback" not in result.output


# -- officer decisions on every backend --------------------------------------------------------

def test_decisions_officers_and_rosters(store: Store) -> None:
    decision: dict[str, Any] = dict(outcome="let_through", officer="CA-0142", follows_seq=1, follows_result="red",
                    follows_reason="too_soon_after_dose")
    batch = [ev("u1", "IC7", 1, T0, "red", "too_soon_after_dose"),
             Event("u1", "IC7", 2, T0, "decision", "paper_proof", "vn-2021", 3, T0, **decision),
             Event("u1", "IC7", 3, T0, "manual", "paper_proof", "vn-2021", 3, T0, outcome="turned_back",
                   officer="CA-0142")]
    assert store.record_events(batch) == 3 and store.record_events(batch[1:]) == 0  # resent: once
    span = (T0, T0 + timedelta(minutes=1))
    totals = store.totals(Scope.all(), *span)
    assert (totals.red, totals.decision, totals.manual, totals.total) == (1, 1, 1, 1)
    assert [r.reason for r in store.reasons(Scope.all(), *span)] == ["too_soon_after_dose"]  # verdicts only
    rows = store.decision_counts(Scope.of(provinces=["01"]), *span)
    assert [(r.officer, r.outcome, r.follows_result, r.count) for r in rows] == [
        ("CA-0142", "let_through", "red", 1), ("CA-0142", "turned_back", "", 1)]
    assert store.decision_counts(Scope.of(provinces=["10"]), *span) == []
    assert store.recent_events(Scope.all(), limit=1)[0].officer == "CA-0142"
    store.upsert_officer("IC7", "CA-0142", "Nguyễn Văn An", "police", '{"scrypt": "x"}')
    store.upsert_officer("IC7", "CA-0142", "Nguyễn Văn Ân", "police", '{"scrypt": "y"}')  # changed
    with pytest.raises(UnknownCheckpoint):
        store.upsert_officer("NOPE", "CA-1", "A", "police", '{"scrypt": "x"}')
    assert [(o.id, o.name) for o in store.list_officers(Scope.of(provinces=["01"]))] == [("CA-0142", "Nguyễn Văn Ân")]
    assert store.list_officers(Scope.of(provinces=["10"])) == []
    store.save_roster("IC7", 1, b"one")
    store.save_roster("IC7", 2, b"two")
    latest = store.latest_roster("IC7")
    assert latest is not None and (latest.version, latest.raw) == (2, b"two") and store.latest_roster("LC1") is None
    assert store.remove_officer("IC7", "CA-0142") and not store.remove_officer("IC7", "CA-0142")


def test_audit_log_and_account_changes(store: Store) -> None:
    first = store.record_audit("root", "user_created", "hanoi", province="01", at=T0)
    second = store.record_audit("root", "trust_uploaded", "v7", at=T0)
    assert second.id > first.id
    assert [e.action for e in store.audit_log(Scope.all())] == ["trust_uploaded", "user_created"]
    assert [e.target for e in store.audit_log(Scope.of(provinces=["01"]))] == ["hanoi"]
    assert store.audit_log(Scope.of(provinces=["10"])) == []
    with pytest.raises(InvalidRecord):
        store.record_audit("root", "coffee", "x")
    store.create_user("hanoi", "h", "viewer", Scope.of(provinces=["01"]))
    assert store.set_user_access("hanoi", "admin", Scope.none()).scope == Scope.all()
    with pytest.raises(UnknownUser):
        store.set_user_access("nobody", "viewer", Scope.none())
    assert store.delete_user("hanoi") and not store.delete_user("hanoi")
