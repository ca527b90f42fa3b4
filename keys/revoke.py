"""Revoke certificates: turn an HC1 string or a certificate identifier into DCC revocation hashes.

Only the hashes are stored (revocations.json in the ministry directory), never the identifiers,
so the revocation list itself carries no personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from keys import hc1
from keys.bundle import normalise_revocations
from keys.errors import HC1DecodeError, KeysError
from keys.ministry import MinistryDir
from verifier.revocation import countrycode_uci_hash, signature_hash, uci_hash

logger = logging.getLogger(__name__)


def hashes_for_uci(uci: str, country: str) -> dict[str, list[str]]:
    """The UCI and COUNTRYCODEUCI hashes of a certificate identifier."""
    uci = uci.strip()
    if not uci:
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
    entries = [dcc.get(kind) for kind in ("v", "t", "r") if dcc.get(kind)]
    if len(entries) != 1 or not entries[0] or not isinstance(entries[0][0], Mapping):
        raise HC1DecodeError("the DCC holds no single vaccination, test or recovery entry")
    entry = entries[0][0]
    uci, country = entry.get("ci"), entry.get("co")
    if not isinstance(uci, str) or not isinstance(country, str):
        raise HC1DecodeError("the DCC entry lacks its identifier (ci) or country (co)")
    found = hashes_for_uci(uci, country)
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
