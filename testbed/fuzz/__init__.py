"""Hostile inputs for fuzzing the scan path: crafted payloads (`hostile`), images with huge
declared sizes (`hugeimages`), the fuzz targets (`targets`) and byte mutations of a seed."""

from __future__ import annotations

import random


def byte_mutations(seed: bytes, rng: random.Random, count: int) -> list[bytes]:
    """`count` copies of `seed`, each with one byte flipped, deleted or inserted."""
    out = []
    for _ in range(count):
        if not seed:
            break
        i = rng.randrange(len(seed))
        op = rng.randrange(3)
        if op == 0:
            out.append(seed[:i] + bytes([seed[i] ^ (1 << rng.randrange(8))]) + seed[i + 1:])
        elif op == 1:
            out.append(seed[:i] + seed[i + 1:])
        else:
            out.append(seed[:i] + bytes([rng.randrange(256)]) + seed[i:])
    return out
