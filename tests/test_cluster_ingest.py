"""Several ingest workers share the cluster's events through one JetStream durable consumer.

Real processes: three nats-server nodes, two `chot dashboard ingest` workers, three unit
processes, PostgreSQL. One worker is SIGKILLed and one broker node is SIGKILLed mid-run: every
event is stored exactly once and acknowledged to its unit end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common import tomlwrite
from dashboard.ingest.jetstream import topic
from dashboard.broker.nats import subject
from dashboard.scope import Scope
from tests.support.central import wait_until
from testbed.cluster_unit import UnitProcess, Worker, drain_all, stop_all, unit_config
from tests.support.nats import NatsCluster, start_national_central

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]
EVENTS = 150


def test_topics_and_subjects_map_both_ways() -> None:
    for t in ("chot/v1/IC7/u1/event", "chot/v1/IC.7/lane.1/status", "chot/v1/trust"):
        assert topic(subject(t)) == t


def test_two_workers_share_the_stream_and_survive_a_worker_and_a_node_kill(
        tmp_path: Path, postgres_url: str, nats_cluster_factory: Callable[..., NatsCluster]) -> None:
    national = start_national_central(tmp_path, nats_cluster_factory, database=postgres_url)
    conf = tmp_path / "central.toml"
    conf.write_text(tomlwrite.dumps(_same_config(national.config, postgres_url)))
    devices = [f"u{i}" for i in range(1, 4)]
    passwords = {d: national.add_device(d, "IC7").password for d in devices}
    workers = [Worker(conf, tmp_path / f"worker{i}.log") for i in (1, 2)]
    cluster = national.cluster
    units: dict[str, UnitProcess] = {}
    try:
        for w in workers:  # a slow start would be killed before it pulled anything
            assert w.wait_reading(), w.log.read_text()[-2000:]

        def stored() -> int:
            return national.store.totals(Scope.all(), *_day()).total

        units = {d: UnitProcess(unit_config(tmp_path / f"{d}.json", device=d, checkpoint="IC7",
                                            password=passwords[d], addresses=cluster.addresses(),
                                            record=EVENTS, pace=0.04, seconds=150)) for d in devices}
        assert wait_until(lambda: stored() >= 90, 90), [w.log.read_text()[-2000:] for w in workers]
        workers[0].kill()  # mid-batch: what it had taken but not acknowledged goes to the other
        cluster[2].kill()
        drain_all(units, 200)
    finally:
        stop_all(units, workers)
    events = national.store.recent_events(Scope.all(), limit=1000)
    for d in devices:
        seqs = sorted(e.seq for e in events if e.device == d)
        assert seqs == list(range(1, EVENTS + 1)), f"{d}: lost or doubled"
    assert national.store.totals(Scope.all(), *_day()).total == len(devices) * EVENTS
    national.store.close()


def _day() -> tuple[Any, Any]:
    import datetime as dt  # noqa: PLC0415

    now = dt.datetime.now(dt.timezone.utc)
    return now - dt.timedelta(days=1), now + dt.timedelta(days=1)


def _same_config(config: Any, database: str) -> dict[str, Any]:
    """The TOML data of the running central's config (the workers must see the same cluster)."""
    b, m = config.broker, config.mqtt
    return {
        "data_dir": str(config.data_dir), "database": database,
        "broker": {"kind": "nats", "nats_dir": str(b.nats_dir), "users_file": str(b.users_file),
                   "nats_password_file": str(b.nats_password_file), "max_file_store": b.max_file_store,
                   "nodes": [{"name": n.name, "mqtt_port": n.mqtt_port, "client_port": n.client_port,
                              "cluster_port": n.cluster_port, "monitor_port": n.monitor_port} for n in b.nodes]},
        "mqtt": {"host": m.host, "port": m.port, "protocol": m.protocol, "brokers": m.brokers,
                 "nats_urls": m.nats_urls,
                 "ingest": {"username": m.ingest.username, "password": m.ingest.password},
                 "dashboard": {"username": m.dashboard.username, "password": m.dashboard.password}},
        "ingest": {"device_refresh_s": 0.5},
    }
