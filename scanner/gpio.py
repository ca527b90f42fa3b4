"""Verdict feedback on GPIO through gpiozero: one LED per colour, a buzzer, a gate relay.

Green lights the green LED, beeps once and opens the gate relay for relay_seconds; yellow
beeps twice; red sounds one long tone. gpiozero is imported only when the outputs are built,
and its pin factory decides the hardware: on a Pi the real pins, in tests `MockFactory`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from verifier import Verdict

if TYPE_CHECKING:
    from scanner.config import GpioSection

logger = logging.getLogger(__name__)

# (on seconds, off seconds, repetitions) of the buzzer per result
BUZZ = {"green": (0.1, 0.1, 1), "yellow": (0.1, 0.1, 2), "red": (0.6, 0.1, 1)}


class GpioError(Exception):
    """The GPIO outputs cannot be set up (no gpiozero, no pin factory, pin in use)."""


class GpioFeedback:
    """LEDs, buzzer and relay; call it with a verdict."""

    def __init__(self, config: GpioSection, pin_factory: Any = None) -> None:
        try:
            from gpiozero import LED, Buzzer, DigitalOutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise GpioError("gpiozero is not installed (pip install 'chot[gpio]')") from None
        self.config = config
        pins = config.pins
        built: list[Any] = []
        try:
            for make in (lambda: LED(pins.green, pin_factory=pin_factory),
                         lambda: LED(pins.yellow, pin_factory=pin_factory),
                         lambda: LED(pins.red, pin_factory=pin_factory),
                         lambda: Buzzer(pins.buzzer, pin_factory=pin_factory),
                         lambda: DigitalOutputDevice(pins.relay, active_high=config.relay_active_high,
                                                     initial_value=False, pin_factory=pin_factory)):
                built.append(make())
        except (GPIOZeroError, OSError, RuntimeError) as e:
            for device in built:
                device.close()
            raise GpioError(f"cannot set up GPIO pins {pins}: {e}") from None
        self.leds = {"green": built[0], "yellow": built[1], "red": built[2]}
        self.buzzer = built[3]
        self.relay = built[4]

    def __call__(self, verdict: Verdict) -> None:
        """Feedback sink: show the verdict on the outputs (returns at once; gpiozero times them)."""
        self.signal(verdict.result)

    def signal(self, result: str) -> None:
        """Light the LED of `result`, sound the buzzer, open the gate on green."""
        for colour, led in self.leds.items():
            if colour == result:
                led.blink(on_time=self.config.led_seconds, off_time=0.01, n=1, background=True)
            else:
                led.off()
        on, off, n = BUZZ.get(result, BUZZ["red"])
        self.buzzer.blink(on_time=on, off_time=off, n=n, background=True)
        if result == "green":
            self.relay.blink(on_time=self.config.relay_seconds, off_time=0.01, n=1, background=True)
        else:
            self.relay.off()  # never leave the gate open for the next person

    def close(self) -> None:
        """Switch everything off and release the pins."""
        for device in (*self.leds.values(), self.buzzer, self.relay):
            try:
                device.off()
                device.close()
            except Exception:  # closing must go on for the other pins
                logger.exception("gpio: closing %r failed", device)
