"""The HC1 transport layers: context prefix, Base45 and zlib with a hard cap on the inflated size."""

from __future__ import annotations

import zlib

from verifier.base45 import b45decode
from verifier.errors import InputTooLarge, PrefixError, ZlibBomb, ZlibError

PREFIX = "HC1:"
MAX_PAYLOAD_CHARS = 8192  # a version-40 QR holds at most 4296 alphanumeric characters
MAX_INFLATED = 64 * 1024  # real certificates inflate to a few kilobytes


def unprefix(payload: str) -> str:
    """Strip the HC1: prefix (and surrounding whitespace a scanner may add).

    :raises PrefixError: when the text does not start with HC1:.
    """
    if not isinstance(payload, str):
        raise PrefixError("payload is not text")
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise InputTooLarge(f"{len(payload)} characters")
    text = payload.strip()
    if not text.startswith(PREFIX):
        raise PrefixError("missing HC1: prefix")
    return text[len(PREFIX):]


def inflate(data: bytes, max_size: int = MAX_INFLATED) -> bytes:
    """Inflate zlib data, refusing more than `max_size` output bytes without ever holding more.

    HCERT requires zlib; data without a zlib header is refused (dgc-testdata common/Z2).

    :raises ZlibBomb: when the output would exceed `max_size`.
    :raises ZlibError: when the zlib stream is corrupt or truncated.
    """
    if len(data) < 2 or data[0] & 0x0F != 8 or ((data[0] << 8) | data[1]) % 31:
        raise ZlibError("not zlib data (no zlib header)")
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_size)
    except zlib.error as err:
        raise ZlibError(str(err)) from err
    if inflater.unconsumed_tail:
        raise ZlibBomb(f"inflates beyond {max_size} bytes")
    if not inflater.eof:
        raise ZlibError("truncated zlib stream")
    if inflater.unused_data:  # bytes outside the compressed (and so the signed) data: refuse
        raise ZlibError("data after the end of the zlib stream")
    return out


def decode_transport(payload: str, max_inflated: int = MAX_INFLATED) -> bytes:
    """Turn an HC1 payload string into the COSE bytes: unprefix, Base45, inflate."""
    return inflate(b45decode(unprefix(payload)), max_inflated)
