"""Revoke certificates: turn an HC1 string or a certificate identifier into DCC revocation hashes.

Only the hashes are stored (revocations.json in the ministry directory), never the identifiers,
so the revocation list itself carries no personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from keys import hc1
from keys.errors import HC1DecodeError, KeysError
from keys.ministry import MinistryDir
from verifier.revocation import HASH_TYPES, countrycode_uci_hash, signature_hash, uci_hash

logger = logging.getLogger(__name__)


def normalise_revocations(revocations: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """Every hash type present, hashes lower-case hex, sorted and without repeats."""
    revocations = revocations or {}
    unknown = set(revocations) - set(HASH_TYPES)
    if unknown:
        raise KeysError(f"unknown revocation hash types: {', '.join(sorted(unknown))}")
    out: dict[str, list[str]] = {}
    for kind in HASH_TYPES:
        hashes_ = {str(h).lower() for h in revocations.get(kind, ())}
        bad = [h for h in hashes_ if len(h) != 32 or not all(c in "0123456789abcdef" for c in h)]
        if bad:
            raise KeysError(f"{kind} revocation hashes must be 32 hex digits (16 bytes)")
        out[kind] = sorted(hashes_)
    return out


def hashes_for_uci(uci: str, country: str) -> dict[str, list[str]]:
    """The UCI and COUNTRYCODEUCI hashes of a certificate identifier typed by an officer."""
    return _identifier_hashes(uci.strip(), country)


def _identifier_hashes(uci: str, country: str) -> dict[str, list[str]]:
    # Over the identifier exactly as given: a verifier hashes the certificate's `ci` as it is.
    if not uci.strip():
        raise KeysError("the certificate identifier is empty")
    if not country or not country.isalpha():
        raise KeysError("the issuing country must be a letter code such as VN")
    return {"UCI": [uci_hash(uci)], "COUNTRYCODEUCI": [countrycode_uci_hash(country, uci)]}


def hashes_for_hc1(text: str) -> dict[str, list[str]]:
    """All three hashes of an HC1 certificate: UCI and COUNTRYCODEUCI of its identifier, and SIGNATURE.

    :raises HC1DecodeError: when the string is not a readable HC1 certificate.
    """
    unpacked = hc1.unpack(text)
    if unpacked.alg is None:
        raise HC1DecodeError("the COSE header names no algorithm")
    dcc = unpacked.dcc
    groups = [dcc.get(kind) for kind in ("v", "t", "r") if dcc.get(kind)]
    if len(groups) != 1 or not isinstance(groups[0], (list, tuple)) or not isinstance(groups[0][0], Mapping):
        raise HC1DecodeError("the DCC holds no single vaccination, test or recovery entry")
    entry = groups[0][0]
    uci, country = entry.get("ci"), entry.get("co")
    if not isinstance(uci, str) or not isinstance(country, str):
        raise HC1DecodeError("the DCC entry lacks its identifier (ci) or country (co)")
    found = _identifier_hashes(uci, country)
    found["SIGNATURE"] = [signature_hash(unpacked.signature, unpacked.alg)]
    return found


class RevocationStore:
    """The ministry's revoked hashes, kept in revocations.json."""

    def __init__(self, ministry: MinistryDir) -> None:
        self.ministry = ministry

    def load(self) -> dict[str, list[str]]:
        """Every revoked hash, by type."""
        return normalise_revocations(self.ministry.read_state(self.ministry.revocations, {}))

    def add(self, hashes: Mapping[str, Iterable[str]]) -> int:
        """Add hashes; returns how many were new."""
        current = self.load()
        before = sum(len(v) for v in current.values())
        for kind, values in normalise_revocations(hashes).items():
            current[kind] = sorted(set(current[kind]) | set(values))
        added = sum(len(v) for v in current.values()) - before
        self.ministry.write_state(self.ministry.revocations, current)
        logger.info("revocation list: %d new hashes", added)
        return added
