"""Build, sign and version the trust bundle (`chot-trust-bundle/1`, see docs/architecture.md)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keys import ca
from keys.errors import BundleVersionError, KeysError
from keys.ministry import MinistryDir
from keys.revoke import RevocationStore, normalise_revocations
from verifier import valuesets

logger = logging.getLogger(__name__)

FORMAT = "chot-trust-bundle/1"
ISSUER = "VN Ministry of Health"
DEFAULT_LIFETIME = dt.timedelta(days=1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _timestamp(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise KeysError("bundle times need a time zone")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dsc_entry(cert: x509.Certificate) -> dict[str, Any]:
    """One `dscs` entry: kid, country, DER certificate and the types its key usage allows."""
    countries = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return {"kid": _b64(ca.kid_of(cert)), "country": str(countries[0].value) if countries else "",
            "certificate": _b64(cert.public_bytes(serialization.Encoding.DER)), "types": ca.dsc_types(cert)}


def builtin_policy_documents() -> dict[str, Any]:
    """The shipped policies (verifier.policy) as documents, keyed by name."""
    # Imported here: loading the CertLogic engine is only needed when a bundle carries policies.
    from verifier.policy import builtin_policies

    return {name: policy.to_document() for name, policy in builtin_policies().items()}


def shipped_value_sets() -> dict[str, Any]:
    """The value set documents shipped with the verifier, by name."""
    return valuesets.shipped_documents()


def read_value_sets(directory: Path) -> dict[str, Any]:
    """EU value set documents from `directory` (`<name>.json`, e.g. `test-manf.json`), by name.

    :raises KeysError: when the folder holds no known value set, or a file is not a value set.
    """
    documents: dict[str, Any] = {}
    for path in sorted(Path(directory).glob("*.json")):
        name = path.stem
        if name not in valuesets.NAMES:
            logger.warning("%s: not a value set the verifier checks (known: %s), left out", path,
                           ", ".join(sorted(valuesets.NAMES)))
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            valuesets.codes_of(document, name)
        except (ValueError, UnicodeDecodeError) as err:
            raise KeysError(f"{path}: {err}") from err
        documents[name] = document
    if not documents:
        raise KeysError(f"{directory}: no value set files (<name>.json, name one of "
                        f"{', '.join(sorted(valuesets.NAMES))})")
    return documents


def bundle_payload(*, version: int, dscs: Iterable[x509.Certificate],
                   revocations: Mapping[str, Iterable[str]] | None = None,
                   policies: Mapping[str, Any] | None = None, issued_at: dt.datetime,
                   next_update: dt.datetime | None = None, issuer: str = ISSUER,
                   value_sets: Mapping[str, Any] | None = None, roster_keys: Iterable[str] = (),
                   imported_dscs: Iterable[Mapping[str, Any]] = (),
                   shc_issuers: Mapping[str, Any] | None = None) -> bytes:
    """The UTF-8 JSON payload bytes of a bundle; `value_sets` (documents by name) only when given;
    `roster_keys` are PEM public keys whose officer rosters the units accept (a dashboard's roster
    key, see protocol.roster), also only when given. `imported_dscs` are `dscs` entries of other
    issuers' signers taken from published trust lists (keys.trustimport); the ministry's own come first."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise KeysError(f"bundle version must be a whole number of at least 1, got {version!r}")
    payload = {
        "version": version,
        "issued_at": _timestamp(issued_at),
        "next_update": _timestamp(next_update or issued_at + DEFAULT_LIFETIME),
        "issuer": issuer,
        "dscs": _all_dscs(dscs, imported_dscs),
        "revocations": normalise_revocations(revocations),
        "policies": dict(policies or {}),
    }
    if value_sets:  # left out otherwise: the payload is then what older units already read
        payload["value_sets"] = dict(value_sets)
    if roster_keys:
        payload["roster_keys"] = [str(k) for k in roster_keys]
    if shc_issuers:  # SMART Health Card issuers: iss URL -> JWKS (verifier.formats.shc)
        payload["shc_issuers"] = dict(shc_issuers)
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _all_dscs(own: Iterable[x509.Certificate], imported: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    entries = [dsc_entry(cert) for cert in own]
    seen = {entry["certificate"] for entry in entries}
    for entry in imported:
        if entry["certificate"] not in seen:  # a signer both made here and listed abroad: once
            seen.add(entry["certificate"])
            entries.append(dict(entry))
    return entries


def sign_bundle(payload: bytes, trust_list_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Wrap payload bytes in the signed bundle document (ECDSA P-256, SHA-256, DER signature)."""
    if not isinstance(trust_list_key, ec.EllipticCurvePrivateKey) or not isinstance(trust_list_key.curve, ec.SECP256R1):
        raise KeysError("the trust-list key must be an ECDSA P-256 key")
    signature = trust_list_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    document = {"format": FORMAT, "payload": _b64(payload), "signature": _b64(signature),
                "signer": _b64(ca.signer_id(trust_list_key.public_key()))}
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def make_bundle(trust_list_key: ec.EllipticCurvePrivateKey, **payload_fields: Any) -> bytes:
    """Build and sign a bundle in one step; keyword arguments as for `bundle_payload`."""
    return sign_bundle(bundle_payload(**payload_fields), trust_list_key)


def last_version(ministry: MinistryDir) -> int:
    """The highest bundle version published from this ministry directory (0 if none)."""
    return int(ministry.read_state(ministry.bundles, {"last_version": 0}).get("last_version", 0))


def publish(ministry: MinistryDir, passphrase: str, version: int, *, now: dt.datetime | None = None,
            lifetime: dt.timedelta = DEFAULT_LIFETIME, policies: Mapping[str, Any] | None = None,
            value_sets: Mapping[str, Any] | None = None, roster_keys: Iterable[str] = (),
            imported_dscs: Iterable[Mapping[str, Any]] = ()) -> bytes:
    """Build and sign the ministry's bundle with every DSC, its revocations and the shipped policies
    (and `value_sets`, value set documents by name, and `imported_dscs`, other issuers' signers
    the ministry accepted from published lists, when given).

    The version must exceed the last one recorded, which is then updated.
    :raises BundleVersionError: when it does not.
    """
    ministry.require()
    last = last_version(ministry)
    if version <= last:
        raise BundleVersionError(version, last)
    issued_at = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    data = make_bundle(ministry.trust_list_signing_key(passphrase), version=version,
                       dscs=ministry.dsc_certificates(), revocations=RevocationStore(ministry).load(),
                       policies=builtin_policy_documents() if policies is None else policies,
                       issued_at=issued_at, next_update=issued_at + lifetime, value_sets=value_sets,
                       roster_keys=roster_keys, imported_dscs=imported_dscs)
    history = ministry.read_state(ministry.bundles, {"last_version": 0, "published": []})
    history["last_version"] = version
    history.setdefault("published", []).append(
        {"version": version, "issued_at": _timestamp(issued_at), "sha256": hashlib.sha256(data).hexdigest()})
    ministry.write_state(ministry.bundles, history)
    logger.info("signed trust bundle version %d", version)
    return data
