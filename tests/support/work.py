"""Clock-free measures of work for tests: how many function calls a piece of code makes.

A duration depends on how busy the machine is; a count of calls does not, so tests bound work
with these and leave speed to bench/.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def count_calls(fn: Callable[[], T]) -> tuple[T, int]:
    """Run `fn` once; return its result and how many Python and C function calls it made."""
    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn()
    finally:
        sys.setprofile(previous)
    return result, calls
