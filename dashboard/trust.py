"""Accepting a signed trust bundle and publishing it, retained, to every unit."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from dashboard import broker
from dashboard.config import DashboardConfig
from dashboard.store import Store, TrustRecord
from protocol import topics
from verifier.bundle import BundleError, TrustBundle, parse_bundle

logger = logging.getLogger(__name__)


class TrustPublishError(Exception):
    """A bundle was refused, or could not be published; the message says why."""


def load_anchor(config: DashboardConfig) -> bytes:
    """The ministry trust-list public key (PEM) from `anchor_file`."""
    if config.anchor_file is None:
        raise TrustPublishError("no anchor_file configured: set it to the ministry trust-list public key (PEM)")
    try:
        return Path(config.anchor_file).read_bytes()
    except OSError as e:
        raise TrustPublishError(f"cannot read the anchor {config.anchor_file}: {e.strerror}") from None


def check_bundle(store: Store, config: DashboardConfig, data: bytes) -> TrustBundle:
    """Parse and verify a bundle: signed by the anchor and newer than the stored one."""
    latest = store.latest_trust_bundle()
    try:
        return parse_bundle(data, load_anchor(config), min_version=latest.version + 1 if latest else None)
    except BundleError as e:
        raise TrustPublishError(str(e)) from None
    except ValueError as e:  # an unreadable anchor
        raise TrustPublishError(f"the configured anchor is not a usable public key: {e}") from None


def publish_raw(config: DashboardConfig, raw: bytes, timeout: float = 10.0, topic: str = topics.TRUST) -> None:
    """Publish bytes retained on the trust topic (or `topic`) as the dashboard account; waits for the broker."""
    client = broker.mqtt_client(config.mqtt, config.mqtt.dashboard, client_id="")
    connected = threading.Event()
    refused: list[str] = []
    acked: list[str] = []
    done = threading.Event()

    def on_connect(c: object, u: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
        connected.set()

    def on_publish(c: object, u: object, mid: int, reason: object, props: object) -> None:
        acked.append(str(reason))
        done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    try:
        broker.connect_first(client, config.mqtt)
    except broker.BrokerError as e:
        raise TrustPublishError(str(e)) from None
    client.loop_start()
    try:
        if not connected.wait(timeout) or refused:
            raise TrustPublishError(f"the broker refused the dashboard login: {refused[0] if refused else 'timeout'}")
        client.publish(topic, raw, qos=1, retain=True)
        if not done.wait(timeout):
            raise TrustPublishError("the broker did not confirm the trust bundle in time")
        if acked[0] not in ("Success", "No matching subscribers"):
            raise TrustPublishError(f"the broker refused the trust bundle: {acked[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


def accept_bundle(store: Store, config: DashboardConfig, data: bytes, uploaded_by: str | None = None) -> TrustRecord:
    """Verify an uploaded bundle, publish it retained on chot/v1/trust, then keep it."""
    bundle = check_bundle(store, config, data)
    publish_raw(config, bundle.raw)
    record = store.save_trust_bundle(bundle.version, bundle.raw, bundle.issued_at, bundle.next_update,
                                     uploaded_by)
    logger.info("trust bundle version %d published", bundle.version)
    return record


def republish_latest(store: Store, config: DashboardConfig) -> TrustRecord:
    """Publish the stored newest bundle again (e.g. after the broker lost its retained messages)."""
    record = store.latest_trust_bundle()
    if record is None:
        raise TrustPublishError("no trust bundle has been accepted yet")
    publish_raw(config, record.raw)
    return record
