"""Base45 (RFC 9285) encoding and decoding, written for speed: decoding is on the hot path."""

from __future__ import annotations

import struct

from verifier.errors import Base45Error

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

# Byte -> digit value; 0xFF marks a byte outside the alphabet. bytes.translate runs in C.
_DIGITS = bytes(ALPHABET.find(chr(b)) if chr(b) in ALPHABET else 0xFF for b in range(256))
_INVALID = 0xFF


_masks: dict[int, int] = {}


def _low_byte_mask(groups: int) -> int:
    """0x0000FF repeated `groups` times, as an integer (cached for certificate-sized inputs)."""
    mask = _masks.get(groups)
    if mask is None:
        mask = int.from_bytes(b"\x00\x00\xff" * groups, "big")
        if groups <= 4096:
            _masks[groups] = mask
    return mask


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
    # Each group c0 c1 c2 is worth c0 + 45*c1 + 2025*c2 (at most 91124 < 2**24). Read all the
    # digits as one big integer of 3-byte slots, pick each digit out of every slot at once with
    # a shift and a mask, combine with two multiplications and two additions (no carry crosses
    # a slot), and keep each slot's low two bytes. Every step runs in C; a per-group Python
    # loop costs four times as much.
    slots = int.from_bytes(digits[:cut], "big")
    mask = _low_byte_mask(full)
    values = (
        ((slots >> 16) & mask) + 45 * ((slots >> 8) & mask) + 2025 * (slots & mask)
    ).to_bytes(cut, "big")
    if values[0::3].count(0) != full:
        raise Base45Error("a three-character group is larger than 65535")
    out = bytearray(values)
    del out[0::3]  # each slot's high byte, zero: what stays is the output, two bytes per group
    if rest == 2:
        last = digits[cut] + digits[cut + 1] * 45
        if last > 0xFF:
            raise Base45Error("the final two-character group is larger than 255")
        out.append(last)
    return bytes(out)
