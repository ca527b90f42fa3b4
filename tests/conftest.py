"""Shared fixtures live in tests/support/ (one plugin per concern), over testbed/'s machinery;
the session's test ministry is here."""

import importlib.util

import pytest

from testbed.ministry import Ministry

pytest_plugins = [
    name
    for name in ("tests.support.broker", "tests.support.browser",
                 "tests.support.postgres", "tests.support.stores", "tests.support.nats")
    if importlib.util.find_spec(name) is not None
]


@pytest.fixture(scope="session")
def ministry() -> Ministry:
    """The session's test ministry (testbed.ministry; keys generated once)."""
    return Ministry()
