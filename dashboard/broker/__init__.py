"""The central's broker: accounts, grants and config files, one module per backend.

`base` holds the `Broker` interface and what every backend shares (password files, `BrokerError`,
`DeviceGrant`, the MQTT client the ingest and the dashboard log in with); `mosquitto` is the
embedded default, `nats` the national cluster. `make_broker(config)` is the one place that reads
`broker.kind`.
"""

from __future__ import annotations

from dashboard.broker.base import (
    Broker, BrokerError, DeviceGrant, connect_first, mqtt_client, new_password, next_address, read_password_file,
    write_private,
)
from dashboard.broker.mosquitto import MosquittoBroker
from dashboard.broker.nats import NatsBroker
from dashboard.config import DashboardConfig

__all__ = ["Broker", "BrokerError", "DeviceGrant", "connect_first", "make_broker", "mqtt_client", "new_password",
           "next_address", "read_password_file", "write_private"]


def make_broker(config: DashboardConfig) -> Broker:
    """The backend `broker.kind` names: "mosquitto" (one broker) or "nats" (the national cluster)."""
    if config.broker.kind == "nats":
        return NatsBroker(config.broker)
    return MosquittoBroker(config.broker)
