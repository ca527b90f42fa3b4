"""Decision buttons on GPIO (gpiozero's mock pin factory): a press decides on the waiting verdict
for the signed-in officer; refused presses (nobody signed in, nothing waiting, a second press on
the same verdict) record nothing and sound the red tone."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from gpiozero.pins.mock import MockFactory

from scanner.config import GpioButtons
from scanner.gpio import DecisionButtons
from scanner.officers import OfficerDesk, RosterKeeper
from scanner.outbox import Outbox
from tests.support.officers import officer, public_pem, roster_key, signed_roster
from tests.test_scanner_gpio import factory  # noqa: F401 - the mock pin factory fixture
from verifier.policy import builtin_policy

UTC = dt.timezone.utc
BUTTONS = GpioButtons(enabled=True, let_through=16, turn_back=20, sign_out=21, bounce_ms=5)


@pytest.fixture
def rig(tmp_path, factory):
    key = roster_key()
    keeper = RosterKeeper(tmp_path / "roster.json", "IC7", lambda: [public_pem(key)])
    assert keeper.offer(signed_roster(key, "IC7", [officer("CA-1", "4821")], ["u1"]), "test").accepted
    outbox = Outbox(tmp_path / "outbox.sqlite")
    policy = builtin_policy("vn-2021")
    desk = OfficerDesk(keeper, "u1", lambda f: outbox.record(f, dt.datetime.now(UTC)),
                       lambda: (policy.decisions, policy.name, 1), tmp_path / "signin.json")
    signals: list[str] = []
    buttons = DecisionButtons(BUTTONS, desk, signals.append, pin_factory=factory)
    yield desk, outbox, buttons, signals, factory
    buttons.close()
    outbox.close()


def press(factory: MockFactory, pin: int) -> None:
    """Push a button wired to ground (pull-up: pressed = low), then let go."""
    p = factory.pin(pin)
    p.drive_low()
    time.sleep(0.02)
    p.drive_high()
    time.sleep(0.02)


def wait_until(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.01)
    return check()


def red_verdict(desk, outbox) -> int:
    seq = outbox.record({"result": "red", "reason": "policy_not_met", "policy": "vn-2021"}, dt.datetime.now(UTC))
    desk.note_verdict("red", "policy_not_met", "vn-2021", 1, seq)
    return seq


def test_let_through_button_records_one_decision(rig) -> None:
    desk, outbox, buttons, signals, factory = rig
    seq = red_verdict(desk, outbox)
    press(factory, BUTTONS.let_through)  # nobody signed in
    assert wait_until(lambda: buttons.refused == ["not_signed_in"]) and signals == ["red"]
    desk.sign_in("CA-1", "4821")
    press(factory, BUTTONS.let_through)
    assert wait_until(lambda: buttons.recorded == 1)
    press(factory, BUTTONS.let_through)  # the same verdict again
    assert wait_until(lambda: buttons.refused[-1] == "nothing_to_decide")
    events = outbox.pending()
    assert [(e.kind, e.outcome, e.reason, e.follows_seq, e.officer) for e in events[1:]] == [
        ("decision", "let_through", "paper_proof", seq, "CA-1")]


def test_turn_back_and_sign_out_buttons(rig) -> None:
    desk, outbox, buttons, signals, factory = rig
    desk.sign_in("CA-1", "4821")
    press(factory, BUTTONS.turn_back)  # no verdict waiting
    assert wait_until(lambda: buttons.refused == ["nothing_to_decide"])
    red_verdict(desk, outbox)
    press(factory, BUTTONS.turn_back)
    assert wait_until(lambda: buttons.recorded == 1)
    assert outbox.pending()[-1].outcome == "turned_back" and outbox.pending()[-1].reason == "no_proof"
    press(factory, BUTTONS.sign_out)
    assert wait_until(lambda: desk.officer is None)
    red_verdict(desk, outbox)
    press(factory, BUTTONS.let_through)
    assert wait_until(lambda: buttons.refused[-1] == "not_signed_in")
    assert outbox.backlog() == 3  # two verdicts and one decision
