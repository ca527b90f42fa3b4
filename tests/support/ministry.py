"""The `ministry` fixture: a test ministry (testbed.ministry) made once per session."""

from __future__ import annotations

import pytest

from testbed.ministry import Ministry, tamper

__all__ = ["Ministry", "ministry", "tamper"]


@pytest.fixture(scope="session")
def ministry() -> Ministry:
    """The session's test ministry (keys generated once)."""
    return Ministry()
