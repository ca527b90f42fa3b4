"""A NATS cluster for tests (a pytest plugin): the launcher is testbed.nats.

`nats_cluster_factory(tmp_path, users=...)` (a fixture) starts clusters and stops them at
teardown, printing each node's log when the test failed. `start_national_central` renders a
central's cluster through dashboard.devices.init_broker and starts it; `national` is one such
central (SQLite store).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.nats import NATS_SERVER, NatsCluster, NatsNodeProcess, national_broker, national_config_data
from dashboard.config import BrokerConfig

__all__ = ["NATS_SERVER", "NatsCluster", "NatsNodeProcess", "national_broker", "NationalCentral",
           "national_config", "national_config_data", "start_national_central", "nats_cluster_factory",
           "national"]


@pytest.fixture
def nats_cluster_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[BrokerConfig], NatsCluster]]:
    """Start clusters from `[broker]` configs (kind = "nats"); killed at teardown."""
    started: list[NatsCluster] = []

    def make(cfg: BrokerConfig, start: bool = True) -> NatsCluster:
        cluster = NatsCluster(cfg)
        started.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    failed = getattr(request.node, "rep_call", None)
    for cluster in started:
        if failed is not None and failed.failed:
            print(cluster.log_text()[-20000:])
        cluster.stop()


class NationalCentral:
    """A central on a running NATS cluster: config, store, cluster; `add_device` waits for the reload."""

    def __init__(self, config: Any, store: Any, cluster: NatsCluster) -> None:
        self.config = config
        self.store = store
        self.cluster = cluster

    def reloads(self) -> int:
        return sum(n.log_text().count("Reloaded server configuration") for n in self.cluster.nodes if n.running)

    def wait_reloaded(self, before: int) -> None:
        """Until every running node has reread the accounts file once more than at `before`."""
        want = before + sum(1 for n in self.cluster.nodes if n.running)
        deadline = time.monotonic() + 15
        while self.reloads() < want and time.monotonic() < deadline:
            time.sleep(0.05)

    def add_device(self, device: str, checkpoint: str, district: str = "001", province: str = "01") -> Any:
        from dashboard.devices import add_device  # noqa: PLC0415

        before = self.reloads()
        creds = add_device(self.store, self.config, device, checkpoint, district, province)
        self.wait_reloaded(before)
        return creds


def national_config(tmp_path: Path, **overrides: Any) -> Any:
    """A central config on a 3-node cluster under tmp_path (MQTT 3.1.1, every node listed)."""
    from dashboard.config import parse_config  # noqa: PLC0415

    return parse_config(national_config_data(tmp_path, **overrides))


def start_national_central(tmp_path: Path, factory: Callable[[BrokerConfig], NatsCluster],
                           **overrides: Any) -> NationalCentral:
    """Render the cluster's files through dashboard.devices.init_broker, start the 3 nodes."""
    from dashboard.devices import init_broker  # noqa: PLC0415
    from dashboard.store import open_store  # noqa: PLC0415

    config = national_config(tmp_path, **overrides)
    store = open_store(config.database)
    init_broker(store, config)
    return NationalCentral(config, store, factory(config.broker))


@pytest.fixture
def national(tmp_path: Path, nats_cluster_factory: Callable[[BrokerConfig], NatsCluster]) -> Iterator[NationalCentral]:
    """A central on a running 3-node cluster (SQLite store)."""
    c = start_national_central(tmp_path, nats_cluster_factory)
    yield c
    c.store.close()
