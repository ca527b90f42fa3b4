"""Officers and their signed rosters: the dashboard side of protocol.roster.

The dashboard holds a roster key (ECDSA P-256, `<data_dir>/roster-key.pem`, 0600). The ministry
lists its public half in the signed trust bundle (`chot keys bundle --roster-key`), which is how
a unit learns to trust this dashboard's rosters; withdrawing it from the next bundle makes every
unit drop them. Each change of a checkpoint's officers or units publishes a new roster version,
retained on `chot/v1/<checkpoint>/roster`, holding only that checkpoint's officers with a scrypt
hash of each PIN under its own salt. PINs are hashed here and never stored or logged.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dashboard import broker, trust
from dashboard.config import DashboardConfig
from dashboard.scope import Scope
from dashboard.store import OfficerRecord, RosterRecord, Store
from protocol import topics
from protocol.roster import ROLES, Officer, PinHash, RosterError, build_roster, hash_pin

logger = logging.getLogger(__name__)


class OfficerError(Exception):
    """An officer or roster change was refused; the message says why."""


def roster_topic(checkpoint: str) -> str:
    """Where a checkpoint's units hear their roster."""
    return topics.roster(checkpoint)


def load_or_create_key(config: DashboardConfig) -> ec.EllipticCurvePrivateKey:
    """The roster signing key, made on first use (0600)."""
    path = Path(config.officers.key_file)  # type: ignore[arg-type]
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as e:
            raise OfficerError(f"roster key {path} is unreadable: {e}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise OfficerError(f"roster key {path} is not an ECDSA key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    broker.write_private(path, pem.decode("ascii"))
    logger.info("made the roster key %s: list its public key in the trust bundle", path)
    return key


def public_pem(config: DashboardConfig) -> str:
    """The roster key's public half (PEM), for the ministry's trust bundle."""
    return load_or_create_key(config).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _pin_json(pin: str) -> str:
    try:
        return json.dumps(hash_pin(pin, os.urandom(16)).to_json())
    except RosterError:
        raise OfficerError("a PIN is 4 to 8 digits") from None


def _officer(record: OfficerRecord) -> Officer:
    pin = json.loads(record.pin)
    return Officer(record.id, record.name, record.role,
                   PinHash(pin["n"], pin["r"], pin["p"], base64.b64decode(pin["salt"]), base64.b64decode(pin["hash"])))


def add_officer(store: Store, config: DashboardConfig, checkpoint: str, officer_id: str, name: str, role: str,
                pin: str, *, publish: bool = True) -> OfficerRecord:
    """Add (or re-PIN) an officer at a checkpoint, then publish the checkpoint's new roster."""
    if role not in ROLES:
        raise OfficerError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(pin, str) or not pin.isdigit() or not 4 <= len(pin) <= 8:
        raise OfficerError("a PIN is 4 to 8 digits")
    if pin in ("0000", "1234", "1111", "12345", "123456") or len(set(pin)) == 1:
        raise OfficerError("this PIN is too easy to guess")
    record = store.upsert_officer(checkpoint, officer_id, name, role, _pin_json(pin))
    logger.info("officer %s at %s saved", officer_id, checkpoint)
    if publish:
        publish_roster(store, config, checkpoint)
    return record


def remove_officer(store: Store, config: DashboardConfig, checkpoint: str, officer_id: str, *,
                   publish: bool = True) -> bool:
    """Revoke an officer: gone from the next roster, which is published at once."""
    removed = store.remove_officer(checkpoint, officer_id)
    if removed:
        logger.info("officer %s at %s revoked", officer_id, checkpoint)
        if publish:
            publish_roster(store, config, checkpoint)
    return removed


def make_roster(store: Store, config: DashboardConfig, checkpoint: str, now: datetime | None = None) -> tuple[int, bytes]:
    """Sign the checkpoint's next roster version: its officers and its registered units."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    scope = Scope.of(checkpoints=[checkpoint])
    officers = [_officer(r) for r in store.list_officers(scope, checkpoint)]
    devices = [d.id for d in store.list_devices(scope) if d.checkpoint == checkpoint]
    latest = store.latest_roster(checkpoint)
    version = (latest.version if latest else 0) + 1
    raw = build_roster(load_or_create_key(config), version=version, checkpoint=checkpoint, issued_at=now,
                       expires_at=now + timedelta(days=config.officers.roster_days), devices=devices,
                       officers=officers)
    return version, raw


def publish_roster(store: Store, config: DashboardConfig, checkpoint: str) -> RosterRecord:
    """Sign and publish (retained) the checkpoint's next roster, then keep it."""
    version, raw = make_roster(store, config, checkpoint)
    trust.publish_raw(config, raw, topic=roster_topic(checkpoint))
    record = store.save_roster(checkpoint, version, raw)
    logger.info("roster version %d for %s published", version, checkpoint)
    return record


def publish_all(store: Store, config: DashboardConfig, checkpoints: list[str] | None = None) -> list[RosterRecord]:
    """Publish fresh rosters (new version, new expiry) for these checkpoints, or every one with officers."""
    if checkpoints is None:
        checkpoints = sorted({o.checkpoint for o in store.list_officers(Scope.all())})
    return [publish_roster(store, config, cp) for cp in checkpoints]


def new_pin(digits: int = 6) -> str:
    """A random PIN for a new officer (shown once)."""
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(digits))
        if len(set(pin)) > 2:
            return pin
