"""Attacks on the broker as firmware-config ships it: every one is refused.

The broker runs from firmware-config/mosquitto/mosquitto.conf rendered by dashboard.broker, with
the password file and ACL that `add_device` writes (tests/support/central.py). An attacker here
holds a real unit's credentials (a stolen or rooted unit) or none at all.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest

from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from protocol import topics
from tests.support.central import Central, central, wait_until  # noqa: F401 - central is a fixture
from tests.test_broker_acl import connect


@pytest.fixture
def backend() -> str:
    """The broker is under test here, not the store: the central runs on SQLite only."""
    return "sqlite"

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def event(seq: int, **extra: object) -> bytes:
    body = {"seq": seq, "ts": datetime.now(timezone.utc).isoformat(), "result": "green",
            "reason": "complete_series", "policy": "vn-2021", "trust_version": 1, **extra}
    return json.dumps(body).encode()


GRANTED_QOS1 = 1  # SUBACK reason code: granted at QoS 1 (MQTT 5, 3.9.3); 0x80 and above refuse


class Listener:
    """A connected client that records every message it is sent and the SUBACK codes it got.

    It waits for the SUBACK of every topic and fails if none comes, so a negative check ("nothing
    arrived") is never passed by a subscription that was never made."""

    def __init__(self, port: int, username: str | None, password: str | None, topics: list[str],
                 client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.granted: list[int] = []
        self._lock = threading.Lock()
        self.client, self.outcome = connect(port, username, password, client_id=client_id)
        assert self.outcome == "ok", self.outcome
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.granted.extend(r.value for r in codes)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        assert wait_until(lambda: len(self.granted) == len(topics), 30), f"no SUBACK for {topics}"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def units(central: Central) -> dict[str, str]:
    """Two units at IC7 and one at IC8: device -> password."""
    out = {d: central.add_device(d, cp).password for d, cp in (("ua", "IC7"), ("ub", "IC7"), ("uc", "IC8"))}
    time.sleep(0.5)  # the broker rereads its files after SIGHUP
    return out


def _ingest_login(central: Central) -> tuple[str, str | None]:
    account = central.config.mqtt.ingest
    return account.username, account.resolved_password()


def test_no_password_or_a_wrong_one_is_refused(central: Central, units: dict[str, str]) -> None:
    ingest_user, ingest_password = _ingest_login(central)
    attempts = {
        "anonymous": (None, None),
        "empty password": ("ua", ""),
        "wrong password": ("ua", "guess-" + units["ua"][:4]),
        "another unit's password": ("ua", units["ub"]),
        "unknown user": ("intruder", units["ua"]),
        "service account with a unit's password": (ingest_user, units["ua"]),
        "wildcard user name": ("#", units["ua"]),
        "unit with the ingest's password": ("ua", ingest_password),
    }
    outcomes = {name: connect(central.port, u, p)[1] for name, (u, p) in attempts.items()}
    assert all(o != "ok" for o in outcomes.values()), outcomes
    # The legitimate login works, so the refusals above are about the credentials.
    client, outcome = connect(central.port, "ua", units["ua"])
    assert outcome == "ok"
    client.disconnect()
    client.loop_stop()


def test_forged_publishes_reach_no_one(central: Central, units: dict[str, str]) -> None:
    user, password = _ingest_login(central)
    watcher = Listener(central.port, user, password, ["chot/v1/#"], client_id="watcher")
    forged = ["chot/v1/IC7/ub/event", "chot/v1/IC7/ub/status", "chot/v1/IC8/uc/event",
              "chot/v1/IC8/ua/event", "chot/v1/ic7/ua/event", "chot/v1/IC7/ua2/event",
              topics.TRUST, "chot/v2/IC7/ua/event", "$SYS/broker/uptime", "other/topic"]
    try:
        for topic in forged:
            # Mosquitto drops a client after a refused publish: a fresh connection per forgery.
            forger, outcome = connect(central.port, "ua", units["ua"], protocol=mqtt.MQTTv311)
            assert outcome == "ok"
            forger.publish(topic, event(1), qos=1, retain=True)
            time.sleep(0.1)
            forger.disconnect()
            forger.loop_stop()
        own, outcome = connect(central.port, "ua", units["ua"])
        assert outcome == "ok"
        own.publish("chot/v1/IC7/ua/event", event(2), qos=1).wait_for_publish(30)
        # The unit's own retained status: what a late subscriber must see, and all it may see.
        own.publish("chot/v1/IC7/ua/status", b'{"state": "online"}', qos=1, retain=True).wait_for_publish(30)
        own.disconnect()
        own.loop_stop()
        assert watcher.granted == [GRANTED_QOS1], watcher.granted  # the watcher really listens
        assert wait_until(lambda: len(watcher.topics()) >= 2, 30)
        time.sleep(0.3)
        assert watcher.topics() == ["chot/v1/IC7/ua/event", "chot/v1/IC7/ua/status"], "a forged message got through"
    finally:
        watcher.close()
    # Nothing forged was retained either: a late subscriber gets the retained messages there are
    # (the unit's own status, which shows retained delivery works) and no other.
    late = Listener(central.port, user, password, ["chot/v1/#"], client_id="late")
    try:
        assert late.granted == [GRANTED_QOS1], late.granted
        assert wait_until(lambda: late.topics() != [], 30), "the retained status never came"
        time.sleep(0.5)
        assert late.messages == [("chot/v1/IC7/ua/status", b'{"state": "online"}', True)], late.messages
    finally:
        late.close()


def test_a_unit_reads_nothing_but_the_trust_topic(central: Central, units: dict[str, str]) -> None:
    dash = central.config.mqtt.dashboard
    publisher, outcome = connect(central.port, dash.username, dash.resolved_password())
    assert outcome == "ok"
    publisher.publish(topics.TRUST, b'{"format": "chot-trust-bundle/1"}', qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    spy = Listener(central.port, "ua", units["ua"],
                   ["#", "chot/v1/#", "chot/v1/+/+/event", "chot/v1/+/+/status", "chot/v1/IC7/ub/event",
                    "$SYS/#", topics.TRUST], client_id="ua")
    try:
        for device, cp in (("ub", "IC7"), ("uc", "IC8")):
            other, outcome = connect(central.port, device, units[device])
            assert outcome == "ok"
            other.publish(f"chot/v1/{cp}/{device}/event", event(1), qos=1).wait_for_publish(5)
            other.publish(f"chot/v1/{cp}/{device}/status", b'{"state": "online"}', qos=1, retain=True).wait_for_publish(5)
            other.disconnect()
            other.loop_stop()
        time.sleep(1.0)
        # Each subscription was answered: refused outright, or granted and then given nothing.
        assert len(spy.granted) == 7 and all(c == GRANTED_QOS1 or c >= 0x80 for c in spy.granted), spy.granted
        assert spy.granted[-1] == GRANTED_QOS1  # the trust topic, which it must read
        assert set(spy.topics()) == {topics.TRUST}, spy.topics()
    finally:
        spy.close()


def test_a_unit_cannot_replace_the_trust_bundle(central: Central, units: dict[str, str]) -> None:
    dash = central.config.mqtt.dashboard
    genuine = b'{"format": "chot-trust-bundle/1", "genuine": true}'
    publisher, _ = connect(central.port, dash.username, dash.resolved_password())
    publisher.publish(topics.TRUST, genuine, qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    for protocol in (mqtt.MQTTv311, mqtt.MQTTv5):
        forger, outcome = connect(central.port, "ua", units["ua"], protocol=protocol)
        assert outcome == "ok"
        forger.publish(topics.TRUST, b'{"format": "chot-trust-bundle/1", "forged": true}', qos=1, retain=True)
        forger.publish(topics.TRUST, b"", qos=1, retain=True)  # clearing the retained bundle
        time.sleep(0.2)
        forger.disconnect()
        forger.loop_stop()
    reader = Listener(central.port, "ub", units["ub"], [topics.TRUST], client_id="ub")
    try:
        assert reader.granted == [GRANTED_QOS1], reader.granted
        assert wait_until(lambda: reader.messages != [], 30)
        time.sleep(0.3)
        assert [(t, p) for t, p, _ in reader.messages] == [(topics.TRUST, genuine)]
    finally:
        reader.close()


def test_oversized_messages_are_refused(central: Central, units: dict[str, str]) -> None:
    text = central.config.broker.mosquitto_conf.read_text()  # type: ignore[union-attr]
    assert "max_packet_size" in text, "the shipped broker config sets no packet size limit"
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    try:
        user = "ua"
        big, outcome = connect(central.port, user, units[user])
        assert outcome == "ok"
        # Over the broker's limit: the broker cuts the client off and delivers nothing.
        big.publish("chot/v1/IC7/ua/event", b"{" + b" " * (17 * 1024 * 1024) + b"}", qos=1)
        assert wait_until(lambda: not big.is_connected(), 20), "a 17 MiB publish was accepted"
        big.loop_stop()
        # Under the broker's limit but far over an event's size: the ingest refuses it.
        mid, outcome = connect(central.port, user, units[user])
        assert outcome == "ok"
        mid.publish("chot/v1/IC7/ua/event", event(5, pad="x" * 20_000), qos=1).wait_for_publish(5)
        mid.publish("chot/v1/IC7/ua/event", event(6), qos=1).wait_for_publish(5)
        mid.disconnect()
        mid.loop_stop()
        assert wait_until(lambda: ingest.stats.stored == 1, 10)
        assert ingest.stats.rejected["too_large"] == 1
        assert [e.seq for e in central.store.recent_events(Scope.all())] == [6]
    finally:
        ingest.stop()


def test_a_stolen_unit_cannot_take_over_another_session(central: Central, units: dict[str, str]) -> None:
    """Connecting with the ingest's or another unit's client id must not kick them off or steal
    the ingest's persistent session (its queued events)."""
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    victim, outcome = connect(central.port, "ub", units["ub"], client_id="ub")
    assert outcome == "ok"
    kicked: list[str] = []
    victim.on_disconnect = lambda c, u, flags, reason, props: kicked.append(str(reason))
    try:
        for stolen_id in (central.config.mqtt.client_id, "ub"):
            thief, outcome = connect(central.port, "ua", units["ua"], client_id=stolen_id)
            if outcome == "ok":
                thief.subscribe("chot/v1/#", qos=1)
                time.sleep(0.5)
                thief.disconnect()
                thief.loop_stop()
        assert kicked == [], f"a unit was kicked off by another unit using its client id: {kicked}"
        for seq in range(1, 21):
            victim.publish("chot/v1/IC7/ub/event", event(seq), qos=1).wait_for_publish(5)
        assert wait_until(lambda: ingest.stats.stored == 20, 10), ingest.stats
    finally:
        victim.disconnect()
        victim.loop_stop()
        ingest.stop()
