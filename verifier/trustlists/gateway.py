"""The DCC gateway's trust list JSON: entries of the gateway's shape, the list unsigned as a whole.

Each entry's `signature` is a CMS SignedData (detached, signed attributes) over the DER of
`rawData`, made by the uploading country's certificate. Given anchor certificates, an entry
counts only when its CMS verifies and its signer is an anchor or issued by one; an entry
that fails is left out with its reason, and a list of which no entry verifies is refused
whole (the wrong anchor). Without anchors only the per-entry checks apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from verifier.trustlists.common import (
    MAX_LIST_BYTES,
    ImportedList,
    Refused,
    TrustListFormatError,
    TrustListSignatureError,
    aware,
    b64,
    collect,
    dated_entries,
    dsc_fields,
    only_signers,
)

FORMAT = "dcc-gateway"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def looks_like(data: bytes) -> bool:
    start = data.lstrip()[:1]
    return start == b"[" or (start == b"{" and b'"certificates"' in data[:200])


def load_anchors(pems: Sequence[bytes]) -> list[x509.Certificate]:
    anchors = []
    for pem in pems:
        try:
            anchors.append(x509.load_pem_x509_certificate(pem) if b"-----BEGIN" in pem
                           else x509.load_der_x509_certificate(pem))
        except ValueError as err:
            raise TrustListSignatureError(f"an anchor is not an X.509 certificate: {err}") from err
    return anchors


def _verify_with(key: Any, signature: bytes, data: bytes, digest: Any, algorithm: str, params: Any) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(digest))
    elif isinstance(key, rsa.RSAPublicKey):
        if algorithm == "rsassa_pss":
            salt = params["salt_length"].native if params else 32
            key.verify(signature, data, padding.PSS(padding.MGF1(digest), salt), digest)
        else:
            key.verify(signature, data, padding.PKCS1v15(), digest)
    else:
        raise InvalidSignature("unsupported key type")


def _issued_by_anchor(signer: x509.Certificate, anchors: Sequence[x509.Certificate]) -> bool:
    for anchor in anchors:
        if signer == anchor:
            return True
        try:
            signer.verify_directly_issued_by(anchor)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def check_cms(cms_der: bytes, content: bytes, anchors: Sequence[x509.Certificate]) -> str | None:
    """Check a detached CMS signature over `content`; None when good, else the reason."""
    from asn1crypto import cms  # only the gateway format needs a CMS reader

    try:
        info = cms.ContentInfo.load(cms_der)
        if info["content_type"].native != "signed_data":
            return "CMS is not SignedData"
        signed = info["content"]
        signer_info = signed["signer_infos"][0]
        attrs = signer_info["signed_attrs"]
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        digest = _HASHES[digest_name]()
        found = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
        want = hashlib.new(digest_name, content).digest()
        if found != [want]:
            return "CMS digest does not match the certificate"
        sid = signer_info["sid"]
        certs = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"] or []
                 if c.name == "certificate"]
        if sid.name == "issuer_and_serial_number":
            serial = sid.chosen["serial_number"].native
            candidates = [c for c in certs if c.serial_number == serial] or list(anchors)
        else:
            candidates = certs or list(anchors)
        signed_bytes = b"\x31" + attrs.dump()[1:]  # signed over as a SET, not the [0] tag
        sig_alg = signer_info["signature_algorithm"]
        for signer in candidates:
            try:
                _verify_with(signer.public_key(), signer_info["signature"].native, signed_bytes, digest,
                             sig_alg["algorithm"].native, sig_alg["parameters"] if sig_alg["algorithm"].native
                             == "rsassa_pss" else None)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return None if _issued_by_anchor(signer, anchors) else "CMS signer is not a pinned anchor"
        return "CMS signature does not verify"
    except Exception as err:  # noqa: BLE001 - a malformed CMS leaves out its entry, never crashes
        return f"CMS unreadable ({type(err).__name__})"


def parse(data: bytes, now: datetime, *, anchors: Sequence[bytes] = (), last_import: datetime | None = None,
          max_age: timedelta | None = None) -> ImportedList:
    """Import a gateway trust list; with `anchors` (PEM/DER certificates) each entry's CMS is checked.

    :raises TrustListError: (a subclass) saying why the list is refused whole.
    """
    now = aware(now)
    if len(data) > MAX_LIST_BYTES:
        raise TrustListFormatError(f"{len(data)} bytes is more than {MAX_LIST_BYTES}")
    entries, issued_at = dated_entries(data, now, last_import=last_import, max_age=max_age)
    anchor_certs = load_anchors(anchors)
    entries, other_types = only_signers(entries)
    kept: list[Any] = []
    cms_refused: list[Refused] = []
    for entry in entries:
        if anchor_certs and isinstance(entry, Mapping):
            der, _kid, country, _ = dsc_fields(entry)
            try:
                reason = check_cms(b64(entry.get("signature"), "signature"), der, anchor_certs) if der \
                    else None
            except TrustListFormatError:
                reason = "no CMS signature"
            if reason is not None:
                cms_refused.append(Refused(country or "??", str(entry.get("kid", "")), reason))
                continue
        kept.append(entry)
    if anchor_certs and entries and not kept:
        raise TrustListSignatureError("no entry is signed by the given anchor(s)")
    taken, refused = collect((dsc_fields(e) for e in kept), now)
    return ImportedList(FORMAT, issued_at, taken, other_types + tuple(cms_refused) + refused)
