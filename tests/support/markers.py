"""Markers that say what a test needs, set from the fixtures it uses, and the quick tier (a pytest plugin).

`./scripts/test --quick` (any pytest run with `--quick`) leaves out every test marked `broker`,
`cluster`, `postgres`, `nginx`, `browser` or `slow`: the pure and unit tests, no engines started.
A test gets its marker by hand (`pytestmark`) or here, from the fixtures it asks for, so a new
test on the `mosquitto` fixture cannot be left in the quick tier by mistake. For engines started
some other way, a guard watches every process a test starts: a test that starts Mosquitto,
PostgreSQL, nats-server, nginx or Playwright's browser driver while carrying none of these
markers fails with a message naming the marker to add.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

# Markers that keep a test out of the quick tier (each registered in pyproject.toml).
NEEDS = ("broker", "cluster", "postgres", "nginx", "browser", "slow")

# Fixture name -> the marker a test using it (directly or through other fixtures) needs.
FIXTURE_MARKERS = {
    "mosquitto": "broker",
    "mosquitto_factory": "broker",
    "postgres_cluster": "postgres",
    "postgres_url": "postgres",
    "nats_cluster_factory": "cluster",
    "national": "cluster",
    "browser": "browser",
    "page": "browser",
}

# A parameter value (a store backend, a broker kind) -> the marker a test run with it needs.
PARAM_MARKERS = {"postgres": "postgres", "nats": "cluster"}

# Executable name -> the marker a test starting it needs (the guard below).
PROGRAM_MARKERS = {
    "mosquitto": "broker",
    "initdb": "postgres",
    "pg_ctl": "postgres",
    "postgres": "postgres",
    "nats-server": "cluster",
    "nginx": "nginx",
    "node": "browser",  # Playwright's driver, which starts chromium
}

_running: list[pytest.Item | None] = []  # the test being run, if any (None: its teardown)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true",
                     help="chot: only the pure and unit tests (none marked " + ", ".join(NEEDS) + ")")


def needs_of(item: pytest.Item) -> set[str]:
    """The markers `item` needs from its fixtures and parameters (any fixture's "postgres" or "nats")."""
    names = set(getattr(item, "fixturenames", ()))
    needs = {marker for name, marker in FIXTURE_MARKERS.items() if name in names}
    callspec = getattr(item, "callspec", None)
    for value in (callspec.params.values() if callspec is not None else ()):
        if isinstance(value, str) and value in PARAM_MARKERS:
            needs.add(PARAM_MARKERS[value])
    return needs


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        have = {m.name for m in item.iter_markers()}
        for marker in sorted(needs_of(item) - have):
            item.add_marker(marker)
    if not config.getoption("--quick"):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if any(item.get_closest_marker(m) for m in NEEDS) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _running.append(item)
    try:
        yield
    finally:
        _running.remove(item)


WRAPPERS = {"runuser", "sudo", "su", "env", "nice", "ionice", "timeout", "setpriv", "chroot"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    # Session fixtures end in the last test's teardown, whatever its markers: stopping is allowed.
    _running.append(None)
    try:
        yield
    finally:
        _running.pop()


def program_marker(args: Any) -> str | None:
    """The marker needed to start `args` (a Popen argument list or string), if any.

    The program is the first word, or behind a wrapper (`runuser -u postgres -- .../initdb`) the
    first word that is a path; other words are arguments (a `-m postgres` is not PostgreSQL)."""
    parts = args.split() if isinstance(args, (str, bytes)) else list(args or ())
    words = [os.fsdecode(p) for p in parts if isinstance(p, (str, bytes, os.PathLike))]
    if not words:
        return None
    program = os.path.basename(words[0])
    if program in WRAPPERS:
        program = next((os.path.basename(w) for w in words[1:] if "/" in w), "")
    return PROGRAM_MARKERS.get(program)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "subprocess.Popen" or not _running or _running[-1] is None:
        return
    item = _running[-1]
    needed = program_marker(args[1])
    if needed is None or any(item.get_closest_marker(m) for m in NEEDS):
        return
    raise RuntimeError(f"{item.nodeid} starts {needed}-marked program {args[1]!r} but carries none of "
                       f"the markers {', '.join(NEEDS)}: add `pytestmark = pytest.mark.{needed}` to its "
                       "module (pyproject.toml lists them), or use the fixture that marks it")


sys.addaudithook(_audit)  # audit hooks cannot be removed; it does nothing outside a running test
