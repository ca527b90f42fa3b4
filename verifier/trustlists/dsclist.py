"""Germany's signed DSC list, as its national backend serves it to the verifier apps.

Line 1: base64 of a raw r||s ECDSA P-256 / SHA-256 signature over everything after that line.
The rest: JSON `{"certificates": [{certificateType, country, kid, rawData, signature, thumbprint,
timestamp}]}` (the DCC gateway's entry shape). The list has no version of its own: its newest
entry `timestamp` stands for it (rollback and age are judged by that).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.cose import der_signature
from verifier.trustlists.common import (
    MAX_LIST_BYTES,
    ImportedList,
    TrustListFormatError,
    TrustListSignatureError,
    aware,
    b64,
    collect,
    dated_entries,
    dsc_fields,
    load_public_key,
    only_signers,
)

FORMAT = "de-dsc-list"


def looks_like(data: bytes) -> bool:
    """A base64 line of a 64-byte signature, then a JSON object."""
    head, _, rest = data.partition(b"\n")
    return len(head.strip()) == 88 and rest.lstrip()[:1] == b"{"


def verify_signature(data: bytes, key_pem: bytes | str) -> bytes:
    """The signed JSON body, once its first-line signature checks against the pinned key.

    :raises TrustListFormatError: when there is no signature line.
    :raises TrustListSignatureError: when the signature does not match the key.
    """
    key = load_public_key(key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TrustListSignatureError("the pinned key is not an ECDSA key")
    head, newline, body = data.partition(b"\n")
    if not newline or not body:
        raise TrustListFormatError("no signature line followed by the list")
    raw = b64(head.strip().decode("ascii", "replace"), "the signature line")
    size = (key.curve.key_size + 7) // 8
    if len(raw) != 2 * size:
        raise TrustListSignatureError(f"signature of {len(raw)} bytes, expected {2 * size}")
    try:
        key.verify(der_signature(raw, size), body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise TrustListSignatureError("the signature does not match the pinned key") from err
    return body


def parse(data: bytes, key_pem: bytes | str, now: datetime, *, last_import: datetime | None = None,
          max_age: timedelta | None = None) -> ImportedList:
    """Check and import a signed DSC list; refused whole on signature, format, age or rollback.

    :raises TrustListError: (a subclass) saying why.
    """
    now = aware(now)
    if len(data) > MAX_LIST_BYTES:
        raise TrustListFormatError(f"{len(data)} bytes is more than {MAX_LIST_BYTES}")
    body = verify_signature(data, key_pem)
    entries, issued_at = dated_entries(body, now, last_import=last_import, max_age=max_age,
                                       not_json="the signed body is not JSON")
    signers, other_types = only_signers(entries)
    taken, refused = collect((dsc_fields(e) for e in signers), now)
    return ImportedList(FORMAT, issued_at, taken, other_types + refused)
