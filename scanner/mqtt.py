"""The unit's MQTT link: drains the outbox exactly once, keeps a retained status, takes trust bundles.

Events go out QoS 1 in seq order with at most `max_inflight` awaiting PUBACK. A PUBACK only
marks an event handed over: it leaves the outbox when the central's ingest, after storing it,
names its seq on the unit's ack topic (`.../<device>/ack`, `{"seqs": [[first, last], ...]}`).
A broker killed before it delivered what it had acknowledged therefore loses nothing.

Each connection uses a fresh paho client with a clean session, MQTT 5 (Mosquitto) or 3.1.1 (the
national NATS cluster, which speaks no MQTT 5). With several broker addresses (a cluster's
nodes), a unit starts on one picked from its device id, so units spread over the nodes, and
moves to the next as soon as the one it is on is gone: the outbox and its resends do not care
which node carries an event, so exactly-once holds across the move. Events handed over but not
acknowledged by the central are sent again after every reconnect, and while connected once they
are `central_ack_timeout_s` old (the ingest keeps `(device, seq)` unique, so a repeat is
harmless). Such resends go one window at a time: the next window only after the central
acknowledged something, else after another timeout, so a unit never floods a broker whose
ingest is away with its whole backlog again and again.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from protocol import topics
from protocol.ack import AckError, parse_ack
from protocol.status import OFFLINE
from scanner.config import MqttConfig
from scanner.health import stable_part
from scanner.outbox import Outbox

logger = logging.getLogger(__name__)


class MqttLink:
    """One unit's connection to the broker, run in its own thread ("mqtt")."""

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        checkpoint: str,
        outbox: Outbox,
        status_fn: Callable[[], dict[str, Any]],
        on_trust: Callable[[bytes], None],
        *,
        status_interval: float = 60.0,
        backoff_min: float = 0.5,
        backoff_max: float = 60.0,
        connack_timeout: float = 10.0,
        on_roster: Callable[[bytes], None] | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.outbox = outbox
        self.status_fn = status_fn
        self.on_trust = on_trust
        self.on_roster = on_roster
        self.status_interval = status_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.connack_timeout = connack_timeout
        self.jitter = jitter  # the pause before a reconnect, within (low, high); tests read the schedule here
        prefix = config.topic_prefix
        self.event_topic = topics.event(checkpoint, device_id, prefix)
        self.status_topic = topics.status(checkpoint, device_id, prefix)
        self.ack_topic = topics.ack(checkpoint, device_id, prefix)
        self.trust_topic = topics.trust(prefix)
        # The checkpoint's signed officer roster, retained (published by the dashboard).
        self.roster_topic = topics.roster(checkpoint, prefix)
        self._addresses = config.addresses()
        self._at = zlib.crc32(device_id.encode()) % len(self._addresses)
        self._failures = 0  # connection attempts that failed since the last that got through
        self._v5 = config.protocol == "5"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._refused: str | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> event seq, this connection only
        self._window = config.max_inflight
        self._hold_until = 0.0
        self._last_poll = 0.0
        self._last_status_check = 0.0
        self._last_status_sent = 0.0
        self._last_stable: dict[str, Any] | None = None
        self._connected_wall = 0.0  # Unix time of this connection's CONNACK: older sends are resent
        self._resend_due = 0.0  # monotonic time of the next look for events to send again
        self._probing = False  # resends await the central's answer before the next window goes
        self._resend_check = max(0.5, min(5.0, config.central_ack_timeout_s / 4))
        self.sent = 0
        """Events acknowledged by the broker (PUBACK) since start, resends included."""
        self.acked = 0
        """Events acknowledged by the central (and so removed from the outbox) since start."""
        self.resent = 0
        """Events sent again because the central had not acknowledged them."""
        self.peak_inflight = 0
        """The most events ever unacknowledged at once (never above config.max_inflight, nor
        the broker's Receive Maximum)."""
        self.connects = 0
        """Successful connections since start."""
        self.moves = 0
        """Times the unit went on to another broker address after losing or missing one."""

    # -- public API ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a session with the broker is up."""
        return self._connected

    @property
    def broker(self) -> str | None:
        """"host:port" of the broker node the unit is connected to, None while disconnected."""
        return self._address_text() if self._connected else None

    def _address_text(self) -> str:
        host, port = self._addresses[self._at]
        return f"{host}:{port}"

    @property
    def inflight(self) -> int:
        """Events published on this connection and not yet acknowledged."""
        return len(self._inflight)

    def start(self) -> None:
        """Start the link thread (returns at once; connecting happens in the background)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline, disconnect and end the thread (bounded by `timeout`)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("mqtt thread did not stop within %.1fs", timeout)
            self._thread = None

    def wake(self) -> None:
        """A new event is in the outbox (or the status changed): send without waiting."""
        self._wake.set()

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.backoff_min
        while not self._stop.is_set():
            try:
                was_up = self._session()
            except Exception:
                logger.exception("mqtt link failed; reconnecting")
                was_up = False
            self._connected = False
            if self._stop.is_set():
                break
            if was_up:
                delay = self.backoff_min
                self._failures = 0
            else:
                self._failures += 1
            if len(self._addresses) > 1:
                # The node is gone (or refused us): the next one now; back off only once every
                # address has failed in a row.
                self._at = (self._at + 1) % len(self._addresses)
                self.moves += 1
                if self._failures < len(self._addresses):
                    pause = self.jitter(0, self.backoff_min)
                    logger.info("mqtt: moving to broker %s in %.1fs", self._address_text(), pause)
                    self._stop.wait(pause)
                    continue
            pause = self.jitter(delay / 2, delay)  # units restarted together spread out
            logger.info("mqtt: reconnecting to %s in %.1fs", self._address_text(), pause)
            self._stop.wait(pause)
            delay = min(delay * 2, self.backoff_max)

    def _new_client(self) -> paho.Client:
        if self._v5:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id,
                                 protocol=MQTTProtocolVersion.MQTTv5)
        else:  # 3.1.1: a clean session per connection, as clean_start is under MQTT 5
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id,
                                 protocol=MQTTProtocolVersion.MQTTv311, clean_session=True)
        username = self.config.username or self.device_id
        client.username_pw_set(username, self.config.resolved_password())
        if self.config.tls:
            client.tls_set(ca_certs=str(self.config.ca_file) if self.config.ca_file else None)
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        # Our own window limits events; leave paho room for the status messages besides.
        client.max_inflight_messages_set(self.config.max_inflight + 4)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _session(self) -> bool:
        """One connection, from connect to loss or stop; True if it got as far as CONNACK."""
        self._inflight.clear()
        self._refused = None
        self._last_stable = None
        client = self._new_client()
        host, port = self._addresses[self._at]
        try:
            if self._v5:
                client.connect(host, port, self.config.keepalive, clean_start=True)
            else:
                client.connect(host, port, self.config.keepalive)
        except (OSError, ValueError) as e:
            logger.warning("mqtt: cannot connect to %s:%d: %s", host, port, e)
            return False
        started = time.monotonic()
        was_up = False
        try:
            while not self._stop.is_set():
                rc = client.loop(timeout=0.1)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    logger.warning("mqtt: connection lost (%s)", paho.error_string(rc))
                    break
                if self._refused:
                    was_up = False  # counts as a failed attempt: back off, do not spin
                    break
                if not self._connected:
                    if was_up:
                        break
                    if time.monotonic() - started > self.connack_timeout:
                        logger.warning("mqtt: no answer to CONNECT within %.0fs", self.connack_timeout)
                        break
                    continue
                was_up = True
                self._send_status(client)
                self._send_events(client)
            if self._stop.is_set() and self._connected:
                self._say_offline(client)
        finally:
            self._connected = False
            if client.socket() is not None:
                client.disconnect()
                client.loop(timeout=0.05)  # writes DISCONNECT, then paho closes the socket
        return was_up

    def _send_events(self, client: paho.Client) -> None:
        now = time.monotonic()
        room = self._window - len(self._inflight)
        if room <= 0 or now < self._hold_until:
            return
        sweep = now >= self._resend_due
        if not sweep and not self._wake.is_set() and now - self._last_poll < 1.0:
            return
        self._wake.clear()
        self._last_poll = now
        resend_before = None
        if sweep:
            # Sent before this connection (the broker may have lost them), or too long ago.
            resend_before = max(self._connected_wall, time.time() - self.config.central_ack_timeout_s)
        waiting = set(self._inflight.values())
        events = [e for e in self.outbox.pending(len(waiting) + room, resend_before)
                  if e.seq not in waiting][:room]
        resends = 0
        for event in events:
            info = client.publish(self.event_topic, event.payload(), qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                logger.warning("mqtt: publish of seq %d failed: %s", event.seq, paho.error_string(info.rc))
                break
            self._inflight[info.mid] = event.seq
            resends += event.sent_at is not None
        self.peak_inflight = max(self.peak_inflight, len(self._inflight))
        if sweep:
            self._after_sweep(now, resends)
        if len(events) == room:
            self._wake.set()  # more may be waiting: look again as soon as acks free the window

    def _after_sweep(self, now: float, resends: int) -> None:
        if resends:
            self.resent += resends
            logger.debug("mqtt: sent %d events again that the central has not acknowledged", resends)
            self._resend_due = now + self.config.central_ack_timeout_s
            self._probing = True
        else:
            self._resend_due = now + self._resend_check

    def _send_status(self, client: paho.Client, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status_check < 1.0:
            return
        self._last_status_check = now
        status = self._status()
        stable = stable_part(status)
        due = now - self._last_status_sent >= self.status_interval
        if force or due or stable != self._last_stable:
            client.publish(self.status_topic, json.dumps(status, default=str).encode(), qos=1, retain=True)
            self._last_stable = stable
            self._last_status_sent = now

    def _status(self) -> dict[str, Any]:
        try:
            status = dict(self.status_fn())
        except Exception:
            logger.exception("status_fn failed; sending a bare online status")
            status = {}
        status.setdefault("state", "online")
        if len(self._addresses) > 1:
            status["broker"] = self._address_text()  # which node of the cluster carries this unit
        return status

    def _say_offline(self, client: paho.Client) -> None:
        """On a clean stop the will is not sent, so publish offline ourselves (bounded wait)."""
        info = client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break

    # -- paho callbacks (run in this link's thread, inside client.loop) ------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            logger.error("mqtt: broker %s refused the connection: %s", self._address_text(), reason_code)
            return
        # The broker's Receive Maximum (MQTT v5) caps our window: exceeding it gets us cut off.
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        self._window = min(self.config.max_inflight, receive_maximum or self.config.max_inflight)
        self._connected = True
        self._connected_wall = time.time()
        self._resend_due = 0.0
        self._probing = False
        self.connects += 1
        logger.info("mqtt: connected to %s", self._address_text())
        try:
            waiting = self.outbox.backlog() - self.outbox.unsent()
        except sqlite3.Error:
            waiting = 0  # only for the log line; sending reads the outbox again
        if waiting:
            logger.info("mqtt: %d events handed over earlier still await the central's ack: sending"
                        " them again", waiting)
        # Subscribed before any event goes out, so the central's ack for it cannot pass us by.
        client.subscribe(self._subscriptions())
        self._send_status(client, force=True)
        self._wake.set()

    def _subscriptions(self) -> list[tuple[str, int]]:
        topics = [(self.trust_topic, 1), (self.ack_topic, 1)]
        return topics + [(self.roster_topic, 1)] if self.on_roster is not None else topics

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self._connected:
            logger.warning("mqtt: disconnected: %s", reason_code)
        self._connected = False

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return  # a status message
        if reason_code.is_failure:
            # Kept in the outbox: a refusal (e.g. the ACL) is a setup problem to fix, not data to drop.
            logger.error("mqtt: broker refused event seq %d: %s; keeping it", seq, reason_code)
            self._hold_until = time.monotonic() + self.backoff_max
            return
        self.outbox.mark_sent(seq)
        self.sent += 1
        self._wake.set()

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        topics = [topic for topic, _qos in self._subscriptions()]
        for topic, code in zip(topics, reason_codes):
            if code.is_failure:
                # Without its ack subscription a unit never hears that events are stored. A
                # cluster node refuses while it elects new leaders after losing a peer: go on
                # to the next node (or try again later), as after a refused connection.
                logger.error("mqtt: broker refused the subscription to %s: %s; reconnecting", topic, code)
                self._refused = f"subscription to {topic} refused"

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self.ack_topic:
            self._on_ack(bytes(message.payload))
            return
        if message.topic == self.roster_topic and self.on_roster is not None and message.payload:
            try:
                self.on_roster(bytes(message.payload))
            except Exception:
                logger.exception("roster handler failed")
            return
        if message.topic != self.trust_topic or not message.payload:
            return
        try:
            self.on_trust(bytes(message.payload))
        except Exception:
            logger.exception("trust bundle handler failed")

    def _on_ack(self, payload: bytes) -> None:
        """The central stored these seqs: forget them, and let a waiting resend go on."""
        try:
            ranges = parse_ack(payload)
        except AckError as e:
            logger.warning("mqtt: ignored a message on %s: %s", self.ack_topic, e.reason)
            return
        try:
            removed = self.outbox.acknowledge(ranges)
        except sqlite3.Error as e:  # kept: the event is sent again and acknowledged again
            logger.error("mqtt: could not remove acknowledged events from the outbox: %s", e)
            return
        self.acked += removed
        if removed and self._probing:
            self._probing = False
            self._resend_due = 0.0
            self._wake.set()
