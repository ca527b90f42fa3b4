"""The signed trust bundle (`chot-trust-bundle/1`): check it against the pinned anchor key.

Format (docs/architecture.md): a JSON document `{format, payload, signature, signer}` whose
`payload` is base64 of UTF-8 JSON `{version, issued_at, next_update, issuer, dscs,
revocations, policies, value_sets, roster_keys}`, signed ECDSA P-256 / SHA-256 (DER) by the ministry's
trust-list key. `value_sets` (optional, newer bundles) holds EU value set documents by name;
each replaces the shipped set of that name (older bundles, without it, keep the shipped sets).
`roster_keys` (optional) lists the PEM public keys whose officer rosters units accept (protocol.roster).
`shc_issuers` (optional) maps SMART Health Card issuer `iss` URLs to their JWKS (with `crls`, each
issuer's revocation lists by key, optional): verifier.formats.shc.issuers_from_document.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.errors import VerificationError
from verifier.formats.shc import issuers_from_document
from verifier.revocation import HASH_TYPES, RevocationList
from verifier.trust import SignerKey, TrustStore, compute_kid
from verifier.valuesets import ValueSets, codes_of, shipped

logger = logging.getLogger(__name__)

FORMAT = "chot-trust-bundle/1"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


class BundleError(VerificationError):
    """A trust bundle was refused; the message says why."""

    code = "bundle"
    message_en = "The trust list update was refused."
    message_vi = "Bản cập nhật danh sách tin cậy bị từ chối."

    def __str__(self) -> str:
        return f"trust bundle refused: {self.detail}" if self.detail else self.message_en


class BundleFormatError(BundleError):
    """The bundle is not a well-formed chot-trust-bundle/1 document."""

    code = "bundle_format"


class BundleSignatureError(BundleError):
    """The bundle is not signed by the pinned trust-list key."""

    code = "bundle_signature"


class BundleVersionError(BundleError):
    """The bundle is older than the one already accepted."""

    code = "bundle_version"

    def __init__(self, version: int, min_version: int) -> None:
        self.version = version
        self.min_version = min_version
        super().__init__(f"version {version} is older than the required {min_version}")


@dataclass(frozen=True)
class TrustBundle:
    """A checked trust bundle."""

    version: int
    issued_at: datetime
    next_update: datetime | None
    issuer: str
    dscs: tuple[Mapping[str, Any], ...]
    revocations: Mapping[str, list[str]]
    policies: Mapping[str, Any]
    raw: bytes = field(repr=False)
    value_sets: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The bundle's value set documents by name (empty for a bundle without them)."""

    def coded_value_sets(self) -> ValueSets:
        """The shipped value sets with this bundle's replacing those of the same name (made once)."""
        made = self.__dict__.get("_coded")
        if made is None:
            made = shipped().with_overrides(self.value_sets)
            object.__setattr__(self, "_coded", made)
        return made
    roster_keys: tuple[str, ...] = ()
    """PEM public keys whose signed officer rosters units accept (protocol.roster)."""
    shc_issuers: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """SMART Health Card issuers: iss URL -> JWKS (with optional `crls`), as signed in the bundle."""

    def trust_store(self) -> TrustStore:
        """The TrustStore of this bundle's DSCs, revocations and value sets, tagged with its version."""
        signers = []
        for entry in self.dscs:
            der = base64.b64decode(entry["certificate"])
            kid = base64.b64decode(entry["kid"]) if entry.get("kid") else compute_kid(der)
            signers.append(SignerKey.from_certificate(
                der, kid=kid, types=entry.get("types"), country=entry.get("country") or None))
        return TrustStore(signers, RevocationList.from_mapping(self.revocations), version=self.version,
                          value_sets=self.coded_value_sets(),
                          shc_issuers=issuers_from_document(self.shc_issuers) if self.shc_issuers else None)


def _load_anchor(anchor: Any) -> ec.EllipticCurvePublicKey:
    if isinstance(anchor, str):
        anchor = anchor.encode("ascii")
    if isinstance(anchor, (bytes, bytearray)):
        try:
            anchor = serialization.load_pem_public_key(bytes(anchor))
        except (ValueError, TypeError) as err:
            raise BundleSignatureError(f"the pinned anchor is not a PEM public key: {err}") from err
    if not isinstance(anchor, ec.EllipticCurvePublicKey):
        raise BundleSignatureError("the pinned anchor is not an ECDSA public key")
    return anchor


def signer_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """First 8 bytes of SHA-256 over the key's SubjectPublicKeyInfo DER."""
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:8]


def b64_field(document: Mapping[str, Any], key: str, error: type[VerificationError] = BundleFormatError) -> bytes:
    """A base64 text field of a signed document (bundle or roster), else `error` naming it."""
    value = document.get(key)
    if not isinstance(value, str):
        raise error(f"`{key}` is missing or not text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise error(f"`{key}` is not base64") from err


def time_field(payload: Mapping[str, Any], key: str, required: bool,
               error: type[VerificationError] = BundleFormatError) -> datetime | None:
    """An ISO 8601 time field (UTC when it names no zone), else `error` naming it."""
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise error(f"`{key}` is missing or not text")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise error(f"`{key}` is not an ISO 8601 time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)



def _check_payload(payload: Any) -> None:
    if not isinstance(payload, Mapping):
        raise BundleFormatError("payload is not a JSON object")
    version = payload.get("version")
    if type(version) is not int or version < 1:
        raise BundleFormatError("`version` is not a whole number of at least 1")
    dscs = payload.get("dscs", [])
    if not isinstance(dscs, list):
        raise BundleFormatError("`dscs` is not a list")
    for index, entry in enumerate(dscs):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("certificate"), str):
            raise BundleFormatError(f"dscs[{index}] has no certificate")
        types = entry.get("types")
        if types is not None and (not isinstance(types, list) or set(types) - {"v", "t", "r"}):
            raise BundleFormatError(f"dscs[{index}] has bad types")
    revocations = payload.get("revocations", {})
    if not isinstance(revocations, Mapping) or set(revocations) - set(HASH_TYPES):
        raise BundleFormatError("`revocations` must map UCI, COUNTRYCODEUCI, SIGNATURE to lists")
    if any(not isinstance(v, list) for v in revocations.values()):
        raise BundleFormatError("each revocation entry must be a list of hashes")
    if not isinstance(payload.get("policies", {}), Mapping):
        raise BundleFormatError("`policies` is not an object")
    value_sets = payload.get("value_sets", {})
    if not isinstance(value_sets, Mapping):
        raise BundleFormatError("`value_sets` is not an object")
    for name, document in value_sets.items():
        try:
            codes_of(document, name)
        except ValueError as err:
            raise BundleFormatError(f"value_sets: {err}") from err
    roster_keys = payload.get("roster_keys", [])
    if not isinstance(roster_keys, list) or not all(isinstance(k, str) and len(k) < 4096 for k in roster_keys):
        raise BundleFormatError("`roster_keys` must be a list of PEM public keys")
    try:
        issuers_from_document(payload.get("shc_issuers", {}))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BundleFormatError(f"shc_issuers: {err}") from err


def parse_bundle(data: bytes, anchor: Any, *, min_version: int | None = None) -> TrustBundle:
    """Check a signed bundle's format, signature (against the pinned anchor) and version.

    :param anchor: the trust-list public key: PEM bytes/str or an EllipticCurvePublicKey.
    :param min_version: the lowest version accepted (the current version + 1 on a unit).
    :raises BundleFormatError: when the document or payload is malformed.
    :raises BundleSignatureError: when not signed by the anchor.
    :raises BundleVersionError: when older than `min_version`.
    """
    key = _load_anchor(anchor)
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleFormatError(f"{len(data)} bytes is more than {MAX_BUNDLE_BYTES}")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleFormatError("not JSON") from err
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise BundleFormatError(f"not a {FORMAT} document")
    payload_bytes = b64_field(document, "payload")
    signature = b64_field(document, "signature")
    if b64_field(document, "signer") != signer_id(key):
        raise BundleSignatureError("signed by a key other than the pinned trust anchor")
    try:
        key.verify(signature, payload_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise BundleSignatureError("the signature does not match the pinned trust anchor") from err
    try:
        payload = json.loads(payload_bytes)
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleFormatError("payload is not JSON") from err
    _check_payload(payload)
    version = payload["version"]
    if min_version is not None and version < min_version:
        raise BundleVersionError(version, min_version)
    bundle = TrustBundle(
        version=version,
        issued_at=time_field(payload, "issued_at", required=True),  # type: ignore[arg-type]
        next_update=time_field(payload, "next_update", required=False),
        issuer=str(payload.get("issuer", "")),
        dscs=tuple(payload.get("dscs", [])),
        revocations={k: [str(h).lower() for h in v] for k, v in payload.get("revocations", {}).items()},
        policies=dict(payload.get("policies", {})),
        raw=bytes(data),
        value_sets=dict(payload.get("value_sets", {})),
        roster_keys=tuple(payload.get("roster_keys", [])),
        shc_issuers=dict(payload.get("shc_issuers", {})),
    )
    try:  # fail now, not at the first scan, on a certificate that does not parse
        bundle.trust_store()
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise BundleFormatError(f"a DSC entry is unreadable: {err}") from err
    logger.info("trust bundle version %d accepted (%d DSCs, value sets: %s)", version, len(bundle.dscs),
                ", ".join(sorted(bundle.value_sets)) or "shipped")
    return bundle
