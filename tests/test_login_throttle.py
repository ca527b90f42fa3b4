"""Login throttling that cannot be turned against users (issue 27): growing delays kept apart per
account and address, a correct login from elsewhere unhindered, the administrator told."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dashboard.store import LoginFailures
from dashboard.web.login_throttle import Step, ThrottlePolicy
from tests.support.dashboard_web import (
    Seeded,
    login,
    make_app,
    page_token,
    seeded,  # noqa: F401 - fixture
)


class Clock:
    """The app's clock, moved by the test (the delays are in seconds, the test takes none)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock(seeded: Seeded) -> Clock:
    return Clock(seeded.now)


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path, clock: Clock) -> Any:
    return make_app(seeded, tmp_path / "instance", CHOT_NOW=clock)


def from_address(app: Any, ip: str) -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def test_delays_grow_exponentially_up_to_their_cap() -> None:
    step = Step(after=5, first_s=30, cap_s=900)
    assert [step.delay_s(n) for n in (0, 4, 5, 6, 7, 8, 9, 10, 11, 1000)] == [0, 0, 30, 60, 120, 240, 480, 900, 900, 900]
    policy = ThrottlePolicy.for_max_failures(5)
    t = datetime(2026, 12, 8, tzinfo=timezone.utc)
    seen = LoginFailures(pair=6, pair_last=t, address=6, address_last=t, account_addresses=1, account_last=t)
    assert policy.wait_s(seen, t) == 60
    assert policy.wait_s(seen, t + timedelta(seconds=45)) == 15
    assert policy.wait_s(seen, t + timedelta(seconds=61)) == 0


def test_one_address_hammering_does_not_stop_a_correct_login_from_another(app: Any, clock: Clock) -> None:
    attacker = from_address(app, "203.0.113.9")
    for i in range(4):  # a few typos cost nothing
        assert login(attacker, "admin", f"typo-{i}").status_code == 401
    waits = []
    for i in range(10):
        assert login(attacker, "admin", f"guess-{i}").status_code == 401
        refused = login(attacker, "admin")  # even the right password is not tried while it must wait
        assert refused.status_code == 429, (i, refused.status_code)
        assert "Quá nhiều lần đăng nhập sai" in refused.get_data(as_text=True)
        wait = int(refused.headers["Retry-After"])
        waits.append(wait)
        # Meanwhile the administrator logs in from the office, and a colleague from the same
        # address into another account.
        assert login(from_address(app, "198.51.100.7"), "admin").status_code == 302
        assert login(from_address(app, "203.0.113.9"), "sup_lc").status_code == 302
        clock.advance(wait - 1)
        assert login(attacker, "admin").status_code == 429  # a second early is still too early
        clock.advance(1)
    # Growing, doubling, capped at a quarter of an hour; never one lock for everyone.
    assert waits[:6] == [30, 60, 120, 240, 480, 900] and set(waits[6:]) == {900}, waits


def test_spraying_many_accounts_from_one_address_slows_that_address_only(app: Any, clock: Clock) -> None:
    sprayer = from_address(app, "203.0.113.50")
    for i in range(15):
        assert login(sprayer, f"user{i}", "guess-guess").status_code == 401
    assert login(sprayer, "view_lc").status_code == 429  # this address now waits for any account
    assert login(from_address(app, "198.51.100.7"), "view_lc").status_code == 302
    clock.advance(31)
    assert login(from_address(app, "203.0.113.50"), "view_lc").status_code == 302  # the wait was a delay, not a lock


def test_many_addresses_failing_one_account_slow_it_briefly(app: Any, clock: Clock) -> None:
    for n in range(5):
        assert login(from_address(app, f"203.0.113.{n}"), "sup_hn", "guess-guess").status_code == 401
    resp = login(from_address(app, "198.51.100.7"), "sup_hn")
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) <= 30
    clock.advance(int(resp.headers["Retry-After"]))
    assert login(from_address(app, "198.51.100.7"), "sup_hn").status_code == 302


def test_the_administrator_sees_the_attack_on_the_audit_page(app: Any, clock: Clock) -> None:
    attacker = from_address(app, "203.0.113.9")
    for i in range(5):
        login(attacker, "sup_lc", f"guess-{i}")
    admin = from_address(app, "198.51.100.7")
    assert login(admin, "admin").status_code == 302
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert 'data-action="login_attack"' in page
    assert "sup_lc @ 203.0.113.9" in page
    assert "5 lần sai cho tài khoản này từ địa chỉ này" in page and "phải chờ 30 giây" in page
    # Told once when it starts (and every ten failures after), not once per guess.
    count = page.count('data-action="login_attack"')
    for i in range(3):
        clock.advance(900)
        login(from_address(app, "203.0.113.9"), "sup_lc", f"more-{i}")
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert page.count('data-action="login_attack"') == count == 1


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_slowed(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded, tmp_path / "instance", CHOT_TRUSTED_PROXIES=1)
    attacker, colleague = app.test_client(), app.test_client()
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
    colleague.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
    for _ in range(5):
        assert login(attacker, "admin", "guess-guess").status_code == 401
    assert login(attacker, "admin").status_code == 429
    assert login(colleague, "admin").status_code == 302
    assert page_token(colleague, "/admin/audit")
    assert "admin @ 203.0.113.9" in colleague.get("/admin/audit").get_data(as_text=True)
