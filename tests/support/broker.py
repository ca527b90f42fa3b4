"""A real Mosquitto broker on a free loopback port, for tests (a pytest plugin).

`mosquitto_factory(...)` starts a broker (testbed.mosquitto) and returns a `Mosquitto`; every
broker it started is stopped at teardown, and its log is printed when a test fails so
broker-side refusals are visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from common.localnet import free_port
from testbed.mosquitto import Mosquitto, make_conf, wait_for_port, write_password_file

__all__ = ["Mosquitto", "free_port", "mosquitto", "mosquitto_factory", "wait_for_port"]


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory,
                      request: pytest.FixtureRequest) -> Iterator[Callable[..., Mosquitto]]:
    """Start real brokers: `mosquitto_factory(conf_text=None, passwords=None, acl=None, port=None)`.

    With `conf_text` the given config is used (placeholders `{port}`, `{workdir}`); otherwise the
    standard test config, anonymous unless `passwords` are given.
    """
    started: list[Mosquitto] = []

    def make(conf_text: str | None = None, *, passwords: dict[str, str] | None = None,
             acl: str | None = None, port: int | None = None, start: bool = True,
             anonymous: bool | None = None, extra: str = "") -> Mosquitto:
        workdir = tmp_path_factory.mktemp("mosquitto")
        if conf_text is None:
            pw_file = acl_file = None
            if passwords is not None:
                pw_file = workdir / "passwd"
                write_password_file(pw_file, passwords)
            if acl is not None:
                acl_file = workdir / "acl"
                acl_file.write_text(acl)
            anon = (passwords is None) if anonymous is None else anonymous
            conf_text = make_conf(anonymous=anon, password_file=pw_file, acl_file=acl_file, extra=extra)
        broker = Mosquitto(workdir, conf_text, port or free_port())
        started.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    failed = getattr(request.node, "rep_call", None)
    for broker in started:
        if failed is not None and failed.failed:
            print(f"--- mosquitto log ({broker.workdir}) ---\n{broker.log_text()}")
        broker.kill() if broker.running else None


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """One started broker that allows anonymous clients (for tests not about auth)."""
    return mosquitto_factory()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
