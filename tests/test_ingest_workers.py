"""Several ingest workers on one PostgreSQL store, sharing the events through an MQTT shared
subscription on the real Mosquitto of the shipped config: each event stored once, every copy
acknowledged to its unit, a stopped worker's share taken by the others."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from dashboard.broker import BrokerError
from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from dashboard.store import Store, open_store
from tests.support.central import Central, start_central, wait_until
from tests.test_dashboard_ingest import DAY, Unit, stored_total

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

WORKERS = 3


class AckedUnit(Unit):
    """A unit that also hears the central's acks on its own ack topic."""

    def __init__(self, central: Central, device: str, password: str | None) -> None:
        self.acked: list[int] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        super().__init__(central, device, password)
        self.client.on_message = self._on_ack
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        assert self.connected.wait(10)
        self.client.subscribe(self.topic("ack"), qos=1)
        assert self.subscribed.wait(10)

    def _on_ack(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            for first, last in json.loads(msg.payload)["seqs"]:
                self.acked.extend(range(first, last + 1))

    def acks_of(self, seq: int) -> int:
        with self._lock:
            return self.acked.count(seq)


@pytest.fixture
def shared_central(tmp_path: Path, mosquitto_factory: Callable[..., Any], postgres_url: str) -> Iterator[Central]:
    c = start_central(tmp_path, mosquitto_factory, store_target=postgres_url, ingest={"workers": WORKERS})
    yield c
    c.store.close()


@pytest.fixture
def workers(shared_central: Central) -> Iterator[list[MqttIngest]]:
    """Each worker with a store of its own, as separate processes have."""
    stores: list[Store] = []
    started: list[MqttIngest] = []
    for k in range(1, WORKERS + 1):
        stores.append(open_store(shared_central.target))
        ingest = MqttIngest(stores[-1], shared_central.config, worker=k)
        ingest.start()
        started.append(ingest)
    yield started
    for ingest in started:
        ingest.stop()
    for store in stores:
        store.close()


def test_workers_share_the_events_and_count_each_once(shared_central: Central, workers: list[MqttIngest]) -> None:
    assert [w.event_filter() for w in workers] == ["$share/chot-ingest/chot/v1/+/+/event"] * WORKERS
    units = [AckedUnit(shared_central, d, shared_central.add_device(d, "IC7").password) for d in ("u1", "u2")]
    for unit in units:
        unit.events(range(1, 151))
    assert wait_until(lambda: stored_total(shared_central.store) == 300, 30)
    assert wait_until(lambda: all(sorted(set(u.acked)) == list(range(1, 151)) for u in units), 30)
    stored = [w.stats.stored for w in workers]
    assert sum(stored) == 300 and all(n > 0 for n in stored), stored  # each took a share
    # Resends after a lost ack: wherever they land they are duplicates, and acknowledged again.
    units[0].events(range(1, 31))
    assert wait_until(lambda: sum(w.stats.duplicates for w in workers) == 30, 30)
    assert wait_until(lambda: all(units[0].acks_of(s) >= 2 for s in range(1, 31)), 30)
    assert stored_total(shared_central.store) == 300
    assert [g.counts.total for g in shared_central.store.totals_by(Scope.all(), *DAY, "checkpoint")] == [300]
    for unit in units:
        unit.close()


def test_a_stopped_workers_share_goes_to_the_others(shared_central: Central, workers: list[MqttIngest]) -> None:
    unit = AckedUnit(shared_central, "u1", shared_central.add_device("u1", "IC7").password)
    unit.events(range(1, 31))
    assert wait_until(lambda: stored_total(shared_central.store) == 30, 30)
    workers[1].stop()  # worker 2 goes away (an upgrade, a crash)
    before = [w.stats.stored for w in workers]
    unit.events(range(31, 91))
    assert wait_until(lambda: stored_total(shared_central.store) == 90, 30)
    assert wait_until(lambda: sorted(set(unit.acked)) == list(range(1, 91)), 30)
    assert workers[1].stats.stored == before[1]  # nothing went to the stopped one
    assert sum(w.stats.stored for w in workers) == 90
    unit.close()


def test_a_copy_reaching_two_workers_is_stored_once_and_acknowledged_by_both(
        shared_central: Central, workers: list[MqttIngest]) -> None:
    unit = AckedUnit(shared_central, "u1", shared_central.add_device("u1", "IC7").password)
    for w in workers[1:]:
        w.stop()  # only worker 1 is there for the first copy...
    unit.events([7])
    assert wait_until(lambda: unit.acks_of(7) == 1, 20)
    workers[0].stop()
    workers[2].start()  # ...and only worker 3 for the second (a resend after a lost ack)
    unit.events([7])
    assert wait_until(lambda: unit.acks_of(7) == 2, 20)
    assert (workers[0].stats.stored, workers[2].stats.stored, workers[2].stats.duplicates) == (1, 0, 1)
    assert stored_total(shared_central.store) == 1
    unit.close()


def test_several_workers_need_a_shared_store(tmp_path: Path, mosquitto_factory: Callable[..., Any]) -> None:
    central = start_central(tmp_path, mosquitto_factory, ingest={"workers": 2})  # SQLite
    with pytest.raises(BrokerError, match="PostgreSQL"):
        MqttIngest(central.store, central.config, worker=2)
    with pytest.raises(ValueError, match="worker must be 1-2"):
        MqttIngest(central.store, central.config, worker=3)
    central.store.close()
