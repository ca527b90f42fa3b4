"""A folder of document signer certificates (PEM or DER files), e.g. one an issuer sent by hand.

No signature covers a folder: the operator vouches for it by choosing it. Each certificate
still passes the per-entry checks (parses, validity, country from its subject).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.trustlists.common import (
    ImportedList,
    Refused,
    TrustListFormatError,
    aware,
    collect,
)

FORMAT = "folder"
SUFFIXES = (".pem", ".crt", ".cer", ".der")
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
MAX_FILE_BYTES = 1024 * 1024


def _ders(path: Path) -> list[bytes] | None:
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        return None
    if b"-----BEGIN" not in data:
        return [data]
    try:
        return [x509.load_pem_x509_certificate(block).public_bytes(Encoding.DER)
                for block in _PEM_BLOCK.findall(data)] or None
    except ValueError:
        return None


def parse(folder: Path, now: datetime) -> ImportedList:
    """Import every certificate file in `folder` (not its subfolders).

    :raises TrustListFormatError: when it is not a folder or holds no certificate file.
    """
    now = aware(now)
    if not folder.is_dir():
        raise TrustListFormatError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise TrustListFormatError(f"no certificate files ({', '.join(SUFFIXES)}) in {folder}")
    entries: list[tuple[bytes | None, bytes | None, str | None, str | None]] = []
    unreadable: list[Refused] = []
    for path in files:
        ders = _ders(path)
        if ders is None:
            unreadable.append(Refused("??", path.name, "file unreadable"))
            continue
        entries.extend((der, None, None, None) for der in ders)
    taken, refused = collect(entries, now)
    return ImportedList(FORMAT, None, taken, tuple(unreadable) + refused)
