"""The national broker: a real 3-node NATS cluster rendered from the shipped files.

Per-unit permissions must refuse what the Mosquitto ACL refuses; MQTT state (retained trust
bundle, persistent sessions) must outlive the node it was made on. Adding, re-keying and revoking
units on either broker: tests/test_device_management.py.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from dashboard import broker
from dashboard.broker import nats as natsconf
from protocol import topics
from tests.support.central import wait_until
from tests.support.mqttclient import Client, connect_when_ready
from tests.support.nats import NationalCentral, national  # noqa: F401 - national is a fixture

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def event(seq: int) -> bytes:
    return json.dumps({"seq": seq, "ts": dt.datetime.now(dt.timezone.utc).isoformat(), "result": "green",
                       "reason": "complete_series", "policy": "vn-2021", "trust_version": 1}).encode()


def test_node_configs_are_the_shipped_template(national: NationalCentral) -> None:
    for node in national.cluster.nodes:
        text = node.conf_path.read_text()
        assert "${" not in text
        assert f"server_name: {node.name}" in text and "stream_replicas: 3" in text
        others = [n for n in national.cluster.nodes if n is not node]
        assert all(f"nats-route://127.0.0.1:{n.node.cluster_port}" in text for n in others)
    accounts = national.config.broker.users_file.read_text()  # type: ignore[union-attr]
    assert accounts.count("$2b$") == 2 and "chot-ingest" in accounts and "jetstream: enabled" in accounts


def test_subjects_follow_the_mqtt_mapping() -> None:
    assert natsconf.subject("chot/v1/IC7/lane.1/event") == "chot.v1.IC7.lane//1.event"
    grant = broker.DeviceGrant("lane.1", "IC7")
    publish, subscribe = natsconf.device_permissions(grant)
    assert publish == ["chot.v1.IC7.lane//1.event", "chot.v1.IC7.lane//1.status"]
    assert subscribe == ["chot.v1.IC7.lane//1.ack", "chot.v1.trust", "chot.v1.IC7.roster", "$MQTT.sub.>"]


def test_wrong_logins_and_mqtt5_are_refused(national: NationalCentral) -> None:
    creds = national.add_device("u1", "IC7")
    port = national.cluster[0].mqtt_port
    assert not Client(port, "u1", "not-the-password", "u1").ok
    assert not Client(port, "nobody", creds.password, "x").ok
    v5 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="u1", protocol=mqtt.MQTTv5)
    v5.username_pw_set("u1", creds.password)
    refused = threading.Event()
    v5.on_connect = lambda c, u, f, rc, p: refused.set() if rc.is_failure else None
    v5.on_disconnect = lambda *a: refused.set()
    v5.connect("127.0.0.1", port, 10)
    v5.loop_start()
    assert refused.wait(15)  # NATS 2.9 speaks MQTT 3.1.1 only: a unit must be set to "3.1.1"
    v5.loop_stop()
    good = Client(port, "u1", creds.password, "u1")
    assert good.ok
    good.close()


def test_a_unit_writes_only_its_own_topics_and_reads_only_trust_and_its_acks(national: NationalCentral) -> None:
    a = national.add_device("ua", "IC7")
    national.add_device("ub", "IC7")
    n1, n2, n3 = (n.mqtt_port for n in national.cluster.nodes)
    ingest_account = national.config.mqtt.ingest
    watcher = Client(n2, ingest_account.username, ingest_account.password or "", "watch")
    assert watcher.subscribe("chot/v1/+/+/event", "chot/v1/+/+/status") == [1, 1]
    unit = Client(n1, "ua", a.password, "ua")
    assert unit.ok
    # A refused subscription gets 0x80: others' topics, the whole tree, the server's own subjects.
    assert unit.subscribe("chot/v1/IC7/ub/ack", "chot/v1/#", "$MQTT/sub/#", "chot/v1/+/+/event",
                          "chot/v1/IC8/roster") == [128] * 5
    assert unit.subscribe("chot/v1/trust", "chot/v1/IC7/ua/ack", "chot/v1/IC7/roster") == [1, 1, 1]
    # Under MQTT 3.1.1 a refused publish gets its PUBACK and goes nowhere (the server logs it).
    for topic in ("chot/v1/IC7/ub/event", "chot/v1/IC8/ua/event", "chot/v1/IC7/ua/ack", "chot/v1/IC7/ub/status"):
        unit.publish(topic, event(1))
    unit.publish(topics.TRUST, b"forged bundle", retain=True)
    unit.publish("chot/v1/IC7/ua/event", event(2))
    assert wait_until(lambda: any(t == "chot/v1/IC7/ua/event" for t, _, _ in watcher.messages), 15)
    time.sleep(0.5)  # anything forged before the legitimate event would have arrived by now
    assert [t for t, _, _ in watcher.messages] == ["chot/v1/IC7/ua/event"]
    other = Client(n3, "ub", "", "probe")  # wrong password: refused, proves nothing reaches as ub
    assert not other.ok
    reader = Client(n3, "ua", a.password, "ua-reader")
    assert reader.subscribe(topics.TRUST) == [1]
    time.sleep(1.0)
    assert reader.messages == []  # the forged retained bundle was never stored
    violations = "".join(n.log_text() for n in national.cluster.nodes)
    assert "Publish Violation" in violations and "chot.v1.trust" in violations
    for c in (watcher, unit, reader):
        c.close()


def test_retained_trust_bundle_outlives_the_node_it_was_published_on(national: NationalCentral) -> None:
    creds = national.add_device("u1", "IC7")
    account = national.config.mqtt.dashboard
    publisher = connect_when_ready(national.cluster[0].mqtt_port, account.username, account.password or "",
                                   "chot-dashboard")
    assert publisher.ok
    publisher.publish(topics.TRUST, b"bundle-7", retain=True)
    publisher.close()
    # The bundle has reached the other nodes before its own node dies: a watcher on node 3 gets it
    # retained. (The test asks what a unit needs: a replicated bundle outlives its node. A node
    # killed in the instant of a publish is the dashboard's to retry.)
    watcher = connect_when_ready(national.cluster[2].mqtt_port, account.username, account.password or "",
                                 "chot-dashboard-watch")
    assert watcher.ok and watcher.subscribe(topics.TRUST) == [1]
    assert wait_until(lambda: (topics.TRUST, b"bundle-7", True) in watcher.messages, 30)
    watcher.close()
    national.cluster[0].kill()
    national.cluster.wait_ready(120)
    # A hang guard: on a loaded machine the survivors can take a minute to elect the leaders of
    # the MQTT streams. Until they have, a node may accept the login but refuse the subscription
    # (SUBACK 0x80: it could not create the JetStream consumer); a unit then reconnects and
    # subscribes again (scanner/mqtt.py), and so does this test.
    deadline = time.monotonic() + 120
    while True:
        unit = connect_when_ready(national.cluster[2].mqtt_port, "u1", creds.password, "u1", timeout=120)
        assert unit.ok, national.cluster.log_text()[-4000:]
        granted = unit.subscribe(topics.TRUST)
        if granted == [1] or time.monotonic() > deadline:
            break
        unit.close()
        time.sleep(1)
    assert granted == [1], national.cluster.log_text()[-4000:]
    assert wait_until(lambda: (topics.TRUST, b"bundle-7", True) in unit.messages, 30)
    unit.close()


def test_a_persistent_session_survives_the_loss_of_its_node(national: NationalCentral) -> None:
    creds = national.add_device("u1", "IC7")
    account = national.config.mqtt.ingest
    nodes = national.cluster.nodes
    session = Client(nodes[0].mqtt_port, account.username, account.password or "", "chot-ingest", clean=False)
    assert session.subscribe("chot/v1/+/+/event") == [1]
    session.close()  # the session stays: QoS 1 events wait for it
    unit = Client(nodes[2].mqtt_port, "u1", creds.password, "u1")
    unit.publish("chot/v1/IC7/u1/event", event(1))
    nodes[0].kill()
    national.cluster.wait_ready(60)
    unit.close()
    unit = connect_when_ready(nodes[2].mqtt_port, "u1", creds.password, "u1", timeout=120)
    unit.publish("chot/v1/IC7/u1/event", event(2))
    back = connect_when_ready(nodes[1].mqtt_port, account.username, account.password or "", "chot-ingest",
                              clean=False)
    assert back.ok
    assert wait_until(lambda: len(back.messages) >= 2, 30)
    seqs = sorted(json.loads(p)["seq"] for _, p, _ in back.messages)
    assert seqs[:2] == [1, 2]
    for c in (unit, back):
        c.close()
