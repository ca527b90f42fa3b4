"""The real ingest against a real Mosquitto started from the shipped config: exactly-once counts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from dashboard.broker import BrokerError
from dashboard.ingest import MqttIngest, Rejected, parse_event, parse_status
from dashboard.scope import Scope
from dashboard.store import Event, Store
from tests.support.central import Central, central, start_central, wait_until  # noqa: F401 - central is a fixture

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

NOW = datetime.now(timezone.utc)
DAY = (NOW - timedelta(days=1), NOW + timedelta(days=1))


def event_payload(seq: int, result: str = "green", reason: str = "complete_series", **extra: object) -> bytes:
    # The same seq always carries the same time, as a unit's outbox resends the same event.
    ts = (NOW + timedelta(milliseconds=seq)).isoformat().replace("+00:00", "Z")
    body = {"seq": seq, "ts": ts,
            "result": result, "reason": reason, "policy": "vn-2021", "trust_version": 3, **extra}
    return json.dumps(body).encode()


class Unit:
    """A device's MQTT client (the real protocol, logged in with its own credentials)."""

    def __init__(self, central: Central, device: str, password: str | None, *,
                 will: bool = False, checkpoint: str = "IC7") -> None:
        self.device, self.checkpoint = device, checkpoint
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"unit-{device}",
                                  protocol=mqtt.MQTTv311)
        if password is not None:
            self.client.username_pw_set(device, password)
        if will:
            self.client.will_set(self.topic("status"), json.dumps({"state": "offline"}), qos=1, retain=True)
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", central.port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.refused.append(str(reason))
        else:
            self.connected.set()

    def topic(self, kind: str, checkpoint: str | None = None, device: str | None = None) -> str:
        return f"chot/v1/{checkpoint or self.checkpoint}/{device or self.device}/{kind}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def events(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            self.publish(self.topic("event"), event_payload(seq))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def ingest_factory(central: Central) -> Iterator[Callable[..., MqttIngest]]:
    started: list[MqttIngest] = []

    def make(store: Store | None = None) -> MqttIngest:
        ingest = MqttIngest(store or central.store, central.config)
        ingest.start()
        started.append(ingest)
        return ingest

    yield make
    for ingest in started:
        ingest.stop()


def stored_total(store: Store) -> int:
    return store.totals(Scope.all(), *DAY).total


def test_duplicates_counted_once(central: Central, ingest_factory: Callable[..., MqttIngest],
                                 caplog: pytest.LogCaptureFixture) -> None:
    creds = central.add_device("u1", "IC7")
    ingest = ingest_factory()
    unit = Unit(central, "u1", creds.password)
    marker = central.store.change_marker()
    unit.events(range(1, 21))
    unit.events(range(5, 16))  # a unit resending after a lost acknowledgement
    assert wait_until(lambda: ingest.stats.stored + ingest.stats.duplicates == 31)
    unit.close()
    assert stored_total(central.store) == 20
    assert ingest.stats.stored == 20 and ingest.stats.duplicates == 11
    assert central.store.change_marker() >= marker + 20
    assert "sequence counter was reset" not in caplog.text  # redeliveries are not mistaken for resets
    recent = central.store.recent_events(Scope.all(), checkpoint="IC7", limit=5)
    assert [e.seq for e in recent] == [20, 19, 18, 17, 16]


def gated_store(central: Central) -> Any:
    """A second store on the central's data that commits the first batch, then holds (as if
    the ingest hung before acknowledging)."""

    class Gated(type(central.store)):  # type: ignore[misc]
        committed_first = threading.Event()
        release = threading.Event()

        def record_events(self, batch: Sequence[Event]) -> int:
            new = super().record_events(batch)
            if not self.committed_first.is_set():
                self.committed_first.set()
                self.release.wait(20)
            return new

    return Gated(central.target)


def test_broker_redelivery_after_lost_link_counted_once(central: Central,
                                                         ingest_factory: Callable[..., MqttIngest]) -> None:
    creds = central.add_device("u1", "IC7")
    gated = gated_store(central)
    ingest = ingest_factory(gated)
    unit = Unit(central, "u1", creds.password)
    unit.events(range(1, 11))
    assert gated.committed_first.wait(10)
    # The link drops while the committed batch is still unacknowledged: the broker keeps the
    # messages in the ingest's session and sends them again once it reconnects.
    sock = ingest._client.socket() if ingest._client else None
    assert sock is not None
    sock.shutdown(2)
    time.sleep(0.5)
    gated.release.set()
    assert wait_until(lambda: stored_total(central.store) == 10 and ingest.stats.duplicates >= 1, 20)
    assert ingest.wait_idle(10)
    assert stored_total(central.store) == 10
    unit.close()
    gated.close()


def test_events_sent_while_ingest_is_down_are_all_counted(central: Central,
                                                         ingest_factory: Callable[..., MqttIngest]) -> None:
    creds = central.add_device("u1", "IC7")
    first = ingest_factory()  # creates the ingest's persistent session
    first.stop()
    unit = Unit(central, "u1", creds.password)
    unit.events(range(1, 41))
    central.broker.restart()  # a graceful broker restart in between keeps the queued session
    assert central.broker.running
    unit.close()
    unit = Unit(central, "u1", creds.password)
    assert unit.connected.wait(10)
    unit.events(range(41, 51))
    assert stored_total(central.store) == 0
    second = ingest_factory()
    assert wait_until(lambda: stored_total(central.store) == 50, 20)
    assert second.wait_idle(10)
    assert second.stats.stored == 50
    unit.close()


def test_bad_messages_are_rejected_with_a_reason_and_ingest_goes_on(
        central: Central, ingest_factory: Callable[..., MqttIngest], caplog: pytest.LogCaptureFixture) -> None:
    creds = central.add_device("u1", "IC7")
    ingest = ingest_factory()
    unit = Unit(central, "u1", creds.password)
    topic = unit.topic("event")
    unit.publish(topic, b"{not json")
    unit.publish(topic, b"\xff\xfe")
    unit.publish(topic, b"[1, 2]")
    unit.publish(topic, event_payload(1, name="NGUYEN VAN A", dob="1990-01-01"))  # personal data
    unit.publish(topic, json.dumps({"seq": 2, "result": "green"}).encode())
    unit.publish(topic, event_payload(3, result="blue"))
    unit.publish(topic, event_payload(4, reason="Nguyen Van A"))
    unit.publish(topic, b"x" * 5000)
    unit.publish(unit.topic("status"), b'{"state": "asleep"}')
    unit.publish(topic, event_payload(9))
    assert wait_until(lambda: stored_total(central.store) == 1)
    assert ingest.wait_idle(5)
    rejected = ingest.stats.rejected
    assert rejected["bad_json"] == 3
    assert rejected["unknown_field"] == 1
    assert rejected["missing_field"] == 1
    assert rejected["bad_field"] == 3
    assert rejected["too_large"] == 1
    assert [e.seq for e in central.store.recent_events(Scope.all())] == [9]
    assert central.store.reject_counts() == dict(rejected)  # kept for operators across restarts
    assert "rejected message on chot/v1/IC7/u1/event" in caplog.text
    for personal in ("NGUYEN", "Nguyen", "1990-01-01"):
        assert personal not in caplog.text
    unit.close()


def test_registry_is_checked_even_when_the_broker_lets_a_message_through(
        central: Central, ingest_factory: Callable[..., MqttIngest]) -> None:
    creds = central.add_device("u1", "IC7")
    central.store.upsert_checkpoint("IC8", "IC8", "002", "01")
    ingest = ingest_factory()
    # Moved in the registry but not (yet) in the broker's ACL: the ingest still refuses.
    central.store.add_device("u1", "IC8")
    time.sleep(central.config.ingest.device_refresh_s + 0.3)  # the ingest rereads its registry cache
    unit = Unit(central, "u1", creds.password)
    unit.events([1])
    assert wait_until(lambda: ingest.stats.rejected["wrong_checkpoint"] == 1)
    central.store.remove_device("u1")
    time.sleep(central.config.ingest.device_refresh_s + 0.3)
    unit.events([2])
    assert wait_until(lambda: ingest.stats.rejected["unregistered_device"] == 1)
    assert stored_total(central.store) == 0
    unit.close()


def test_status_retained_and_last_will(central: Central, ingest_factory: Callable[..., MqttIngest]) -> None:
    creds = central.add_device("u1", "IC7")
    unit = Unit(central, "u1", creds.password, will=True)
    assert unit.connected.wait(10)
    online = {"state": "online", "software": "0.1.0", "trust_version": 7, "trust_age_s": 3600,
              "backlog": 2, "clock": "ok", "fps": 14.5, "temperature_c": 51.2, "uptime_s": 99,
              "ts": "2026-11-25T10:00:00Z"}
    unit.publish(unit.topic("status"), json.dumps(online).encode(), retain=True)
    ingest_factory()  # starts after the status: gets it because it is retained
    assert wait_until(lambda: (d := central.store.get_device("u1")) is not None and d.online)
    device = central.store.get_device("u1")
    assert device is not None
    assert (device.software, device.trust_version, device.backlog, device.clock) == ("0.1.0", 7, 2, "ok")
    assert device.fps == 14.5 and device.last_seen is not None
    # The unit dies without saying goodbye: the broker publishes its last will.
    unit.client.socket().shutdown(2)  # type: ignore[union-attr]
    unit.client.loop_stop()
    assert wait_until(lambda: (d := central.store.get_device("u1")) is not None and d.state == "offline", 20)
    device = central.store.get_device("u1")
    assert device is not None and device.trust_version == 7  # last known health kept


def test_payload_parsers_give_reasons() -> None:
    now = datetime.now(timezone.utc)
    event = parse_event("IC7", "u1", event_payload(5), now)
    assert event.seq == 5 and event.ts.tzinfo is not None
    with pytest.raises(Rejected) as e:
        parse_event("IC7", "u1", event_payload(5, ts="yesterday"), now)
    assert e.value.reason == "bad_ts"
    with pytest.raises(Rejected) as e:
        parse_event("IC7", "u1", json.dumps({"seq": -1, "ts": "2026-11-25T10:00:00Z", "result": "red",
                                             "reason": "signature", "policy": "vn-2021"}).encode(), now)
    assert e.value.reason == "bad_field" and "seq" in str(e.value)
    with pytest.raises(Rejected) as e:
        parse_event("IC7", "u1", json.dumps({"seq": 1, "ts": "2026-11-25T10:00:00", "result": "red",
                                             "reason": "signature", "policy": "vn-2021"}).encode(), now)
    assert e.value.reason == "bad_ts"
    assert parse_status(b'{"state": "offline"}').state == "offline"
    with pytest.raises(Rejected):
        parse_status(b'{"state": "online", "fps": "fast"}')
    with pytest.raises(Rejected):
        parse_status(b'{"state": "online", "clock": "whenever"}')


def test_ingest_rides_out_a_broker_restart(central: Central, ingest_factory: Callable[..., MqttIngest]) -> None:
    creds = central.add_device("u1", "IC7")
    ingest = ingest_factory()
    unit = Unit(central, "u1", creds.password)
    unit.events(range(1, 11))
    assert wait_until(lambda: stored_total(central.store) == 10)
    unit.close()
    central.broker.restart()
    assert wait_until(lambda: ingest._connected.is_set(), 15)  # paho reconnects by itself
    unit = Unit(central, "u1", creds.password)
    assert unit.connected.wait(10)
    unit.events(range(11, 21))
    assert wait_until(lambda: stored_total(central.store) == 20, 15)
    unit.close()


def test_ingest_with_a_wrong_password_fails_fast_with_a_reason(central: Central) -> None:
    central.config.mqtt.ingest.password = "wrong"
    # Fast means from the broker's refusal, not after waiting out the start timeout (whose
    # message would be "no answer in 60 s"): the match says which one happened.
    with pytest.raises(BrokerError, match="did not accept the ingest login: Not authorized|Bad user"):
        MqttIngest(central.store, central.config).start(timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_runs_small_and_bounded() -> None:
    """bench/ingest.py end to end at a tiny size, so the README's command keeps working."""
    # Run as the command (tests do not import benches), from the tree under test.
    out = subprocess.run([sys.executable, "-m", "bench.ingest", "--devices", "4", "--events", "10", "--probes", "3",
                          "--timeout", "30", "--rate", "200", "--seconds", "1", "--rounds", "1", "--backend", "none",
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=110, check=True)
    summary = json.loads(out.stdout)
    assert summary["complete"] and summary["paced_complete"]
    assert summary["duplicates"] == 0 and summary["rejected"] == 0
    assert summary["chot_events_per_s"] > 0 and summary["bare_events_per_s"] > 0
    assert summary["stream_probes"] >= 1 and summary["probe_error"] is None
