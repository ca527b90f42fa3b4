"""Registering and revoking units: the store's registry plus the broker's password and ACL files."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dashboard import broker
from dashboard.config import DashboardConfig
from dashboard.scope import Scope
from dashboard.store import Store, UnknownDevice, check_id
from protocol import topics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """A unit's MQTT login; the password exists only here, to be shown once."""

    device: str
    checkpoint: str
    password: str

    def topic_prefix(self) -> str:
        """Where this unit may publish."""
        return topics.unit(self.checkpoint, self.device)


def ingest_usernames(config: DashboardConfig) -> list[str]:
    """The MQTT accounts of every ingest worker (one unless `ingest.workers` says more)."""
    base = config.mqtt.ingest.username
    return [config.ingest.worker_username(base, k) for k in range(1, config.ingest.workers + 1)]


def sync_acl(store: Store, config: DashboardConfig) -> None:
    """Rewrite the ACL (Mosquitto) or the accounts file (NATS) from the registry, its source of truth."""
    grants = [broker.DeviceGrant(d.id, d.checkpoint) for d in store.list_devices(Scope.all())]
    broker.make_broker(config).write_grants(ingest_usernames(config), config.mqtt.dashboard.username, grants)


def reload_broker(config: DashboardConfig) -> bool:
    """Make the running broker (every local NATS node) reread its files; False if none runs here."""
    return broker.make_broker(config).reload()


def add_device(
    store: Store,
    config: DashboardConfig,
    device_id: str,
    checkpoint: str,
    district: str | None = None,
    province: str | None = None,
    checkpoint_name: str | None = None,
    policy: str | None = None,
    reload: bool = True,
) -> Credentials:
    """Register (or re-key) a unit, write its password and ACL entry, reload the broker."""
    check_id("device", device_id)
    if device_id in (*ingest_usernames(config), config.mqtt.dashboard.username):
        raise broker.BrokerError(f"{device_id!r} is a service account name, not a device id")
    if district is not None and province is not None:
        store.upsert_checkpoint(checkpoint, checkpoint_name or checkpoint, district, province, policy)
    store.add_device(device_id, checkpoint)
    password = broker.new_password()
    broker.make_broker(config).set_password(device_id, password)
    sync_acl(store, config)
    if reload:
        reload_broker(config)
    logger.info("device %s registered at checkpoint %s", device_id, checkpoint)
    return Credentials(device_id, checkpoint, password)


def rotate_password(store: Store, config: DashboardConfig, device_id: str, reload: bool = True) -> Credentials:
    """A new password for a registered unit; the old one stops working at the broker's reload.

    Raises UnknownDevice for a unit that is not registered. Both brokers close the unit's open
    connection at the reload (Mosquitto 2.0 and NATS check every client against the new files),
    so the unit is offline until it has the new password.
    """
    device = store.get_device(device_id)
    if device is None:
        raise UnknownDevice(device_id)
    password = broker.new_password()
    broker.make_broker(config).set_password(device_id, password)
    sync_acl(store, config)
    if reload:
        reload_broker(config)
    logger.info("device %s has a new password", device_id)
    return Credentials(device_id, device.checkpoint, password)


def remove_device(store: Store, config: DashboardConfig, device_id: str, reload: bool = True) -> bool:
    """Revoke a unit: forget it, delete its password and ACL entry, reload; False if unknown.

    When its checkpoint has officers, a new roster leaving the unit out goes out first, while the
    unit can still hear it: a connected unit stops taking decisions at once, an unreachable one
    when its roster expires."""
    device = store.get_device(device_id)
    known = store.remove_device(device_id)
    if known and device is not None and store.list_officers(Scope.of(checkpoints=[device.checkpoint])):
        from dashboard import officers, trust  # noqa: PLC0415 - only when there are officers

        try:
            officers.publish_roster(store, config, device.checkpoint)
        except (officers.OfficerError, trust.TrustPublishError) as e:
            logger.error("device %s revoked, but the roster for %s was not published: %s", device_id,
                         device.checkpoint, e)
    had_password = broker.make_broker(config).delete_password(device_id)
    sync_acl(store, config)
    if reload:
        reload_broker(config)
    if known or had_password:
        logger.info("device %s revoked", device_id)
    return known or had_password


def set_service_password(config: DashboardConfig, account: str, password: str) -> None:
    """Set the ingest's or the dashboard's broker password ("ingest" or "dashboard")."""
    names = {"ingest": config.mqtt.ingest.username, "dashboard": config.mqtt.dashboard.username}
    if account not in names:
        raise ValueError(f"account must be ingest or dashboard, got {account!r}")
    backend = broker.make_broker(config)
    for username in ingest_usernames(config) if account == "ingest" else [names[account]]:
        backend.set_password(username, password)  # workers share it


def init_broker(store: Store, config: DashboardConfig) -> dict[str, str]:
    """Write the broker config, the service accounts and the ACL; returns passwords it had to make.

    Service passwords come from the config (credential, env or file); a missing one is kept if the
    password file already has it, else generated and returned so the caller can show it once.
    """
    backend = broker.make_broker(config)
    backend.write_config()
    existing = broker.read_password_file(backend.password_file)
    made: dict[str, str] = {}
    for name, account in (("ingest", config.mqtt.ingest), ("dashboard", config.mqtt.dashboard)):
        password = account.resolved_password()
        if not password:
            if account.username in existing:
                if name == "ingest" and not set(ingest_usernames(config)) <= set(existing):
                    logger.warning("ingest worker accounts are missing and the ingest password is not"
                                   " configured: set $%s and run init again", account.password_env)
                continue  # running init again must not lock out the running ingest
            password = made[name] = broker.new_password()
        set_service_password(config, name, password)
    sync_acl(store, config)
    return made
