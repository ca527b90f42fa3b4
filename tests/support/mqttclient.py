"""A small MQTT 3.1.1 test client that records what it receives (both brokers speak 3.1.1)."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from tests.support.central import wait_until


class Client:
    """An MQTT 3.1.1 client on one node, recording what it receives."""

    def __init__(self, port: int, username: str, password: str, client_id: str, *, clean: bool = True) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subacks: list[list[int]] = []
        self.outcome: list[str] = []
        self.closed = threading.Event()
        done = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                        clean_session=clean)
        c.username_pw_set(username, password)

        def on_connect(cl: mqtt.Client, u: object, flags: object, rc: mqtt.ReasonCode, p: object) -> None:
            self.outcome.append("ok" if not rc.is_failure else str(rc))
            done.set()

        c.on_connect = on_connect
        c.on_disconnect = lambda *a: self.closed.set()
        c.on_message = lambda cl, u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))
        c.on_subscribe = lambda cl, u, mid, rcs, p: self.subacks.append([r.value for r in rcs])
        c.reconnect_delay_set(30, 30)  # a dropped client stays dropped while the test looks
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        done.wait(15)
        self.client = c

    @property
    def ok(self) -> bool:
        return self.outcome[:1] == ["ok"]

    def subscribe(self, *topics: str) -> list[int]:
        before = len(self.subacks)
        self.client.subscribe([(t, 1) for t in topics])
        assert wait_until(lambda: len(self.subacks) > before, 15)
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def logs_in(port: int, username: str, password: str, client_id: str) -> bool:
    """Whether a login is accepted (the connection is closed again at once)."""
    client = Client(port, username, password, client_id)
    client.close()
    return client.ok


def connect_when_ready(port: int, username: str, password: str, client_id: str, *, clean: bool = True,
                       timeout: float = 120.0) -> Client:
    """A connected client, trying again while a cluster node refuses (it elects new stream
    leaders for a few seconds after losing a peer; units retry the same way)."""
    deadline = time.monotonic() + timeout
    while True:
        client = Client(port, username, password, client_id, clean=clean)
        if client.ok or time.monotonic() > deadline:
            return client
        client.close()
        time.sleep(0.5)
