"""DCC revocation hashes (UCI, COUNTRYCODEUCI, SIGNATURE) and the check against a revocation list.

Each hash is the hex of the first 16 bytes (128 bits) of SHA-256, as in the EU DCC revocation
specification. For ECDSA the SIGNATURE hash covers only the r half of the raw r||s signature,
because s can be changed without invalidating the signature; for RSA it covers the whole value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from verifier.errors import Revoked

HASH_TYPES = ("UCI", "COUNTRYCODEUCI", "SIGNATURE")
_ECDSA_ALGS = frozenset({-7, -35, -36})  # ES256, ES384, ES512


def _truncated_sha256(data: bytes) -> str:
    return hashlib.sha256(data).digest()[:16].hex()


def uci_hash(uci: str) -> str:
    """Revocation hash of type UCI: over the certificate identifier."""
    return _truncated_sha256(uci.encode("utf-8"))


def countrycode_uci_hash(country: str, uci: str) -> str:
    """Revocation hash of type COUNTRYCODEUCI: over the issuing country code then the identifier."""
    return _truncated_sha256((country.upper() + uci).encode("utf-8"))


def signature_hash(signature: bytes, alg: int) -> str:
    """Revocation hash of type SIGNATURE: over r for ECDSA (raw r||s), the whole signature else."""
    if alg in _ECDSA_ALGS:
        signature = signature[: len(signature) // 2]
    return _truncated_sha256(signature)


@dataclass(frozen=True)
class RevocationList:
    """Sets of revoked hashes, one per hash type (lower-case hex)."""

    uci: frozenset[str] = field(default_factory=frozenset)
    countrycode_uci: frozenset[str] = field(default_factory=frozenset)
    signature: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Iterable[str]] | None) -> RevocationList:
        """Build from `{"UCI": [...], "COUNTRYCODEUCI": [...], "SIGNATURE": [...]}` (the bundle form)."""
        data = data or {}

        def norm(key: str) -> frozenset[str]:
            return frozenset(str(h).lower() for h in data.get(key, ()) or ())

        return cls(norm("UCI"), norm("COUNTRYCODEUCI"), norm("SIGNATURE"))

    def __bool__(self) -> bool:
        return bool(self.uci or self.countrycode_uci or self.signature)

    def check(self, uci: str | None, country: str | None, signature: bytes, alg: int) -> None:
        """Raise Revoked when any hash of this certificate is listed.

        :raises Revoked: with the hash type that matched.
        """
        if not self:
            return
        if self.signature and signature_hash(signature, alg) in self.signature:
            raise Revoked("SIGNATURE")
        if uci:
            if self.uci and uci_hash(uci) in self.uci:
                raise Revoked("UCI")
            if country and self.countrycode_uci and countrycode_uci_hash(country, uci) in self.countrycode_uci:
                raise Revoked("COUNTRYCODEUCI")
