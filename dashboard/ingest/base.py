"""The ingest's shared part: units' events and status from a transport into the store, exactly once.

Messages are acknowledged to the transport only after the batch holding them is committed, so
a crash between receipt and commit means a redelivery, which the store's unique (device, seq)
turns into nothing. Bad messages are counted as rejected with a log line naming the reason and
topic; their payload is never logged. After each commit the ingest tells every unit in the
batch which of its seqs are now stored (protocol.ack), duplicates included: a unit keeps each
event until then, so a broker that dies before delivering what it had acknowledged to the unit
loses nothing (scanner/mqtt.py sends it again).

Each transport is a module of this package (`mqtt.py`, `jetstream.py`) subclassing `Ingest`;
`dashboard.ingest.make_ingest` picks one from the config.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import protocol.events
import protocol.status
from dashboard import broker
from dashboard.config import DashboardConfig
from dashboard.scope import Scope
from dashboard.store import Event, InvalidRecord, StatusUpdate, Store, StoreUnavailable
from protocol import topics
from protocol.message import Rejected

logger = logging.getLogger(__name__)

_REJECT_LOG_PER_MINUTE = 50


def parse_event(checkpoint: str, device: str, payload: bytes, received_at: datetime) -> Event:
    """Validate an event payload (a verdict, or an officer's decision with `kind`) against the v1
    contract (protocol.events) and build the stored record."""
    fields = protocol.events.parse_event(payload)
    try:
        return Event(device, checkpoint, received_at=received_at, **fields)
    except InvalidRecord as e:
        raise Rejected("bad_field", str(e)) from None


def parse_status(payload: bytes) -> StatusUpdate:
    """Validate a status payload (online health, or the offline last will; protocol.status)."""
    return StatusUpdate(**protocol.status.parse_status(payload))


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
class Item:
    """One message taken from the transport, parsed, waiting for its batch's commit."""

    generation: int
    mid: int
    qos: int
    event: Event | None = None
    status: tuple[str, StatusUpdate, datetime] | None = None
    rejected: str | None = None
    token: Any = None  # what the transport needs to acknowledge it (a JetStream message)


class Ingest(ABC):
    """Takes every unit's events and status from a transport and writes them to the store in
    batches; the transport (MQTT, JetStream) says how messages come in and are acknowledged."""

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
        self._queue: queue.Queue[Item] = queue.Queue()
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

    # -- lifecycle (each transport) -----------------------------------------------------------
    @abstractmethod
    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and start the writer; raises broker.BrokerError if no connection."""

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, commit and acknowledge what was taken, then disconnect."""

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

    def _parse(self, topic: str, payload: bytes, item: Item) -> None:
        parsed = topics.parse_unit_topic(topic)
        if parsed is None:
            raise Rejected("bad_topic", f"topic is not {topics.PREFIX}/<checkpoint>/<device>/event|status")
        checkpoint, device, kind = parsed
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
    def _take_batch(self) -> list[Item]:
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

    def _commit_with_retry(self, batch: list[Item]) -> None:
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

    def _commit(self, batch: list[Item]) -> None:
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

    @abstractmethod
    def _acknowledge_units(self, events: list[Event]) -> None:
        """Tell each unit which of its seqs are stored now, new and duplicate alike (a unit that
        sends an event again has not heard the first ack). Nothing but seqs goes out."""

    @staticmethod
    def _seqs_by_unit(events: list[Event]) -> dict[tuple[str, str], list[int]]:
        """(checkpoint, device) -> the seqs of its events in a batch."""
        by_unit: dict[tuple[str, str], list[int]] = {}
        for event in events:
            by_unit.setdefault((event.checkpoint, event.device), []).append(event.seq)
        return by_unit

    @abstractmethod
    def _ack(self, batch: list[Item]) -> None:
        """Acknowledge the batch's messages to the transport, once they are committed."""
