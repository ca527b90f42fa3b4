"""Base45 (RFC 9285) encoding and decoding, written for speed: decoding is on the hot path."""

from __future__ import annotations

import struct

from verifier.errors import Base45Error

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

# Byte -> digit value; 0xFF marks a byte outside the alphabet. bytes.translate runs in C.
_DIGITS = bytes(ALPHABET.find(chr(b)) if chr(b) in ALPHABET else 0xFF for b in range(256))
_INVALID = 0xFF


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text."""
    full, rest = divmod(len(data), 2)
    out = []
    alphabet = ALPHABET
    for (value,) in struct.iter_unpack(">H", data[: full * 2]):
        value, c = divmod(value, 45)
        e, d = divmod(value, 45)
        out.append(alphabet[c] + alphabet[d] + alphabet[e])
    if rest:
        e, d = divmod(data[-1], 45)
        out.append(alphabet[d] + alphabet[e])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode Base45 text to bytes.

    :raises Base45Error: on a character outside the alphabet, a dangling single character or a
        group whose value is out of range.
    """
    try:
        raw = text.encode("ascii")
    except (UnicodeEncodeError, AttributeError) as err:
        raise Base45Error("not ASCII text") from err
    digits = raw.translate(_DIGITS)
    if _INVALID in digits:
        raise Base45Error(f"character outside the Base45 alphabet at {digits.index(_INVALID)}")
    full, rest = divmod(len(digits), 3)
    if rest == 1:
        raise Base45Error("length leaves a single dangling character")
    cut = full * 3
    values = [
        a + b * 45 + c * 2025
        for a, b, c in zip(digits[0:cut:3], digits[1:cut:3], digits[2:cut:3])
    ]
    if values and max(values) > 0xFFFF:
        raise Base45Error("a three-character group is larger than 65535")
    out = struct.pack(f">{full}H", *values)
    if rest == 2:
        last = digits[cut] + digits[cut + 1] * 45
        if last > 0xFF:
            raise Base45Error("the final two-character group is larger than 255")
        out += bytes((last,))
    return out
