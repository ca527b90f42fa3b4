"""The trust store: document signer keys by kid, with validity and allowed certificate types."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from verifier.errors import KeyUsageError, SignerExpired, SignerNotYetValid
from verifier.revocation import RevocationList
from verifier.valuesets import ValueSets, shipped

logger = logging.getLogger(__name__)

# DCC extended key usage OIDs per certificate type; the "1.3.6.1.4.1.0.1847" forms occur in the wild.
_TYPE_BY_OID = {
    f"1.3.6.1.4.1.{arc}1847.2021.1.{n}": kind
    for arc in ("", "0.")
    for n, kind in ((1, "t"), (2, "v"), (3, "r"))
}
ALL_TYPES = frozenset({"v", "t", "r"})
_EKU_OID_DER = bytes.fromhex("0603551d25")  # OID 2.5.29.37 (extKeyUsage), DER encoded


def compute_kid(certificate_der: bytes) -> bytes:
    """The HCERT kid: the first 8 bytes of SHA-256 over the signer certificate's DER."""
    return hashlib.sha256(certificate_der).digest()[:8]


def types_from_oids(oids: Iterable[str]) -> frozenset[str]:
    """Certificate types the DCC key-usage OIDs allow; no DCC OID at all means every type."""
    types = frozenset(_TYPE_BY_OID[o] for o in oids if o in _TYPE_BY_OID)
    return types or ALL_TYPES


def _read_tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """Read a DER tag and length at `pos`; return (tag, start of content, end of content)."""
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("DER length past the end")
    return tag, pos, pos + length


def _decode_oid(body: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OID")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def lenient_eku_oids(certificate_der: bytes) -> list[str] | None:
    """Read the extended key usage OIDs straight from the DER, tolerating what `cryptography` refuses.

    Some real DSCs carry an empty EKU SEQUENCE, which `cryptography` rejects when reading
    extensions. Returns None when there is no EKU extension.
    """
    at = certificate_der.find(_EKU_OID_DER)
    if at < 0:
        return None
    try:
        tag, start, end = _read_tlv(certificate_der, at + len(_EKU_OID_DER))
        if tag == 0x01:  # the optional `critical` BOOLEAN
            tag, start, end = _read_tlv(certificate_der, end)
        if tag != 0x04:
            return None
        tag, start, end = _read_tlv(certificate_der, start)
        if tag != 0x30:
            return None
        oids = []
        pos = start
        while pos < end:
            tag, body_start, body_end = _read_tlv(certificate_der, pos)
            if tag == 0x06:
                oids.append(_decode_oid(certificate_der[body_start:body_end]))
            pos = body_end
        return oids
    except (IndexError, ValueError):
        return None


def _eku_oids(cert: x509.Certificate, der: bytes) -> list[str] | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        logger.debug("extensions unreadable by cryptography; reading the EKU leniently")
        return lenient_eku_oids(der)
    return [oid.dotted_string for oid in ext.value]


@dataclass(frozen=True)
class SignerKey:
    """One document signer: its key, validity window and the certificate types it may sign."""

    kid: bytes
    public_key: Any
    not_before: datetime | None = None
    not_after: datetime | None = None
    types: frozenset[str] = ALL_TYPES
    country: str | None = None

    @classmethod
    def from_certificate(
        cls, der: bytes, *, kid: bytes | None = None, types: Iterable[str] | None = None,
        country: str | None = None,
    ) -> "SignerKey":
        """Build from a DSC in DER; `types` (e.g. from a trust bundle) narrows what its EKU allows.

        :raises ValueError: when the DER is not an X.509 certificate.
        """
        cert = x509.load_der_x509_certificate(der)
        allowed = types_from_oids(_eku_oids(cert, der) or ())
        if types is not None:
            allowed = allowed & frozenset(types)
        if country is None:
            names = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
            country = str(names[0].value) if names else None
        return cls(
            kid=kid if kid is not None else compute_kid(der),
            public_key=cert.public_key(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            types=allowed,
            country=country,
        )

    def check_valid_at(self, now: datetime) -> None:
        """Refuse a signer outside its validity window.

        :raises SignerNotYetValid: before not_before.
        :raises SignerExpired: after not_after.
        """
        if self.not_before is not None and now < self.not_before:
            raise SignerNotYetValid(f"kid {self.kid.hex()} valid from {self.not_before:%Y-%m-%d}")
        if self.not_after is not None and now > self.not_after:
            raise SignerExpired(f"kid {self.kid.hex()} expired {self.not_after:%Y-%m-%d}")

    def check_type(self, cert_type: str | None) -> None:
        """Refuse a certificate type the signer's key usage does not allow.

        :raises KeyUsageError: naming the type.
        """
        if cert_type is not None and cert_type not in self.types:
            raise KeyUsageError(f"kid {self.kid.hex()} may not sign type {cert_type}")


class TrustStore:
    """Document signer keys indexed by kid, the revocation list, the value sets, the bundle version."""

    def __init__(
        self,
        signers: Iterable[SignerKey],
        revocations: RevocationList | Mapping[str, Iterable[str]] | None = None,
        version: int | None = None,
        value_sets: ValueSets | None = None,
        shc_issuers: Mapping[str, Any] | None = None,
    ) -> None:
        self._by_kid: dict[bytes, list[SignerKey]] = {}
        for signer in signers:
            self._by_kid.setdefault(signer.kid, []).append(signer)
        if not isinstance(revocations, RevocationList):
            revocations = RevocationList.from_mapping(revocations)
        self.revocations = revocations
        self.version = version
        self.value_sets = value_sets if value_sets is not None else shipped()
        """The coded fields' value sets: a bundle's where it carries them, else the shipped ones."""
        self.shc_issuers: Mapping[str, Any] = dict(shc_issuers or {})
        """SMART Health Card issuers by `iss` URL (verifier.formats.shc.ShcIssuer)."""

    @classmethod
    def from_certificates(cls, ders: Iterable[bytes], **kwargs: Any) -> "TrustStore":
        """Build from DSC certificates in DER (kid computed from each)."""
        return cls([SignerKey.from_certificate(der) for der in ders], **kwargs)

    def find(self, kid: bytes) -> list[SignerKey]:
        """Every signer with this kid (kids are 8 bytes, so more than one can collide)."""
        return self._by_kid.get(kid, [])

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_kid.values())
