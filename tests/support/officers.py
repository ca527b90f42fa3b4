"""Officer rosters for tests: a roster key, officers with known PINs, signed rosters."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.roster import Officer, build_roster, hash_pin

UTC = dt.timezone.utc
# A cheap scrypt cost so tests stay quick; one test checks the default cost as shipped.
TEST_N = 2**10


def roster_key() -> ec.EllipticCurvePrivateKey:
    """A fresh roster signing key (P-256)."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """The key's public half as the trust bundle lists it."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def officer(officer_id: str, pin: str, name: str | None = None, role: str = "police", n: int = TEST_N) -> Officer:
    """An officer whose PIN is `pin`, under a fresh random salt."""
    return Officer(officer_id, name or f"Cán bộ {officer_id}", role, hash_pin(pin, os.urandom(16), n=n))


def signed_roster(key: ec.EllipticCurvePrivateKey, checkpoint: str, officers: Sequence[Officer],
                  devices: Sequence[str], *, version: int = 1, issued_at: dt.datetime | None = None,
                  days: float = 7) -> bytes:
    """A signed chot-roster/1 document."""
    issued = issued_at or dt.datetime.now(UTC).replace(microsecond=0)
    return build_roster(key, version=version, checkpoint=checkpoint, issued_at=issued,
                        expires_at=issued + dt.timedelta(days=days), devices=devices, officers=officers)
