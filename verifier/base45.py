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
    # Each group c0 c1 c2 is worth c0 + 45*c1 + 2025*c2 (at most 91124 < 2**24). Spread each
    # digit stream into 3-byte big-endian slots of one big integer, combine the three with two
    # multiplications and two additions (no carry crosses a slot), then keep each slot's low two
    # bytes. Every step runs in C; a per-group Python loop costs three times as much.
    slots = bytearray(cut)
    slots[2::3] = digits[0:cut:3]
    low = int.from_bytes(slots, "big")
    slots[2::3] = digits[1:cut:3]
    mid = int.from_bytes(slots, "big")
    slots[2::3] = digits[2:cut:3]
    high = int.from_bytes(slots, "big")
    values = (low + 45 * mid + 2025 * high).to_bytes(cut, "big")
    if values[0::3].count(0) != full:
        raise Base45Error("a three-character group is larger than 65535")
    out = bytearray(2 * full)
    out[0::2] = values[1::3]
    out[1::2] = values[2::3]
    if rest == 2:
        last = digits[cut] + digits[cut + 1] * 45
        if last > 0xFF:
            raise Base45Error("the final two-character group is larger than 255")
        out.append(last)
    return bytes(out)
