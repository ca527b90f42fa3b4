"""Shared fixtures live in tests/support/ (one plugin per concern)."""

import importlib.util

pytest_plugins = [
    name
    for name in ("tests.support.ministry", "tests.support.broker", "tests.support.browser",
                 "tests.support.postgres", "tests.support.stores", "tests.support.nats",
                 "tests.support.markers")
    if importlib.util.find_spec(name) is not None
]
