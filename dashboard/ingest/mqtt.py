"""The ingest over MQTT: a persistent session, or with several workers a shared subscription.

A persistent MQTT 5 session (fixed client id, session expiry, clean_start False) makes the
broker queue events while the ingest is down. Messages are acknowledged by hand, only after the
batch holding them is committed. Several workers share the events through
`$share/<group>/chot/v1/+/+/event`; each sees every status. Acks to units go out on their ack
topics at QoS 1.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from dashboard import broker
from dashboard.config import DashboardConfig
from dashboard.ingest.base import Ingest, Item, Rejected
from dashboard.store import Event, Store
from protocol import topics
from protocol.ack import encode_acks

logger = logging.getLogger(__name__)


class MqttIngest(Ingest):
    """Subscribes to every unit's events and status on the broker."""

    def __init__(self, store: Store, config: DashboardConfig, client_id: str | None = None, worker: int = 1) -> None:
        super().__init__(store, config, client_id, worker=worker)
        self._client: mqtt.Client | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and start the writer; raises broker.BrokerError if no connection."""
        self._refresh_devices(force=True)
        cfg = self.config.mqtt
        client = broker.mqtt_client(cfg, self._account, self._client_id, manual_ack=True, buffered=True,
                                    persistent=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        # One ingest: a long session, so the broker queues events while it is down. Workers: the
        # others take a stopped worker's share, so its session should not hold events for it.
        props.SessionExpiryInterval = self.config.ingest.shared_session_expiry_s if self.shared else cfg.session_expiry_s
        props.ReceiveMaximum = 1000
        self._client = client
        self._stop.clear()
        self._connected_or_refused.clear()  # a stopped ingest may be started again
        self._refused = None
        self._accepting.set()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        try:
            host, port = broker.connect_first(client, cfg, clean_start=False, properties=props)
        except broker.BrokerError:
            self._shutdown_writer()
            raise
        client.loop_start()
        self._connected_or_refused.wait(timeout)
        if not self._connected.is_set():
            self.stop()
            why = self._refused or f"no answer in {timeout:.0f} s"
            raise broker.BrokerError(f"broker at {host}:{port} did not accept the ingest login: {why}")

    def event_filter(self) -> str:
        """The events' subscription: shared by the workers' group when there are several."""
        events = topics.ALL_EVENTS
        return f"$share/{self.config.ingest.share_group}/{events}" if self.shared else events

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, commit and acknowledge what was taken, then disconnect."""
        self._accepting.clear()
        self._shutdown_writer(timeout)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._connected.clear()

    # -- MQTT callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.error("broker refused the ingest login: %s", reason)
            self._refused = str(reason)
            self._connected_or_refused.set()
            return
        with self._lock:
            self._generation += 1
        self._subscribe(client)
        logger.info("ingest%s connected (session present: %s)",
                    f" worker {self.worker}" if self.shared else "", flags.session_present)
        self._connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # start() returns only once the broker has granted the subscriptions: on a new session,
        # events published between CONNACK and SUBACK would otherwise reach no one.
        refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            logger.error("broker refused the ingest's subscriptions: %s", ", ".join(refused))
            self._refused = "subscriptions refused: " + ", ".join(refused)
            self._connected.clear()
        self._connected_or_refused.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if self._accepting.is_set():
            moved = broker.next_address(client, self.config.mqtt)
            logger.warning("ingest lost the broker (%s); reconnecting%s", reason, f" to {moved}" if moved else "")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        if any(code.is_failure for code in codes) and self._accepting.is_set():
            # A cluster node refuses while it elects new leaders after losing a peer: ask again.
            logger.warning("the broker refused the ingest's subscriptions (%s); asking again in 1 s",
                           ", ".join(str(c) for c in codes))
            retry = threading.Timer(1.0, self._subscribe, (client,))
            retry.daemon = True
            retry.start()

    def _subscribe(self, client: mqtt.Client) -> None:
        if self.config.mqtt.protocol == "5":
            # retain_handling=1: retained status only for a new subscription, not on every reconnect.
            opts: Any = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        else:
            opts = 1  # 3.1.1 has no retain handling: a reconnect gets the retained status again
        # Workers share the events; each sees every status (retained messages are not sent to
        # shared subscriptions, and a status written N times is still one row).
        client.subscribe([(self.event_filter(), opts), (topics.ALL_STATUS, opts)])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self._accepting.is_set():
            moved = broker.next_address(client, self.config.mqtt)
            if moved:
                logger.info("ingest: broker unreachable, trying %s", moved)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting.is_set():
            return  # not acknowledged: the broker delivers it again to the next session
        self.stats.received += 1
        item = Item(self._generation, msg.mid, msg.qos)
        try:
            self._parse(msg.topic, msg.payload, item)
        except Rejected as e:
            item.rejected = e.reason
            self._reject(e.reason, msg.topic, str(e))
        self._queue.put(item)  # rejected ones too: acknowledged in order, after what came before

    def _acknowledge_units(self, events: list[Event]) -> None:
        """Tell each unit which of its seqs are stored now, new and duplicate alike (a unit that
        sends an event again has not heard the first ack). Nothing but seqs goes out."""
        client = self._client
        if client is None or not events:
            return
        for (checkpoint, device), seqs in self._seqs_by_unit(events).items():
            for payload in encode_acks(seqs):
                # Queued by paho if the link is down; a lost ack only means the unit resends.
                client.publish(topics.ack(checkpoint, device), payload, qos=1)
                self.stats.acks += 1

    def _ack(self, batch: list[Item]) -> None:
        client = self._client
        generation = self._generation
        if client is None:
            return
        for item in batch:
            # A message from an earlier connection is redelivered by the broker: no stale ack.
            if item.qos > 0 and item.generation == generation:
                client.ack(item.mid, item.qos)
