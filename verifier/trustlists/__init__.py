"""Importers of published trust lists, one module per format, one entry point: `import_list`.

Formats: `de-dsc-list` (Germany's signed DSC list, verifier.trustlists.dsclist), `dcc-gateway`
(the EU gateway's trust list JSON, .gateway), `at-cbor` (Austria's CBOR list with a COSE
signature file, .austria), `folder` (PEM/DER files, .folder). Each returns an `ImportedList`
or raises a `TrustListError` subclass: a list is taken whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from verifier.trustlists import austria, dsclist, folder, gateway
from verifier.trustlists.common import (
    ImportedList,
    Refused,
    Signer,
    TrustListAgeError,
    TrustListError,
    TrustListFormatError,
    TrustListRollback,
    TrustListSignatureError,
)

FORMATS = (dsclist.FORMAT, gateway.FORMAT, austria.FORMAT, folder.FORMAT)

__all__ = [
    "FORMATS", "ImportedList", "Refused", "Signer", "TrustListAgeError", "TrustListError",
    "TrustListFormatError", "TrustListRollback", "TrustListSignatureError", "detect_format", "import_list",
]


def detect_format(path: Path) -> str:
    """The format of a list file or folder, from its first bytes.

    :raises TrustListFormatError: when no format fits.
    """
    if path.is_dir():
        return folder.FORMAT
    with path.open("rb") as handle:
        head = handle.read(4096)
    for module in (dsclist, austria, gateway):
        if module.looks_like(head):
            return module.FORMAT
    raise TrustListFormatError(f"{path.name}: not a trust list format chot reads ({', '.join(FORMATS)})")


def import_list(path: Path, now: datetime, *, fmt: str | None = None, key: bytes | None = None,
                anchors: Sequence[bytes] = (), signature: bytes | None = None,
                last_import: datetime | None = None, max_age: timedelta | None = None) -> ImportedList:
    """Import the list at `path` (a file, or a folder of certificates).

    :param key: the pinned PEM public key (de-dsc-list, at-cbor).
    :param anchors: PEM certificates whose CMS signatures gateway entries must carry.
    :param signature: the COSE signature file's bytes (at-cbor); default `path` + ".sig".
    :param last_import: the time of the list imported last: an older list is a rollback.
    :raises TrustListError: (a subclass) saying why the list is refused whole.
    """
    fmt = fmt or detect_format(path)
    if fmt == folder.FORMAT:
        return folder.parse(path, now)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TrustListFormatError(f"{path.name}: {err.strerror}") from err
    if fmt == dsclist.FORMAT:
        if key is None:
            raise TrustListSignatureError("a signed DSC list needs the pinned key (--trust-list-key)")
        return dsclist.parse(data, key, now, last_import=last_import, max_age=max_age)
    if fmt == austria.FORMAT:
        if key is None:
            raise TrustListSignatureError("an Austrian list needs the pinned key (--trust-list-key)")
        if signature is None:
            sig_path = path.with_name(path.name + ".sig")
            try:
                signature = sig_path.read_bytes()
            except OSError as err:
                raise TrustListFormatError(f"no signature file {sig_path.name}") from err
        return austria.parse(data, signature, key, now, last_import=last_import, max_age=max_age)
    if fmt == gateway.FORMAT:
        return gateway.parse(data, now, anchors=anchors, last_import=last_import, max_age=max_age)
    raise TrustListFormatError(f"unknown format {fmt!r} (chot reads {', '.join(FORMATS)})")
