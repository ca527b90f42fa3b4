"""MQTT ingest: units' events and status from the broker into the store, exactly once.

A persistent MQTT 5 session (fixed client id, session expiry, clean_start False) makes the
broker queue events while the ingest is down. Messages are acknowledged by hand, only after the
batch holding them is committed, so a crash between receipt and commit means a redelivery,
which the store's unique (device, seq) turns into nothing. Bad messages are counted as rejected
with a log line naming the reason and topic; their payload is never logged.

After each commit the ingest tells every unit in the batch which of its seqs are now stored
(`chot/v1/<checkpoint>/<device>/ack`, QoS 1, `{"seqs": [[first, last], ...]}`), duplicates
included: a unit keeps each event until then, so a broker that dies before delivering what it
had acknowledged to the unit loses nothing (scanner/mqtt.py sends it again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from dashboard import broker
from dashboard.config import DashboardConfig
from dashboard.scope import Scope
from dashboard.store import Event, InvalidRecord, StatusUpdate, Store, StoreUnavailable
from verifier.decisions import DECISION_FIELDS, DecisionFieldError, counted_as, validate_decision

logger = logging.getLogger(__name__)

EVENT_FIELDS = frozenset({"seq", "ts", "result", "reason", "policy", "trust_version"})
DECISION_EVENT_FIELDS = frozenset({"seq", "ts", *DECISION_FIELDS})
STATUS_FIELDS = frozenset({"state", "software", "trust_version", "trust_age_s", "backlog", "clock",
                           "fps", "temperature_c", "uptime_s", "ts", "broker", "pins"})
PIN_FIELDS = frozenset({"wrong_hour", "wrong_total", "lockouts", "locked", "officers"})
PIN_IDS_MAX = 10
_OFFICER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")  # verifier.roster's staff ids
STATES = ("online", "offline")
CLOCK_STATES = ("ok", "behind_bundle", "behind_last_seen")
MAX_PAYLOAD = 2048
_TOPIC_RE = re.compile(r"^chot/v1/([^/]+)/([^/]+)/(event|status)$")
_NODE_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,100}$")
_REJECT_LOG_PER_MINUTE = 50
ACK_RANGES_PER_MESSAGE = 500  # about 12 KB of JSON at most; units refuse acks over 64 KiB


def ack_topic(checkpoint: str, device: str) -> str:
    """Where one unit hears which of its events the central has stored."""
    return f"{broker.TOPIC_ROOT}/{checkpoint}/{device}/ack"


def ack_payloads(seqs: list[int]) -> list[bytes]:
    """`{"seqs": [[first, last], ...]}` messages covering exactly `seqs` (consecutive ones merged)."""
    ranges: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return [json.dumps({"seqs": ranges[i:i + ACK_RANGES_PER_MESSAGE]}, separators=(",", ":")).encode()
            for i in range(0, len(ranges), ACK_RANGES_PER_MESSAGE)]


class Rejected(Exception):
    """A message that cannot be stored; `reason` is a short code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def parse_time(value: Any) -> datetime:
    """An ISO 8601 timestamp with a zone (as units send `ts`) as aware UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise Rejected("bad_ts", "ts must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected("bad_ts", "ts is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise Rejected("bad_ts", "ts has no timezone")
    return parsed.astimezone(timezone.utc)


def _json_object(payload: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Rejected("bad_json", "payload is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Rejected("bad_json", "payload is not a JSON object")
    unknown = set(data) - allowed
    if unknown:
        # Field names only: the values may be exactly what must not be logged.
        raise Rejected("unknown_field", f"unknown fields {sorted(unknown)[:5]}")
    return data


def parse_event(checkpoint: str, device: str, payload: bytes, received_at: datetime) -> Event:
    """Validate an event payload (a verdict, or an officer's decision with `kind`) against the v1
    contract and build the stored record."""
    data = _json_object(payload, EVENT_FIELDS | DECISION_EVENT_FIELDS)
    if "kind" in data:
        return _parse_decision(checkpoint, device, data, received_at)
    unknown = set(data) - EVENT_FIELDS
    if unknown:
        raise Rejected("unknown_field", f"unknown fields {sorted(unknown)[:5]}")
    missing = EVENT_FIELDS - set(data) - {"trust_version"}
    if missing:
        raise Rejected("missing_field", f"missing fields {sorted(missing)}")
    try:
        return Event(device, checkpoint, data["seq"], parse_time(data["ts"]), data["result"],
                     data["reason"], data["policy"], data.get("trust_version"), received_at)
    except InvalidRecord as e:
        raise Rejected("bad_field", str(e)) from None


def _parse_decision(checkpoint: str, device: str, data: dict[str, Any], received_at: datetime) -> Event:
    missing = {"seq", "ts", "outcome", "reason", "officer", "policy"} - set(data)
    if missing:
        raise Rejected("missing_field", f"missing fields {sorted(missing)}")
    try:
        fields = validate_decision({k: v for k, v in data.items() if k not in ("seq", "ts")})
        return Event(device, checkpoint, data["seq"], parse_time(data["ts"]), counted_as(fields), fields["reason"],
                     fields["policy"], fields["trust_version"], received_at, fields["outcome"], fields["officer"],
                     fields["follows_seq"], fields["follows_result"], fields["follows_reason"])
    except (DecisionFieldError, InvalidRecord) as e:
        raise Rejected("bad_field", str(e)) from None


def _number(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise Rejected("bad_field", f"status {name} must be a number")
    return kind(value)


def parse_status(payload: bytes) -> StatusUpdate:
    """Validate a status payload (online health, or the offline last will)."""
    data = _json_object(payload, STATUS_FIELDS)
    state = data.get("state")
    if state not in STATES:
        raise Rejected("bad_field", "status state must be online or offline")
    software = data.get("software")
    if software is not None and (not isinstance(software, str) or len(software) > 64):
        raise Rejected("bad_field", "status software must be a short string")
    node = data.get("broker")  # which node of a clustered broker the unit is on
    if node is not None and (not isinstance(node, str) or not _NODE_RE.match(node)):
        raise Rejected("bad_field", "status broker must be a host:port")
    clock = data.get("clock")
    if clock is not None and clock not in CLOCK_STATES:
        raise Rejected("bad_field", f"status clock must be one of {', '.join(CLOCK_STATES)}")
    pins = _pins(data.get("pins"))
    return StatusUpdate(
        state=state, software=software, trust_version=_number(data, "trust_version", int),
        trust_age_s=_number(data, "trust_age_s", float), backlog=_number(data, "backlog", int),
        clock=clock, fps=_number(data, "fps", float), temperature_c=_number(data, "temperature_c", float),
        uptime_s=_number(data, "uptime_s", float), broker=node, **pins,
    )


def _pins(value: Any) -> dict[str, Any]:
    """The status's `pins` (wrong PINs and lock-outs at the unit) as StatusUpdate fields: counts
    and staff ids only; anything else in it refuses the status."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not set(value) <= PIN_FIELDS:
        raise Rejected("bad_field", f"status pins must be an object of {', '.join(sorted(PIN_FIELDS))}")
    counts = {}
    for name in ("wrong_hour", "wrong_total", "lockouts"):
        n = _number(value, name, int)
        if n is not None and not 0 <= n <= 10**9:
            raise Rejected("bad_field", f"status pins.{name} must be a count")
        counts[name] = n
    locked = value.get("locked")
    if locked is not None and not isinstance(locked, bool):
        raise Rejected("bad_field", "status pins.locked must be true or false")
    ids = value.get("officers", [])
    if (not isinstance(ids, list) or len(ids) > PIN_IDS_MAX
            or not all(isinstance(i, str) and _OFFICER_ID_RE.match(i) for i in ids)):
        raise Rejected("bad_field", f"status pins.officers must list at most {PIN_IDS_MAX} staff ids")
    return {"pin_wrong_hour": counts["wrong_hour"], "pin_wrong_total": counts["wrong_total"],
            "pin_lockouts": counts["lockouts"], "pin_locked": locked, "pin_officers": ",".join(ids) if ids else None}


@dataclass
class IngestStats:
    """Counters since start (read by tests, the bench and the log)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    commits: int = 0
    acks: int = 0
    """Ack messages published to units (one per device per batch, more for very long ones)."""

    @property
    def rejected_total(self) -> int:
        """All rejected messages."""
        return sum(self.rejected.values())


@dataclass
class _Item:
    generation: int
    mid: int
    qos: int
    event: Event | None = None
    status: tuple[str, StatusUpdate, datetime] | None = None
    rejected: str | None = None
    token: Any = None  # what the transport needs to acknowledge it (a JetStream message)


class Ingest:
    """Subscribes to every unit's events and status and writes them to the store in batches."""

    def __init__(self, store: Store, config: DashboardConfig, client_id: str | None = None, worker: int = 1) -> None:
        self.store = store
        self.config = config
        self.stats = IngestStats()
        self.worker = worker
        self.shared = config.ingest.workers > 1
        # A worker logs in with its own account (the broker makes the username the client id).
        self._account = dataclasses.replace(
            config.mqtt.ingest, username=config.ingest.worker_username(config.mqtt.ingest.username, worker))
        if self.shared and not store.shared:
            raise broker.BrokerError("several ingest workers need a store they can share: set store.url"
                                     " to a PostgreSQL database")
        self._client_id = client_id or (self._account.username if self.shared else config.mqtt.client_id)
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._stop = threading.Event()
        self._accepting = threading.Event()
        self._connected = threading.Event()
        self._connected_or_refused = threading.Event()
        self._refused: str | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._devices: dict[str, str] = {}
        self._devices_loaded_at = 0.0
        self._reject_log: tuple[int, int] = (0, 0)
        self._writer: threading.Thread | None = None
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
        events = f"{broker.TOPIC_ROOT}/+/+/event"
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

    def _shutdown_writer(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout)
            self._writer = None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every message taken so far is committed (for tests and the bench)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

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
        client.subscribe([(self.event_filter(), opts), ("chot/v1/+/+/status", opts)])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self._accepting.is_set():
            moved = broker.next_address(client, self.config.mqtt)
            if moved:
                logger.info("ingest: broker unreachable, trying %s", moved)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting.is_set():
            return  # not acknowledged: the broker delivers it again to the next session
        self.stats.received += 1
        item = _Item(self._generation, msg.mid, msg.qos)
        try:
            self._parse(msg.topic, msg.payload, item)
        except Rejected as e:
            item.rejected = e.reason
            self._reject(e.reason, msg.topic, str(e))
        self._queue.put(item)  # rejected ones too: acknowledged in order, after what came before

    def _parse(self, topic: str, payload: bytes, item: _Item) -> None:
        match = _TOPIC_RE.match(topic)
        if match is None:
            raise Rejected("bad_topic", "topic is not chot/v1/<checkpoint>/<device>/event|status")
        checkpoint, device, kind = match.groups()
        registered = self._checkpoint_of(device, checkpoint)
        if registered is None:
            raise Rejected("unregistered_device", "device is not registered")
        if registered != checkpoint:
            raise Rejected("wrong_checkpoint", f"device is registered at {registered}")
        now = datetime.now(timezone.utc)
        if kind == "event":
            item.event = parse_event(checkpoint, device, payload, now)
        elif payload:  # an empty retained message only clears the topic
            item.status = (device, parse_status(payload), now)

    def _reject(self, reason: str, topic: str, message: str) -> None:
        self.stats.rejected[reason] += 1
        minute = int(time.monotonic() // 60)
        seen_minute, count = self._reject_log
        count = count + 1 if seen_minute == minute else 1
        self._reject_log = (minute, count)
        if count <= _REJECT_LOG_PER_MINUTE:
            logger.warning("rejected message on %s: %s (%s)", topic[:200], message, reason)
        elif count == _REJECT_LOG_PER_MINUTE + 1:
            logger.warning("more rejected messages this minute; see the rejected counters")

    # -- registry cache ----------------------------------------------------------------------
    def _checkpoint_of(self, device: str, topic_checkpoint: str) -> str | None:
        self._refresh_devices()
        checkpoint = self._devices.get(device)
        if checkpoint != topic_checkpoint:
            # Registered or moved since the cache was read? Ask the store (rare: the broker's
            # ACL already keeps unknown units out).
            found = self.store.get_device(device)
            checkpoint = found.checkpoint if found is not None else None
            if checkpoint is not None:
                self._devices[device] = checkpoint
        return checkpoint

    def _refresh_devices(self, force: bool = False) -> None:
        if force or time.monotonic() - self._devices_loaded_at >= self.config.ingest.device_refresh_s:
            self._devices = {d.id: d.checkpoint for d in self._list_devices()}
            self._devices_loaded_at = time.monotonic()

    def _list_devices(self) -> list[Any]:
        return self.store.list_devices(Scope.all())

    # -- writer thread -----------------------------------------------------------------------
    def _take_batch(self) -> list[_Item]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.config.ingest.batch_max
        deadline = time.monotonic() + self.config.ingest.batch_wait_s
        while len(batch) < limit:
            # Wait up to the deadline for more (one commit for many); after it, take only what is there.
            remaining = 0.0 if self._stop.is_set() else deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            try:
                self._commit_with_retry(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _commit_with_retry(self, batch: list[_Item]) -> None:
        """Commit, retrying while the store refuses (e.g. locked); unacked messages stay safe."""
        attempt = 0
        while True:
            try:
                self._commit(batch)
                return
            except StoreUnavailable as e:
                # The database is away: nothing is acknowledged, so units keep their events and the
                # broker holds the rest back; this loop carries on by itself once it returns.
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    logger.warning("store unavailable, %d messages wait (attempt %d): %s", len(batch), attempt, e)
            except Exception:  # noqa: BLE001 - the ingest must outlive a bad moment of its store
                attempt += 1
                logger.exception("could not store a batch of %d messages (attempt %d)", len(batch), attempt)
            if self._stop.wait(min(5.0, 0.5 * attempt)):
                logger.warning("stopping with %d messages not stored: the broker resends them", len(batch))
                return

    def _commit(self, batch: list[_Item]) -> None:
        events = [item.event for item in batch if item.event is not None]
        if events:
            new = self.store.record_events(events)
            self.stats.stored += new
            self.stats.duplicates += len(events) - new
        for item in batch:
            if item.status is not None:
                device, status, at = item.status
                if self.store.record_status(device, status, at):
                    self.stats.statuses += 1
        # Last: a failure before this line retries the batch, and only events are deduplicated.
        rejects = Counter(item.rejected for item in batch if item.rejected is not None)
        if rejects:
            self.store.record_rejects(rejects)
        self.stats.commits += 1
        self._ack(batch)
        self._acknowledge_units(events)

    def _acknowledge_units(self, events: list[Event]) -> None:
        """Tell each unit which of its seqs are stored now, new and duplicate alike (a unit that
        sends an event again has not heard the first ack). Nothing but seqs goes out."""
        client = self._client
        if client is None or not events:
            return
        for (checkpoint, device), seqs in self._seqs_by_unit(events).items():
            for payload in ack_payloads(seqs):
                # Queued by paho if the link is down; a lost ack only means the unit resends.
                client.publish(ack_topic(checkpoint, device), payload, qos=1)
                self.stats.acks += 1

    @staticmethod
    def _seqs_by_unit(events: list[Event]) -> dict[tuple[str, str], list[int]]:
        """(checkpoint, device) -> the seqs of its events in a batch."""
        by_unit: dict[tuple[str, str], list[int]] = {}
        for event in events:
            by_unit.setdefault((event.checkpoint, event.device), []).append(event.seq)
        return by_unit

    def _ack(self, batch: list[_Item]) -> None:
        client = self._client
        generation = self._generation
        if client is None:
            return
        for item in batch:
            # A message from an earlier connection is redelivered by the broker: no stale ack.
            if item.qos > 0 and item.generation == generation:
                client.ack(item.mid, item.qos)


def make_ingest(store: Store, config: DashboardConfig, worker: int = 1) -> Ingest:
    """The MQTT ingest (worker `worker` of several), or on the national cluster (mqtt.nats_urls
    set) a worker of the JetStream consumer."""
    if config.mqtt.nats_urls:
        from dashboard.ingest_jetstream import JetStreamIngest  # noqa: PLC0415 - needs nats-py

        return JetStreamIngest(store, config, worker=worker)
    return Ingest(store, config, worker=worker)


def run_ingest(store: Store, config: DashboardConfig, stop: threading.Event, report_every_s: float = 60.0,
               worker: int = 1) -> IngestStats:
    """Run the ingest (or worker `worker` of several) until `stop` is set, logging its counters
    now and then (the CLI's loop)."""
    ingest = make_ingest(store, config, worker)
    ingest.start()
    try:
        while not stop.wait(report_every_s):
            s = ingest.stats
            logger.info("ingest: %d received, %d stored, %d duplicates, %d statuses, %d rejected",
                        s.received, s.stored, s.duplicates, s.statuses, s.rejected_total)
    finally:
        ingest.stop()
    return ingest.stats
