"""The ingest on the national cluster: events read from a JetStream stream shared by every worker.

NATS 2.9's MQTT side has no shared subscriptions (`$share/...` is taken as a literal topic), so
several workers cannot split one MQTT session's events. Instead the cluster keeps the units'
event and status subjects in a replicated work-queue stream (`CHOT_EVENTS`), and every worker
pulls from one durable consumer: each message goes to one worker, and is removed only when that
worker acknowledges it, after the batch holding it is committed. A worker that dies leaves its
unacknowledged messages to be redelivered (`ack_wait`) to the others; the store's unique
(device, seq) absorbs what was committed but not yet acknowledged.

Validation, batching, commits and the units' end-to-end acks are the shared ingest's
(`dashboard.ingest.base.Ingest`); only the transport differs. Acks to units go out as plain NATS
messages on their ack subjects, which their MQTT subscriptions receive (at QoS 0: a lost one
only means the unit sends the event again, which is acknowledged again).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from dashboard import broker
from dashboard.broker import nats as natsconf
from dashboard.config import DashboardConfig
from dashboard.ingest.base import Ingest, Item, Rejected
from dashboard.store import Event, Store
from protocol import topics
from protocol.ack import encode_acks

logger = logging.getLogger(__name__)

STREAM = natsconf.EVENT_STREAM
CONSUMER = "chot-ingest"
SUBJECTS = [natsconf.wildcard(topics.ALL_EVENTS), natsconf.wildcard(topics.ALL_STATUS)]
ACK_WAIT_S = 30.0
MAX_ACK_PENDING = 20000
FETCH_WAIT_S = 0.05


def topic(subject: str) -> str:
    """The MQTT topic of a NATS subject (the inverse of dashboard.broker.nats.subject)."""
    return "/".join(subject.replace("//", "\0").split(".")).replace("\0", ".")


class JetStreamIngest(Ingest):
    """The ingest reading `CHOT_EVENTS` through the shared durable consumer (one per worker process)."""

    def __init__(self, store: Store, config: DashboardConfig, client_id: str | None = None, worker: int = 1) -> None:
        super().__init__(store, config, client_id, worker=worker)
        if not config.mqtt.nats_urls:
            raise broker.BrokerError("the JetStream ingest needs mqtt.nats_urls (the cluster's NATS addresses)")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Any = None
        self._started = threading.Event()
        self._failure: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Connect, make sure the stream and the consumer exist, start pulling and writing."""
        self._refresh_devices(force=True)
        self._stop.clear()
        self._accepting.set()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ingest-nats", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._pull_loop(), self._loop)
        if not self._started.wait(timeout) or self._failure:
            why = self._failure or f"no answer in {timeout:.0f} s"
            self.stop()
            raise broker.BrokerError(f"the ingest could not read the cluster's event stream: {why}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling, commit and acknowledge what was taken, then disconnect."""
        self._accepting.clear()
        self._shutdown_writer(timeout)
        loop = self._loop
        if loop is not None:
            if self._nc is not None:
                try:
                    asyncio.run_coroutine_threadsafe(self._nc.drain(), loop).result(timeout)
                except Exception:  # noqa: BLE001 - closing anyway
                    logger.debug("NATS drain did not finish cleanly", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout)
            loop.close()
        self._loop = self._thread = self._nc = None
        self._connected.clear()

    # -- the NATS side (asyncio thread) --------------------------------------------------------
    async def _connect(self) -> Any:
        import nats  # noqa: PLC0415 - the national profile only

        account = self._account  # each worker its own login, with the ingest's permissions
        password = account.resolved_password()
        if not password:
            raise broker.BrokerError(f"no password for {account.username}")

        async def disconnected() -> None:
            self._connected.clear()
            if self._accepting.is_set():
                logger.warning("ingest lost its NATS node; reconnecting to another")

        async def reconnected() -> None:
            self._connected.set()
            logger.info("ingest reconnected to %s", self._nc.connected_url.netloc if self._nc else "?")

        return await nats.connect(servers=self.config.mqtt.nats_urls, user=account.username, password=password,
                                  name=self._client_id, allow_reconnect=True, max_reconnect_attempts=-1,
                                  reconnect_time_wait=0.5, connect_timeout=5,
                                  disconnected_cb=disconnected, reconnected_cb=reconnected)

    async def _ensure_stream(self, js: Any) -> Any:
        from nats.js import api  # noqa: PLC0415
        from nats.js.errors import BadRequestError, NotFoundError  # noqa: PLC0415

        replicas = max(1, min(3, len(self.config.mqtt.nats_urls)))
        stream = api.StreamConfig(name=STREAM, subjects=SUBJECTS, retention=api.RetentionPolicy.WORK_QUEUE,
                                  storage=api.StorageType.FILE, num_replicas=replicas)
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            try:
                await js.add_stream(stream)
            except BadRequestError:
                pass  # another worker made it at the same moment
        consumer = api.ConsumerConfig(durable_name=CONSUMER, ack_policy=api.AckPolicy.EXPLICIT,
                                      ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
                                      num_replicas=replicas)
        await js.add_consumer(STREAM, consumer)
        return await js.pull_subscribe_bind(durable=CONSUMER, stream=STREAM)

    async def _pull_loop(self) -> None:
        import nats.errors  # noqa: PLC0415

        try:
            self._nc = await self._connect()
            js = self._nc.jetstream(timeout=10)
            sub = None
            while sub is None and self._accepting.is_set():
                try:
                    sub = await self._ensure_stream(js)
                except Exception as e:  # noqa: BLE001 - a cluster electing leaders answers late
                    logger.warning("ingest: event stream not ready (%s); retrying", e)
                    await asyncio.sleep(1.0)
        except Exception as e:  # noqa: BLE001 - reported to start()
            self._failure = str(e) or type(e).__name__
            self._started.set()
            return
        self._connected.set()
        self._started.set()
        logger.info("ingest reading stream %s through consumer %s", STREAM, CONSUMER)
        batch = self.config.ingest.batch_max
        while self._accepting.is_set():
            try:
                # A short expiry: a lingering pull returns what came within it, keeping batches
                # small and prompt when units send slower than a batch fills.
                msgs = await sub.fetch(batch, timeout=FETCH_WAIT_S)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nothing waiting: ask again
                continue
            except Exception as e:  # noqa: BLE001 - a node lost: the client reconnects, we ask again
                if self._accepting.is_set():
                    logger.warning("ingest: fetch failed (%s); asking again", e)
                    await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    self._take(msg)
                except Exception as e:  # noqa: BLE001 - e.g. the store away while checking the registry
                    # Not taken, not acknowledged: the stream hands it out again shortly.
                    logger.warning("ingest: could not take a message (%s); it is redelivered", e)
                    await self._nak(msg)

    @staticmethod
    async def _nak(msg: Any) -> None:
        try:
            await msg.nak(delay=2.0)
        except Exception:  # noqa: BLE001 - redelivered after ack_wait instead
            logger.debug("nak failed", exc_info=True)

    def _take(self, msg: Any) -> None:
        if not self._accepting.is_set():
            return  # not acknowledged: redelivered to a worker after ack_wait
        self.stats.received += 1
        item = Item(self._generation, 0, 1, token=msg)
        t = topic(msg.subject)
        try:
            self._parse(t, msg.data, item)
        except Rejected as e:
            item.rejected = e.reason
            self._reject(e.reason, t, str(e))
        self._queue.put(item)

    # -- after each commit (writer thread) -------------------------------------------------------
    def _run(self, coro: Any) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(coro, loop)
        else:
            coro.close()

    async def _ack_all(self, msgs: list[Any]) -> None:
        for msg in msgs:
            try:
                await msg.ack()
            except Exception:  # noqa: BLE001 - an ack lost is a redelivery, deduplicated
                logger.debug("ack of a stream message failed", exc_info=True)

    def _ack(self, batch: list[Item]) -> None:
        self._run(self._ack_all([item.token for item in batch if item.token is not None]))

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        for subject, payload in messages:
            try:
                await self._nc.publish(subject, payload)
            except Exception:  # noqa: BLE001 - the unit sends again and is acknowledged again
                logger.debug("ack to a unit failed", exc_info=True)

    def _acknowledge_units(self, events: list[Event]) -> None:
        if self._nc is None or not events:
            return
        messages = []
        for (checkpoint, device), seqs in self._seqs_by_unit(events).items():
            for payload in encode_acks(seqs):
                messages.append((natsconf.subject(topics.ack(checkpoint, device)), payload))
                self.stats.acks += 1
        self._run(self._publish_all(messages))
