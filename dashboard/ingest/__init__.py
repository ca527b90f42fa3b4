"""The central's ingest: units' events and status into the store, one module per transport.

`base` holds what every transport shares (parsing against protocol/, batching, commits, the
units' acks); `mqtt` reads the broker over MQTT (one persistent session, or workers on a shared
subscription); `jetstream` pulls the national cluster's replicated event stream. `make_ingest`
is the one place that picks a transport from the config.
"""

from __future__ import annotations

import logging
import threading

from dashboard.config import DashboardConfig
from dashboard.ingest.base import Ingest, IngestStats, Item, Rejected, parse_event, parse_status
from dashboard.ingest.jetstream import JetStreamIngest
from dashboard.ingest.mqtt import MqttIngest
from dashboard.store import Store

__all__ = ["Ingest", "IngestStats", "Item", "JetStreamIngest", "MqttIngest", "Rejected", "make_ingest",
           "parse_event", "parse_status", "run_ingest"]

logger = logging.getLogger(__name__)


def make_ingest(store: Store, config: DashboardConfig, worker: int = 1) -> Ingest:
    """The MQTT ingest (worker `worker` of several), or on the national cluster (mqtt.nats_urls
    set) a worker of the JetStream consumer."""
    if config.mqtt.nats_urls:
        return JetStreamIngest(store, config, worker=worker)
    return MqttIngest(store, config, worker=worker)


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
