"""End-to-end acknowledgement: a unit keeps each event until the central's ingest has stored it.

Real parts throughout: the shipped broker config (accounts, ACL) on a real Mosquitto, the real
ingest and SQLite store, the unit's real outbox and MQTT link. The broker is SIGKILLed as a
power cut at the central would; the events it had acknowledged but not delivered still arrive,
exactly once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from scanner.config import MqttConfig
from protocol.ack import AckError, encode_acks, parse_ack
from scanner.mqtt import MqttLink
from scanner.outbox import Outbox
from tests.support.broker import Mosquitto
from tests.support.central import Central, start_central
from tests.test_broker_acl import connect
from tests.test_scanner_report_support import event_fields, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]
NOW = datetime.now(timezone.utc)
DAY = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
ACK = "chot/v1/ic7/unit-1/ack"


def timed_saves(conf_text: str) -> str:
    """The shipped config, but saving only every hour, as Mosquitto does by default: a SIGKILL
    then loses whatever the broker had acknowledged and queued since its last save."""
    text = conf_text.replace("autosave_interval 5\n", "autosave_interval 3600\n")
    assert "autosave_interval 3600" in text and "autosave_on_changes false" in text
    return text


@dataclass
class Rig:
    """A central (broker, store) with unit-1 and unit-2 registered at checkpoint ic7."""

    central: Central
    passwords: dict[str, str]
    tmp_path: Path
    cleanups: list[Callable[[], object]]

    def ingest(self) -> MqttIngest:
        ingest = MqttIngest(self.central.store, self.central.config)
        ingest.start()
        self.cleanups.append(ingest.stop)
        return ingest

    def outbox(self, n: int = 0) -> Outbox:
        box = Outbox(self.tmp_path / "unit-1" / "outbox.sqlite")
        self.cleanups.append(box.close)
        for i in range(n):
            box.record(event_fields(i), NOW)
        return box

    def link(self, outbox: Outbox, **config: Any) -> MqttLink:
        cfg = MqttConfig(host="127.0.0.1", port=self.central.port, password=self.passwords["unit-1"],
                         password_credential="none", password_env="CHOT_TEST_NO_SUCH_VAR",
                         keepalive=10, **{"max_inflight": 5, **config})
        link = MqttLink(cfg, "unit-1", "ic7", outbox, lambda: {"backlog": outbox.backlog()},
                        lambda data: None, backoff_min=0.1, backoff_max=0.3)
        link.start()
        self.cleanups.append(link.stop)
        return link

    def stored(self) -> int:
        return self.central.store.totals(Scope.all(), *DAY).total


@pytest.fixture
def rig(tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto]) -> Iterator[Rig]:
    def factory(conf_text: str, **kwargs: Any) -> Mosquitto:
        return mosquitto_factory(conf_text=timed_saves(conf_text), **kwargs)

    central = start_central(tmp_path, factory)
    passwords = {d: central.add_device(d, "ic7").password for d in ("unit-1", "unit-2")}
    cleanups: list[Callable[[], object]] = []
    yield Rig(central, passwords, tmp_path, cleanups)
    for cleanup in reversed(cleanups):
        cleanup()
    central.store.close()


class Listener:
    """A raw MQTT client logged in as someone, keeping what it receives."""

    def __init__(self, port: int, user: str, password: str, topics: list[str] = ()) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self.client, outcome = connect(port, user, password, client_id=user)
        assert outcome == "ok", outcome
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = self._on_subscribe
        if topics:
            self.client.subscribe([(t, 1) for t in topics])
            assert self._subscribed.wait(5)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: list[Any], props: Any) -> None:
        self._subscribed.set()

    def acks(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in list(self.received) if t.endswith("/ack")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_events_the_broker_lost_in_a_sigkill_are_resent_and_stored_once(rig: Rig) -> None:
    # The ingest's persistent session exists and is on disk (a clean restart saves it) ...
    rig.ingest().stop()
    rig.central.broker.restart()
    # ... and the ingest is away while the unit reports: the broker queues for it.
    outbox = rig.outbox(60)
    link = rig.link(outbox)
    wait_until(lambda: outbox.unsent() == 0, 20, "the broker to take all 60 events")
    assert link.sent == 60 and outbox.backlog() == 60  # PUBACKed, not yet stored: all kept
    link.stop()

    rig.central.broker.kill()  # a power cut at the central: the queue since the last save is gone
    rig.central.broker.start()
    ingest = rig.ingest()
    assert not wait_until_true(lambda: ingest.stats.stored > 0, 1.5)
    assert rig.stored() == 0, "the broker kept its queue: this test would prove nothing"

    # The unit reconnects and sends again what the central never acknowledged.
    link = rig.link(outbox)
    wait_until(lambda: outbox.backlog() == 0, 30, "the central to acknowledge all 60")
    assert ingest.wait_idle(10)
    assert rig.stored() == 60 and ingest.stats.stored == 60 and not ingest.stats.rejected
    assert link.resent == 60 and link.acked == 60
    totals = rig.central.store.totals(Scope.all(), *DAY)
    assert (totals.green, totals.yellow, totals.red) == (20, 20, 20)


def wait_until_true(check: Callable[[], bool], timeout: float) -> bool:
    """True as soon as `check` is; False after `timeout` (for things that must not happen)."""
    try:
        wait_until(check, timeout, "")
    except AssertionError:
        return False
    return True


def test_link_kept_through_the_kill_resends_one_window_until_the_central_answers(rig: Rig) -> None:
    rig.ingest().stop()
    rig.central.broker.restart()
    outbox = rig.outbox(40)
    link = rig.link(outbox, central_ack_timeout_s=30.0)
    wait_until(lambda: outbox.unsent() == 0, 20, "the broker to take all 40 events")
    rig.central.broker.kill()
    rig.central.broker.start()
    wait_until(lambda: link.connects >= 2, 20, "the unit to reconnect")
    # No ingest yet: the unit probes with one window, not its whole unacknowledged backlog.
    wait_until(lambda: link.resent >= 5, 10, "the first resend window")
    assert not wait_until_true(lambda: link.resent > 5, 1.5)
    ingest = rig.ingest()  # its answer to the probe lets the rest go at once, not after 30 s
    wait_until(lambda: outbox.backlog() == 0, 20, "the central to acknowledge all 40")
    assert ingest.wait_idle(10)
    assert rig.stored() == 40 and ingest.stats.stored == 40
    assert link.resent == 40 and link.connects == 2


def test_an_event_resent_is_acknowledged_again(rig: Rig) -> None:
    ingest = rig.ingest()
    unit = Listener(rig.central.port, "unit-1", rig.passwords["unit-1"], [ACK])
    try:
        event = json.dumps({"seq": 7, "ts": NOW.isoformat(), **event_fields(0)})
        for _ in range(2):  # a unit that missed the first ack sends the event again
            unit.client.publish("chot/v1/ic7/unit-1/event", event, qos=1).wait_for_publish(5)
            wait_until(lambda: ingest.stats.received == len(unit.acks()) + 1, 10, "the event")
            wait_until(lambda: ingest.stats.received == len(unit.acks()), 10, "its ack")
        assert unit.acks() == [{"seqs": [[7, 7]]}, {"seqs": [[7, 7]]}]
        assert ingest.stats.stored == 1 and ingest.stats.duplicates == 1 and rig.stored() == 1
    finally:
        unit.close()


def test_acks_reach_only_their_unit_and_only_the_ingest_may_send_them(rig: Rig) -> None:
    rig.ingest().stop()  # its session queues the events while it is away
    outbox = rig.outbox(10)  # no ingest: the unit keeps all 10 waiting for an ack
    link = rig.link(outbox)
    wait_until(lambda: outbox.unsent() == 0 and link.connected, 20, "the broker to take all 10")
    forged = json.dumps({"seqs": [[1, 10]]})
    for device in ("unit-2", "unit-1"):  # another unit, and the unit itself: neither may ack
        forger = Listener(rig.central.port, device, rig.passwords[device])
        forger.client.publish(ACK, forged, qos=1)
        forger.close()
    # unit-2 may not even listen to unit-1's acks (Mosquitto grants the subscription, then
    # delivers nothing the ACL does not allow).
    spy = Listener(rig.central.port, "unit-2", rig.passwords["unit-2"], [ACK, "chot/v1/+/+/ack"])
    try:
        assert not wait_until_true(lambda: outbox.backlog() < 10, 1.5), "a forged ack was obeyed"
        rig.ingest()  # the real one is obeyed
        wait_until(lambda: outbox.backlog() == 0, 20, "the ingest's ack")
        assert spy.received == []
    finally:
        spy.close()


MALFORMED = [
    b"not json", b"\xff\xfe", b"[]", b'{"seqs": "all"}', b'{"seqs": [[5, 1]]}', b'{"seqs": [[0, 3]]}',
    b'{"seqs": [[true, 3]]}', b'{"seqs": [[1, 2, 3]]}', b'{"seqs": [[1.0, 2]]}', b'{"ack": [[1, 2]]}',
    b'{"seqs": [[1, 99999999999999999999999]]}', b"[" * 100000, b'{"seqs": [' + b"[1, 1]," * 20000 + b"[1, 1]]}",
]


@pytest.mark.parametrize("payload", MALFORMED, ids=range(len(MALFORMED)))
def test_parse_ack_refuses_malformed_acks_with_a_reason(payload: bytes) -> None:
    with pytest.raises(AckError) as err:
        parse_ack(payload)
    assert err.value.reason


def test_parse_ack_reads_what_the_ingest_writes() -> None:
    seqs = [1, 2, 3, 5, 9, 10] + list(range(100, 2100, 2))
    ranges = [r for payload in encode_acks(seqs) for r in parse_ack(payload)]
    assert sorted({s for first, last in ranges for s in range(first, last + 1)}) == sorted(seqs)
    assert ranges[:3] == [(1, 3), (5, 5), (9, 10)]
    assert all(len(p) < 65536 for p in encode_acks(seqs))


def test_a_malformed_ack_is_ignored_with_a_log_line(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="scanner.mqtt")
    outbox = rig.outbox(6)
    link = rig.link(outbox)
    wait_until(lambda: outbox.unsent() == 0 and link.connected, 20, "the broker to take all 6")
    ingest_account = rig.central.config.mqtt.ingest
    central = Listener(rig.central.port, ingest_account.username, ingest_account.resolved_password() or "")
    try:
        for payload in MALFORMED[:11]:
            central.client.publish(ACK, payload, qos=1).wait_for_publish(5)
        wait_until(lambda: caplog.text.count("ignored a message on " + ACK) == 11, 10, "a log line each")
        assert outbox.backlog() == 6 and link.connected and link.connects == 1
        central.client.publish(ACK, b'{"seqs": [[2, 3], [6, 40]]}', qos=1).wait_for_publish(5)
        wait_until(lambda: outbox.backlog() == 3, 10, "the well-formed ack")
        assert [e.seq for e in outbox.pending(10, resend_before=float("inf"))] == [1, 4, 5]
        assert link.acked == 3
    finally:
        central.close()


def test_an_outbox_from_before_central_acks_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    conn = sqlite3.connect(path)  # the schema units wrote when PUBACK deleted an event
    conn.executescript("""
        CREATE TABLE events (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, result TEXT NOT NULL,
                             reason TEXT NOT NULL, policy TEXT, trust_version INTEGER);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER);
        CREATE TABLE counts (day TEXT, result TEXT, n INTEGER, PRIMARY KEY (day, result));
        INSERT INTO meta VALUES ('next_seq', 13);
        INSERT INTO counts VALUES ('2026-11-25', 'green', 12);
    """)
    conn.executemany("INSERT INTO events VALUES (?, '2026-11-25T10:00:00.000000Z', 'green', "
                     "'complete_series', 'vn-2021', 7)", [(s,) for s in range(8, 13)])
    conn.commit()
    conn.close()
    box = Outbox(path)
    try:
        assert box.backlog() == 5 and box.unsent() == 5  # every old row kept, to be sent
        assert [e.seq for e in box.pending(10)] == [8, 9, 10, 11, 12]
        assert box.record(event_fields(0), NOW) == 13
        box.mark_sent(8)
        assert box.acknowledge([(8, 9)]) == 2 and box.backlog() == 4
    finally:
        box.close()
    box = Outbox(path)  # opening the upgraded file again changes nothing
    try:
        assert box.backlog() == 4 and box.unsent() == 4
    finally:
        box.close()


def test_events_no_ingest_received_go_again_after_the_ack_timeout(rig: Rig) -> None:
    """Published before the ingest's session first existed, the broker drops them (nobody is
    subscribed); the unit still has them and sends them again once the timeout passes."""
    outbox = rig.outbox(12)
    link = rig.link(outbox, central_ack_timeout_s=1.0)
    wait_until(lambda: outbox.unsent() == 0, 20, "the broker to take all 12")
    ingest = rig.ingest()
    wait_until(lambda: outbox.backlog() == 0, 20, "the resent events to be acknowledged")
    assert ingest.wait_idle(10)
    assert rig.stored() == 12 and link.connects == 1 and link.resent >= 12
