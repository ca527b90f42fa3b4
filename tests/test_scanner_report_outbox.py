"""Outbox: durable, ordered, seq never reused, privacy by schema, corruption kept aside."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone

import pytest

from scanner.outbox import Outbox, OutboxCorruptError, OutboxError, OutboxFieldError

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


def fields(result: str = "green", reason: str = "complete_series") -> dict:
    return {"result": result, "reason": reason, "policy": "vn-2021", "trust_version": 7}


def test_record_pending_mark_sent_in_seq_order(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    seqs = [box.record(fields(), T0 + timedelta(seconds=i)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [e.seq for e in box.pending(3)] == [1, 2, 3]
    box.mark_sent(2, at=1000.0)
    box.mark_sent(2, at=1000.0)  # idempotent: a late duplicate PUBACK is harmless
    assert [e.seq for e in box.pending(10)] == [1, 3, 4, 5]
    # Handed to the broker is not stored by the central: still in the backlog, resent when due.
    assert box.backlog() == 5 and box.unsent() == 4
    assert [e.seq for e in box.pending(10, resend_before=999.0)] == [1, 3, 4, 5]
    assert [e.seq for e in box.pending(10, resend_before=1001.0)] == [1, 2, 3, 4, 5]
    assert box.acknowledge([(2, 2)]) == 1
    assert box.backlog() == 4
    event = box.pending(1)[0]
    assert event.payload() == (b'{"seq":1,"ts":"2026-11-25T10:00:00.000000Z","result":"green",'
                               b'"reason":"complete_series","policy":"vn-2021","trust_version":7}')
    box.close()


def test_seq_survives_restart_with_empty_queue(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    for _ in range(3):
        box.mark_sent(box.record(fields(), T0))
    assert box.acknowledge([(1, 3)]) == 3
    assert box.backlog() == 0
    box.close()
    box = Outbox(path)
    assert box.record(fields(), T0) == 4
    box.close()


def test_restored_older_file_never_reuses_a_seq(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.record(fields(), T0)
    box.close()
    backup = (tmp_path / "backup.sqlite")
    backup.write_bytes(path.read_bytes())
    box = Outbox(path)
    issued = [box.record(fields(), T0) for _ in range(20)]
    box.close()
    # Restore the old file (and drop its WAL as a file-level restore would).
    for side in ("-wal", "-shm"):
        (tmp_path / f"outbox.sqlite{side}").unlink(missing_ok=True)
    path.write_bytes(backup.read_bytes())
    box = Outbox(path)
    assert box.record(fields(), T0) > max(issued)
    box.close()


def test_counts_today_per_result(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    for result in ["green", "green", "red", "yellow", "green"]:
        seq = box.record(fields(result), T0)
        box.mark_sent(seq)  # counts do not depend on the queue
    day = T0.astimezone().date()
    assert box.counts_today(day) == {"green": 3, "yellow": 1, "red": 1}
    assert box.counts_today(day + timedelta(days=1)) == {"green": 0, "yellow": 0, "red": 0}
    assert box.counts_today(date(2020, 1, 1)) == {"green": 0, "yellow": 0, "red": 0}
    box.close()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"family_name": "NGUYEN"}, "family_name"),
        ({"dob": "1990-01-01"}, "dob"),
        ({"uci": "URN:UVCI:01:VN:123"}, "uci"),
        ({"payload": "HC1:..."}, "payload"),
        ({"result": "blue"}, "result"),
        ({"reason": "Nguyen Van A, born 1990"}, "reason"),
        ({"policy": "x" * 65}, "policy"),
        ({"policy": "Nguyen Van A"}, "policy"),
        ({"trust_version": "7"}, "trust_version"),
    ],
)
def test_refuses_fields_outside_the_schema(tmp_path, bad, field):
    box = Outbox(tmp_path / "outbox.sqlite")
    with pytest.raises(OutboxFieldError) as err:
        box.record({**fields(), **bad}, T0)
    assert err.value.field == field
    for value in bad.values():  # the error names the field, never the (maybe personal) value
        assert str(value) not in str(err.value)
    assert box.backlog() == 0
    box.close()
    text = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for value in bad.values():
        if len(str(value)) > 3:
            assert str(value).encode() not in text


def test_verdict_without_policy_is_kept(tmp_path):
    """verify() leaves policy None when it has none; such a verdict must still be counted."""
    box = Outbox(tmp_path / "outbox.sqlite")
    box.record({"result": "red", "reason": "prefix", "policy": None, "trust_version": None}, T0)
    assert b'"policy":null' in box.pending(1)[0].payload()
    box.close()


def test_naive_timestamp_refused(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    with pytest.raises(OutboxFieldError, match="timezone"):
        box.record(fields(), datetime(2026, 11, 25, 10, 0))
    box.close()


def test_corrupt_file_is_moved_aside_with_a_reason(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    for _ in range(10):
        box.record(fields(), T0)
    box.close()
    data = bytearray(path.read_bytes())
    data[0:16] = b"garbage garbage!"  # destroy the SQLite header
    path.write_bytes(bytes(data))
    with pytest.raises(OutboxCorruptError) as err:
        Outbox(path)
    moved = err.value.moved_to
    assert moved is not None and moved.exists() and moved.read_bytes() == bytes(data)
    assert "unusable" in str(err.value) and str(moved) in str(err.value)
    # The next start gets a fresh outbox that continues after the lost file's seqs.
    box = Outbox(path)
    assert box.backlog() == 0
    assert box.record(fields(), T0) > 10
    box.close()


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "outbox.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxCorruptError, match="not an outbox"):
        Outbox(path)
    assert not path.exists()


def test_locked_file_is_refused_but_not_moved(tmp_path):
    path = tmp_path / "outbox.sqlite"
    Outbox(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OutboxError, match="cannot open") as err:
            Outbox(path, busy_timeout=0.2)
        assert not isinstance(err.value, OutboxCorruptError)
        assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_wal_and_full_sync(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    assert box.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()


def test_every_real_verdict_fits_the_event_schema(tmp_path, ministry):
    """All verdicts the verifier gives (every sample, every policy) are accepted, and carry nothing personal."""
    from verifier import verify
    from verifier.policy import builtin_policy

    now = datetime.now(timezone.utc)
    store = ministry.trust_store()
    box = Outbox(tmp_path / "outbox.sqlite")
    samples = ministry.samples(now)
    for name in ("vn-2021", "workplace", "eu-validity"):
        for sample in samples:
            box.record(verify(sample.payload, store, now, builtin_policy(name)).event_fields(), now)
    assert box.backlog() == 3 * len(samples)
    box.close()
    disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for sample in samples:
        if sample.issued is not None:
            person = sample.issued.person
            for secret in (sample.issued.uci, person.family_name, person.given_name, person.dob):
                assert secret.encode() not in disk
