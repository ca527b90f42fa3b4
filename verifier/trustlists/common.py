"""What every trust list importer shares: the errors, the per-entry checks, the import result.

An importer turns one published list into an `ImportedList` or refuses the whole list with a
`TrustListError` (never a partial import). Entries are checked one by one: an entry that fails
is left out and counted, per country, with its reason; the list itself stands.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from verifier.errors import VerificationError
from verifier.trust import SignerKey, TrustStore, compute_kid

MAX_LIST_BYTES = 32 * 1024 * 1024
"""A published list today is about 4 MB (829 signers); far past this is not a trust list."""
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class TrustListError(VerificationError):
    """A published trust list was refused whole; `detail` says why."""

    code = "trust_list"
    message_en = "The trust list was refused: nothing from it was imported."
    message_vi = "Danh sách tin cậy bị từ chối: không nhập dữ liệu nào từ danh sách này."


class TrustListFormatError(TrustListError):
    """The file is not a list of the declared format (truncated, not JSON/CBOR, wrong shape)."""

    code = "trust_list_format"
    message_en = "The trust list file is damaged or not in the expected format."
    message_vi = "Tệp danh sách tin cậy bị hỏng hoặc sai định dạng."


class TrustListSignatureError(TrustListError):
    """The list is not signed by the pinned key or anchor."""

    code = "trust_list_signature"
    message_en = "The trust list is not signed by the pinned key: it may be forged or altered."
    message_vi = "Danh sách tin cậy không được ký bằng khóa đã ghim: có thể bị giả mạo hoặc sửa đổi."


class TrustListAgeError(TrustListError):
    """The list has expired, is not valid yet, or is older than the operator allows."""

    code = "trust_list_age"
    message_en = "The trust list is out of date (or not valid yet): download a current one."
    message_vi = "Danh sách tin cậy đã hết hạn (hoặc chưa có hiệu lực): hãy tải bản mới."


class TrustListRollback(TrustListError):
    """The list is older than the one imported last (a replayed old list)."""

    code = "trust_list_rollback"
    message_en = "The trust list is older than the one already imported."
    message_vi = "Danh sách tin cậy cũ hơn danh sách đã nhập trước đó."


@dataclass(frozen=True)
class Refused:
    """One entry left out of an import, and why (no personal data: kids and countries only)."""

    country: str
    kid: str
    reason: str


@dataclass(frozen=True)
class Signer:
    """One accepted document signer certificate."""

    kid: bytes
    der: bytes
    country: str

    def bundle_entry(self) -> dict[str, Any]:
        """The `dscs` entry of a chot trust bundle (verifier.bundle)."""
        return {"kid": base64.b64encode(self.kid).decode("ascii"), "country": self.country,
                "certificate": base64.b64encode(self.der).decode("ascii")}


@dataclass(frozen=True)
class ImportedList:
    """A checked trust list: who was taken, who was refused, and the list's own time (its version)."""

    format: str
    issued_at: datetime | None
    """The list's time: what rollback is judged by (None: the format has none, e.g. a folder)."""
    signers: tuple[Signer, ...]
    refused: tuple[Refused, ...] = ()
    expires_at: datetime | None = None

    def trust_store(self, **kwargs: Any) -> TrustStore:
        return TrustStore([SignerKey.from_certificate(s.der, kid=s.kid, country=s.country)
                           for s in self.signers], **kwargs)

    def report(self) -> dict[str, dict[str, Any]]:
        """Per country: signers taken, and those refused counted by reason."""
        out: dict[str, dict[str, Any]] = {}
        for signer in self.signers:
            out.setdefault(signer.country, {"taken": 0, "refused": {}})["taken"] += 1
        for refusal in self.refused:
            row = out.setdefault(refusal.country, {"taken": 0, "refused": {}})
            row["refused"][refusal.reason] = row["refused"].get(refusal.reason, 0) + 1
        return dict(sorted(out.items()))


def b64(value: Any, what: str) -> bytes:
    """Standard base64 text as bytes, else a format error naming `what`."""
    if not isinstance(value, str):
        raise TrustListFormatError(f"{what} is missing or not text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise TrustListFormatError(f"{what} is not base64") from err


def check_entry(der: bytes, claimed_kid: bytes | None, country: str | None, now: datetime,
                thumbprint: str | None = None) -> Signer | str:
    """One entry's checks; returns the accepted Signer or the reason it is left out.

    kid = first 8 bytes of SHA-256 over the DER; the certificate parses; it has not expired at
    `now`; the country is two capital letters and, when the certificate names one, the same.
    """
    kid = compute_kid(der)
    if claimed_kid is not None and claimed_kid != kid:
        return "kid does not match the certificate"
    if thumbprint is not None and thumbprint.lower() != hashlib.sha256(der).hexdigest():
        return "thumbprint does not match the certificate"
    try:
        cert = x509.load_der_x509_certificate(der)
        not_after = cert.not_valid_after_utc
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
        SignerKey.from_certificate(der, kid=kid)  # the key and key usage must be readable too
    except Exception as err:  # noqa: BLE001 - any fault reading one entry leaves out that entry only
        return f"certificate unreadable ({type(err).__name__})"
    subject_country = str(names[0].value) if names else None
    country = country or subject_country
    if country is None or not _COUNTRY.match(country):
        return "no valid country"
    if subject_country is not None and subject_country != country:
        return "country differs from the certificate's"
    if not_after < now:
        return "certificate expired"
    return Signer(kid=kid, der=der, country=country)


def collect(entries: Iterable[tuple[bytes | None, bytes | None, str | None, str | None]],
            now: datetime) -> tuple[tuple[Signer, ...], tuple[Refused, ...]]:
    """Check (der, kid, country, thumbprint) entries; a der of None is an unreadable entry."""
    taken: list[Signer] = []
    refused: list[Refused] = []
    seen: set[bytes] = set()
    for der, kid, country, thumbprint in entries:
        shown_kid = base64.b64encode(kid).decode("ascii") if kid else ""
        if der is None:
            refused.append(Refused(country or "??", shown_kid, "entry unreadable"))
            continue
        outcome = check_entry(der, kid, country, now, thumbprint)
        if isinstance(outcome, str):
            refused.append(Refused(country or _subject_country(der) or "??", shown_kid, outcome))
        elif outcome.der in seen:
            refused.append(Refused(outcome.country, shown_kid, "duplicate"))
        else:
            seen.add(outcome.der)
            taken.append(outcome)
    return tuple(taken), tuple(refused)


def _subject_country(der: bytes) -> str | None:
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
    except Exception:  # noqa: BLE001 - only for naming the country of a refused entry
        return None
    return str(names[0].value) if names else None


def check_freshness(issued_at: datetime | None, now: datetime, *, last_import: datetime | None,
                    max_age: timedelta | None, expires_at: datetime | None = None,
                    not_before: datetime | None = None) -> None:
    """Refuse a list older than the last import (rollback), older than `max_age`, or out of its window.

    :raises TrustListRollback: when `issued_at` is before `last_import`.
    :raises TrustListAgeError: when expired, not yet valid, or older than `max_age`.
    """
    if last_import is not None and issued_at is not None and issued_at < last_import:
        raise TrustListRollback(f"list of {issued_at:%Y-%m-%dT%H:%M:%SZ} is older than the last "
                                f"import ({last_import:%Y-%m-%dT%H:%M:%SZ})")
    if expires_at is not None and now > expires_at:
        raise TrustListAgeError(f"the list expired {expires_at:%Y-%m-%dT%H:%M:%SZ}")
    if not_before is not None and now < not_before:
        raise TrustListAgeError(f"the list is valid only from {not_before:%Y-%m-%dT%H:%M:%SZ}")
    if max_age is not None and issued_at is not None and now - issued_at > max_age:
        raise TrustListAgeError(f"the list of {issued_at:%Y-%m-%d} is older than {max_age.days} days")


def parse_time(value: Any, what: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone), else a format error."""
    if not isinstance(value, str):
        raise TrustListFormatError(f"{what} is missing or not text")
    try:
        moment = datetime.fromisoformat(value)  # Python 3.11+ reads a trailing Z
    except ValueError as err:
        raise TrustListFormatError(f"{what} is not an ISO 8601 time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def load_public_key(pem: bytes | str) -> Any:
    """The pinned key of a list (PEM public key, or a PEM certificate's key)."""
    data = pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
    try:
        if b"CERTIFICATE" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise TrustListSignatureError(f"the pinned key is not a PEM public key: {err}") from err


def entries_of(document: Any, key: str = "certificates") -> list[Mapping[str, Any]]:
    """The list of entries of a `{certificates: [...]}` document or a bare list."""
    entries = document.get(key) if isinstance(document, Mapping) else document
    if not isinstance(entries, list):
        raise TrustListFormatError(f"no `{key}` list")
    return entries


def aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def only_signers(entries: list[Any]) -> tuple[list[Any], tuple[Refused, ...]]:
    """The entries that are document signers; the gateway's other types (CSCA, UPLOAD,
    AUTHENTICATION) are left out with their type as the reason."""
    kept: list[Any] = []
    refused: list[Refused] = []
    for entry in entries:
        kind = entry.get("certificateType") if isinstance(entry, Mapping) else None
        if kind is None or kind == "DSC":
            kept.append(entry)
        else:
            country = entry.get("country") if isinstance(entry.get("country"), str) else "??"
            reason = f"not a document signer ({str(kind)[:20]})"
            refused.append(Refused(country, str(entry.get("kid", ""))[:24], reason))
    return kept, tuple(refused)


def dsc_fields(entry: Any) -> tuple[bytes | None, bytes | None, str | None, str | None]:
    """(der, kid, country, thumbprint) of a gateway-shaped entry; der None when unreadable."""
    if not isinstance(entry, Mapping):
        return None, None, None, None
    country = entry.get("country") if isinstance(entry.get("country"), str) else None
    try:
        kid = b64(entry.get("kid"), "kid")
    except TrustListFormatError:
        kid = None
    try:
        der = b64(entry.get("rawData"), "rawData")
    except TrustListFormatError:
        return None, kid, country, None
    thumbprint = entry.get("thumbprint") if isinstance(entry.get("thumbprint"), str) else None
    return der, kid, country, thumbprint


def dated_entries(body: bytes, now: datetime, *, last_import: datetime | None, max_age: timedelta | None,
                  not_json: str = "not JSON") -> tuple[list[Mapping[str, Any]], datetime | None]:
    """The entries of a JSON list and the list's time (its newest entry timestamp), checked for age.

    :raises TrustListFormatError: when `body` is not JSON (saying `not_json`) or has no entry list.
    :raises TrustListRollback, TrustListAgeError: as `check_freshness`.
    """
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise TrustListFormatError(not_json) from err
    entries = entries_of(document)
    times = [parse_time(e.get("timestamp"), "an entry's timestamp") for e in entries
             if isinstance(e, Mapping) and e.get("timestamp") is not None]
    issued_at = max(times) if times else None
    check_freshness(issued_at, now, last_import=last_import, max_age=max_age)
    return entries, issued_at
