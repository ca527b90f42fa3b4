"""GPIO feedback through gpiozero's mock pin factory: LEDs, buzzer and gate relay per verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from scanner.config import GpioPins, GpioSection
from scanner.gpio import GpioError, GpioFeedback
from verifier import Verdict

PINS = GpioPins(green=5, yellow=6, red=13, buzzer=19, relay=26)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = previous


def verdict(result: str) -> Verdict:
    return Verdict(result=result, reason="x", message_en="", message_vi="")


def state(factory: MockFactory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


def wait_until(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def buzzer_pulses(factory: MockFactory) -> int:
    """Rising edges the buzzer pin has seen (MockPin keeps the history of its states)."""
    states = [s.state for s in factory.pin(PINS.buzzer).states]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if not a and b)


def test_green_lights_green_beeps_once_and_opens_the_gate_for_a_while(factory: MockFactory) -> None:
    gpio = GpioFeedback(GpioSection(enabled=True, pins=PINS, relay_seconds=0.3, led_seconds=0.3))
    try:
        gpio(verdict("green"))
        assert state(factory, PINS.green) and not state(factory, PINS.yellow) and not state(factory, PINS.red)
        assert state(factory, PINS.relay)
        assert wait_until(lambda: not state(factory, PINS.relay) and not state(factory, PINS.green))
        assert wait_until(lambda: buzzer_pulses(factory) == 1 and not state(factory, PINS.buzzer))
    finally:
        gpio.close()


def test_yellow_beeps_twice_and_keeps_the_gate_shut(factory: MockFactory) -> None:
    gpio = GpioFeedback(GpioSection(enabled=True, pins=PINS, led_seconds=0.3))
    try:
        gpio(verdict("yellow"))
        assert state(factory, PINS.yellow) and not state(factory, PINS.relay)
        assert wait_until(lambda: buzzer_pulses(factory) == 2 and not state(factory, PINS.buzzer))
    finally:
        gpio.close()


def test_red_after_green_shuts_the_gate_at_once(factory: MockFactory) -> None:
    gpio = GpioFeedback(GpioSection(enabled=True, pins=PINS, relay_seconds=10, led_seconds=10))
    try:
        gpio(verdict("green"))
        assert state(factory, PINS.relay)
        gpio(verdict("red"))
        assert not state(factory, PINS.relay) and not state(factory, PINS.green)
        assert state(factory, PINS.red)
    finally:
        gpio.close()
    assert not any(state(factory, p) for p in (PINS.green, PINS.yellow, PINS.red, PINS.buzzer, PINS.relay))


def test_active_low_relay_board(factory: MockFactory) -> None:
    gpio = GpioFeedback(GpioSection(enabled=True, pins=PINS, relay_active_high=False, relay_seconds=5))
    try:
        assert state(factory, PINS.relay)  # idle = high on an active-low board: gate shut
        gpio(verdict("green"))
        assert not state(factory, PINS.relay)
    finally:
        gpio.close()


def test_a_pin_in_use_is_a_clear_error(factory: MockFactory) -> None:
    first = GpioFeedback(GpioSection(enabled=True, pins=PINS))
    try:
        with pytest.raises(GpioError, match="cannot set up GPIO pins"):
            GpioFeedback(GpioSection(enabled=True, pins=PINS))
    finally:
        first.close()
