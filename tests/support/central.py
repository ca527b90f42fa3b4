"""The central service in a test: config in a tmp folder, the shipped broker config, a real store.

The `central` fixture runs on each store backend (SQLite file, PostgreSQL database: see
tests/support/stores.py); `start_central(..., store_target=url)` puts one on PostgreSQL.

`start_central(tmp_path, mosquitto_factory)` renders firmware-config/mosquitto/ through
dashboard.broker (so the tested config is the shipped one), starts Mosquitto from it and returns
a `Central` with the config, the store and the broker. Add units with `central.add_device(...)`.
"""

from __future__ import annotations

import getpass
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dashboard.config import DashboardConfig, parse_config
from dashboard.devices import Credentials, add_device, init_broker
from dashboard.store import Store, is_postgres_url, open_store
from tests.support.broker import Mosquitto, free_port


@dataclass
class Central:
    """A running central broker with its store and config."""

    config: DashboardConfig
    store: Store
    broker: Mosquitto

    @property
    def target(self) -> str:
        """The store's SQLite path or PostgreSQL URL (what `open_store` takes)."""
        return self.config.store_target()

    @property
    def port(self) -> int:
        return self.broker.port

    def add_device(self, device: str, checkpoint: str, district: str = "001", province: str = "01",
                   name: str | None = None) -> Credentials:
        reloads = self._reloads()
        creds = add_device(self.store, self.config, device, checkpoint, district, province, name)
        # SIGHUP is asynchronous: wait until the broker has reread its password and ACL files,
        # or a unit connecting at once is refused under load (a race of the test, not of units,
        # which retry with backoff).
        if self.broker.running:
            wait_until(lambda: self._reloads() > reloads, timeout=10)
        return creds

    def _reloads(self) -> int:
        log = self.config.broker.log_file
        try:
            return log.read_text(errors="replace").count("Reloading config.") if log else 0
        except FileNotFoundError:
            return 0


def central_config(tmp_path: Path, port: int, **overrides: Any) -> DashboardConfig:
    """A config whose every file lives under tmp_path and whose broker listens on `port`."""
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "central"),
        "mqtt": {"port": port,
                 "ingest": {"username": "chot-ingest", "password": secrets.token_urlsafe(12)},
                 "dashboard": {"username": "chot-dashboard", "password": secrets.token_urlsafe(12)}},
        "broker": {"listen_port": port, "user": getpass.getuser()},
        "ingest": {"device_refresh_s": 0.5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return parse_config(data)


def start_central(tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto], *, store_target: str | None = None,
                  **overrides: Any) -> Central:
    """Render the shipped broker config, start Mosquitto from it, open the store (SQLite in the
    data folder, or the PostgreSQL database `store_target` names)."""
    port = free_port()
    if store_target is not None and is_postgres_url(store_target):
        overrides["store"] = {**overrides.get("store", {}), "url": store_target}
    config = central_config(tmp_path, port, **overrides)
    store = open_store(config.store_target())
    init_broker(store, config)
    assert config.broker.mosquitto_conf is not None
    broker = mosquitto_factory(conf_text=config.broker.mosquitto_conf.read_text(), port=port)
    return Central(config, store, broker)


@pytest.fixture
def central(tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto], store_target: str) -> Iterator[Central]:
    """A running central on each store backend (import this fixture into a test module to use it)."""
    c = start_central(tmp_path, mosquitto_factory, store_target=store_target)
    yield c
    c.store.close()


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll `check` every 50 ms until it is true or `timeout` passes; returns its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
