"""Austria's trust list: a CBOR list and a separate COSE_Sign1 that vouches for it.

The list is CBOR `{"c": [{"i": kid, "c": DER}, ...]}`. The signature file is a COSE_Sign1
(ES256) whose payload is a CWT `{2: SHA-256 of the list file, 4: exp, 5: nbf}`, signed by the
key the operator pins. The hash is checked before the list is parsed, so only signed bytes
reach the CBOR decoder; the list's `nbf` is its version (rollback), `exp` its end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2

from verifier import cbor, cose
from verifier.errors import MalformedCode, VerificationError
from verifier.trustlists.common import (
    MAX_LIST_BYTES,
    ImportedList,
    TrustListFormatError,
    TrustListSignatureError,
    aware,
    check_freshness,
    collect,
    load_public_key,
)

FORMAT = "at-cbor"


def looks_like(data: bytes) -> bool:
    """A CBOR map whose first key is "c" (0xa1 0x61 0x63)."""
    return data[:3] == b"\xa1\x61\x63"


def _time(claims: Mapping[Any, Any], label: int) -> datetime:
    value = claims.get(label)
    if type(value) is not int:
        raise TrustListFormatError(f"the signature's claim {label} is not a time")
    return datetime.fromtimestamp(value, UTC)


def parse(data: bytes, signature: bytes, key_pem: bytes | str, now: datetime, *,
          last_import: datetime | None = None, max_age: timedelta | None = None) -> ImportedList:
    """Check the COSE signature file against the pinned key, the list's hash and window, then import.

    :raises TrustListError: (a subclass) saying why the list is refused whole.
    """
    now = aware(now)
    if len(data) > MAX_LIST_BYTES:
        raise TrustListFormatError(f"{len(data)} bytes is more than {MAX_LIST_BYTES}")
    key = load_public_key(key_pem)
    try:
        msg = cose.parse_sign1(signature)
        cose.verify_signature(msg, key)
    except VerificationError as err:
        raise (TrustListFormatError if isinstance(err, MalformedCode) else TrustListSignatureError)(
            f"signature file: {err.detail or err.code}") from err
    try:
        claims = cbor.loads(msg.payload, "CWT")
    except VerificationError as err:
        raise TrustListFormatError("the signature's payload is not CBOR") from err
    if not isinstance(claims, cbor.MAP_TYPES):
        raise TrustListFormatError("the signature's payload is not a CWT map")
    if claims.get(2) != hashlib.sha256(data).digest():
        raise TrustListSignatureError("the list's SHA-256 is not the one signed")
    expires_at, not_before = _time(claims, 4), _time(claims, 5)
    check_freshness(not_before, now, last_import=last_import, max_age=max_age, expires_at=expires_at,
                    not_before=not_before)
    try:
        document = cbor2.loads(data)  # signed bytes (hash checked above)
    except Exception as err:
        raise TrustListFormatError("the list is not CBOR") from err
    entries = document.get("c") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise TrustListFormatError("no `c` list of certificates")

    def fields(entry: Any) -> tuple[bytes | None, bytes | None, str | None, str | None]:
        if not isinstance(entry, Mapping) or type(entry.get("c")) is not bytes:
            return None, None, None, None
        kid = entry.get("i") if type(entry.get("i")) is bytes else None
        return entry["c"], kid, None, None

    taken, refused = collect((fields(e) for e in entries), now)
    return ImportedList(FORMAT, not_before, taken, refused, expires_at=expires_at)
