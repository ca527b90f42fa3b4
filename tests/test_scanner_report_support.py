"""Helpers for the reporting tests: a persistent-session collector, an MQTT wire counter, a unit process.

Run as `python -m tests.test_scanner_report_support unit --db ... --port ...` it is a minimal
unit (Outbox + MqttLink) that records events and reports them, for the SIGKILL test.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from scanner.config import MqttConfig
from scanner.mqtt import MqttLink
from scanner.outbox import Outbox


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll `predicate` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for a child to exit; SIGKILL it if it is still there after `timeout` (no test hangs)."""
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


class Collector:
    """A subscriber with a persistent session (survives its own and the broker's restarts).

    With `ack=True` it also answers each event on the unit's ack topic as the central's ingest
    does once it has stored it (the ack contract of scanner.mqtt), so units forget what it got.
    """

    def __init__(self, port: int, topic: str = "chot/v1/#", client_id: str = "collector",
                 ack: bool = False) -> None:
        self.ack = ack
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]  # paho's stubs say int; it sleeps any seconds
        self.topic = topic
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "the collector to connect")
        time.sleep(0.2)  # let the SUBACK arrive before anything is published

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        if self.ack and msg.topic.endswith("/event"):
            seq = json.loads(msg.payload)["seq"]
            client.publish(msg.topic.removesuffix("event") + "ack",
                           json.dumps({"seqs": [[seq, seq]]}), qos=1)

    def events(self) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/event")]

    def statuses(self, topic: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t == topic]

    def distinct_seqs(self) -> set[int]:
        return {e["seq"] for e in self.events()}

    def assert_duplicates_identical(self) -> None:
        """A redelivered event must be byte-for-byte the same event (same seq, same content)."""
        seen: dict[int, dict] = {}
        for event in self.events():
            assert seen.setdefault(event["seq"], event) == event, f"seq {event['seq']} changed"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class WireCounter:
    """A loopback TCP relay that watches MQTT packets: event PUBLISHes out, PUBACKs back.

    `peak` is the most event messages ever unacknowledged on the wire, measured outside the
    code under test.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.outstanding: set[int] = set()
        self.peak = 0
        self.published = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name="wire-counter", daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                down, _ = self.server.accept()
            except OSError:
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                down.close()
                continue
            with self._lock:
                self.outstanding.clear()  # a new connection starts a new window
            threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        buf = b""
        src.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            buf = self._parse(buf, from_client)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def _parse(self, buf: bytes, from_client: bool) -> bytes:
        while len(buf) >= 2:
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(buf):
                    return buf
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            if len(buf) < i + length:
                return buf
            kind, flags, body = buf[0] >> 4, buf[0] & 0x0F, buf[i:i + length]
            buf = buf[i + length:]
            with self._lock:
                if from_client and kind == 3 and (flags >> 1) & 3 == 1:
                    topic_len = int.from_bytes(body[:2], "big")
                    topic = body[2:2 + topic_len].decode()
                    if topic.endswith("/event"):
                        self.outstanding.add(int.from_bytes(body[2 + topic_len:4 + topic_len], "big"))
                        self.published += 1
                        self.peak = max(self.peak, len(self.outstanding))
                elif not from_client and kind == 4:
                    self.outstanding.discard(int.from_bytes(body[:2], "big"))
        return buf

    def close(self) -> None:
        self._stop.set()
        self.server.close()


def make_link(outbox: Outbox, port: int, *, device: str = "unit-1", checkpoint: str = "ic7",
              max_inflight: int = 10, status_fn: Callable[[], dict] | None = None,
              on_trust: Callable[[bytes], None] | None = None, **kwargs: Any) -> MqttLink:
    """An MqttLink to a loopback broker with quick reconnects (tests must not wait a minute)."""
    config = MqttConfig(host="127.0.0.1", port=port, max_inflight=max_inflight, keepalive=10)
    kwargs.setdefault("backoff_min", 0.1)
    kwargs.setdefault("backoff_max", 0.5)
    return MqttLink(config, device, checkpoint, outbox,
                    status_fn or (lambda: {"state": "online", "backlog": outbox.backlog()}),
                    on_trust or (lambda data: None), **kwargs)


def event_fields(i: int) -> dict:
    return {"result": ("green", "yellow", "red")[i % 3], "reason": "complete_series",
            "policy": "vn-2021", "trust_version": 7}


def _unit_main(argv: list[str]) -> int:
    """A minimal unit: record `--record` events at `--pace` seconds each, report until drained."""
    parser = argparse.ArgumentParser(prog="unit")
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=int, default=0)
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--max-inflight", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    outbox = Outbox(args.db)
    link = make_link(outbox, args.port, max_inflight=args.max_inflight)
    link.start()
    for i in range(args.record):
        seq = outbox.record(event_fields(i), datetime.now(timezone.utc))
        print(f"recorded {seq}", flush=True)
        link.wake()
        time.sleep(args.pace)
    deadline = time.monotonic() + args.seconds
    while outbox.backlog() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"drained backlog={outbox.backlog()}", flush=True)
    link.stop()
    outbox.close()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["unit"]:
        sys.exit(_unit_main(sys.argv[2:]))
    sys.exit("usage: python -m tests.test_scanner_report_support unit --db PATH --port N")
