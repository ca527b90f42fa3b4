"""CBOR decoding with limits: nesting depth, item counts and string sizes, and no risky tags.

Before decoding, the inflate cap (verifier.hcert) bounds every string and array by the input
size, so a declared huge length fails at once without allocating. During decoding, cbor2
enforces the nesting depth, and its built-in semantic tags (bigfloats with huge exponents,
shared references that build cycles, regular expressions, ...) are refused outright: no HCERT
structure uses them. After decoding, the explicit limits on strings, arrays and maps are
checked: around the DCC by `check_limits`, inside the DCC by the schema walk
(verifier.schema), so each value is visited once.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from verifier.errors import CborLimitsError, CoseError

MAX_DEPTH = 16
MAX_ITEMS = 256  # entries in any one array or map
MAX_STRING = 8192  # bytes or characters in any one string
MAX_NODES = 4096  # values in the whole decoded object


def _refuse_tag(value: Any, immutable: bool = False) -> Any:
    raise ValueError("CBOR semantic tag not allowed in a health certificate")


def _refuse_shared(immutable: bool = False) -> Any:
    raise ValueError("CBOR shared references are not allowed in a health certificate")


_FROZENDICT = type(cbor2.loads(b"\xd2\xa0").value)  # cbor2 6 returns these inside tags
MAP_TYPES = (dict, _FROZENDICT)

def _plain(value: Any, immutable: bool = False) -> Any:
    return value


# Tags cbor2 would otherwise interpret; tag 18 / 61 (COSE, CWT) stay plain CBORTag values.
# Date tags 0 and 1 occur in real certificates (HU): keep their plain text or number.
_RISKY_TAGS = (2, 3, 4, 5, 25, 30, 35, 36, 37, 100, 256, 258, 260, 261, 1004, 55799)
_SEMANTIC: dict[int, Any] = {tag: _refuse_tag for tag in _RISKY_TAGS}
_SEMANTIC.update({0: _plain, 1: _plain, 28: _refuse_shared, 29: _refuse_tag})


def loads(data: bytes, what: str = "CBOR", immutable: bool = False, whole: bool = False) -> Any:
    """Decode one CBOR item within the depth limit and without risky semantic tags.

    With `whole`, bytes after the item are refused (cbor2.loads ignores them): for unsigned
    framing such as the COSE message itself, where nothing may ride along unverified.

    :raises CborLimitsError: when nested deeper than MAX_DEPTH.
    :raises CoseError: when the bytes are not well-formed CBOR, or have a tail with `whole`.
    """
    try:
        if whole:
            stream = io.BytesIO(data)
            item = cbor2.CBORDecoder(stream, max_depth=MAX_DEPTH, semantic_decoders=_SEMANTIC).decode(
                immutable=immutable)
            if stream.tell() != len(data):
                raise CoseError(f"{what}: {len(data) - stream.tell()} bytes after the CBOR item")
            return item
        return cbor2.loads(data, max_depth=MAX_DEPTH, semantic_decoders=_SEMANTIC, immutable=immutable)
    except cbor2.CBORDecodeError as err:
        if "depth" in str(err):
            raise CborLimitsError(f"{what}: nested deeper than {MAX_DEPTH}") from err
        raise CoseError(f"{what}: {err}") from err
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as err:
        raise CoseError(f"{what}: {err}") from err


def head_size(argument: int) -> int:
    """Bytes of a CBOR head carrying `argument` in its shortest form."""
    return 1 if argument < 24 else 2 if argument < 0x100 else 3 if argument < 0x10000 else 5 if argument < 0x100000000 else 9


def shortest_size(item: Any, depth: int = 0) -> int:
    """Bytes of the shortest CBOR encoding of a small decoded item; -1 when not known.

    Every other encoding of the item (longer heads, indefinite lengths) is longer, so when the
    shortest size equals the input length the decoder has read all of the input.
    """
    kind = type(item)
    if kind is bytes:
        return head_size(len(item)) + len(item)
    if kind is list or kind is tuple:
        total = head_size(len(item))
    elif kind is dict or kind is _FROZENDICT:
        total = head_size(len(item))
        item = [*item.keys(), *item.values()]
    elif kind is cbor2.CBORTag:
        item, total = (item.value,), head_size(item.tag)
    elif kind is int:
        return head_size(item if item >= 0 else -1 - item) if -(1 << 64) <= item < (1 << 64) else -1
    elif kind is str:
        size = len(item.encode("utf-8", "surrogatepass"))
        return head_size(size) + size
    else:
        return 1 if item is None or item is True or item is False else -1  # floats: several sizes
    if depth > 4:
        return -1
    for child in item:
        size = shortest_size(child, depth + 1)
        if size < 0:
            return -1
        total += size
    return total


def extras_within_limits(mapping: Any, known: frozenset[str]) -> bool:
    """True when every key outside `known`, and its value, is within the limits."""
    try:
        for key, value in mapping.items():
            if key not in known:
                check_limits(key)
                check_limits(value)
    except CborLimitsError:
        return False
    return True


def check_limits(value: Any, skip: Any = None) -> None:
    """Walk a decoded value and refuse oversized arrays, maps, strings or too many values.

    `skip` is a container (by identity) left out of the walk: the DCC, whose every field the
    schema check bounds as it goes (see verifier.schema), so it is not walked twice.

    :raises CborLimitsError: naming the limit that was exceeded.
    """
    if type(value) is str or type(value) is bytes:
        if len(value) > MAX_STRING:
            raise CborLimitsError(f"a string of {len(value)} exceeds {MAX_STRING}")
        return
    containers = [value]
    nodes = 0
    while containers:
        item = containers.pop()
        kind = type(item)
        if kind is dict or kind is _FROZENDICT:
            if len(item) > MAX_ITEMS:
                raise CborLimitsError(f"a map of {len(item)} entries exceeds {MAX_ITEMS}")
            children: list[Any] | tuple[Any, ...] = [*item.keys(), *item.values()]
        elif kind is list or kind is tuple:
            if len(item) > MAX_ITEMS:
                raise CborLimitsError(f"an array of {len(item)} items exceeds {MAX_ITEMS}")
            children = item
        elif kind is cbor2.CBORTag:
            children = (item.value,)
        else:
            continue  # a scalar: nothing inside
        nodes += len(children)
        if nodes > MAX_NODES:
            raise CborLimitsError(f"more than {MAX_NODES} values")
        for child in children:
            kind = type(child)
            if kind is str or kind is bytes:
                if len(child) > MAX_STRING:
                    raise CborLimitsError(f"a string of {len(child)} exceeds {MAX_STRING}")
            elif (kind is dict or kind is _FROZENDICT or kind is list or kind is tuple
                  or kind is cbor2.CBORTag) and child is not skip:
                containers.append(child)
