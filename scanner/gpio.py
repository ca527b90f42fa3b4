"""Verdict feedback on GPIO through gpiozero: one LED per colour, a buzzer, a gate relay; and
decision buttons for units without a touch screen (`DecisionButtons`).

Green lights the green LED, beeps once and opens the gate relay for relay_seconds; yellow
beeps twice; red sounds one long tone. gpiozero is imported only when the outputs are built,
and its pin factory decides the hardware: on a Pi the real pins, in tests `MockFactory`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from verifier import Verdict

if TYPE_CHECKING:
    from scanner.config import GpioButtons, GpioSection

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


class DecisionButtons:
    """Three push buttons (to ground) for units without a touch screen: let through, turn back,
    sign out. A press decides on the yellow or red verdict waiting on the desk for the officer
    signed in on the screen; a refused press (nobody signed in, nothing to decide, a second press
    on the same verdict) sounds the red tone and records nothing."""

    def __init__(self, config: GpioButtons, desk: Any, signal: Any = None, pin_factory: Any = None) -> None:
        try:
            from gpiozero import Button
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise GpioError("gpiozero is not installed (pip install 'chot[gpio]')") from None
        self.config = config
        self.desk = desk
        self._signal = signal
        self.refused: list[str] = []
        """Codes of refused presses, newest last (for the log and tests)."""
        self.recorded = 0
        built: list[Any] = []
        try:
            for pin in (config.let_through, config.turn_back, config.sign_out):
                built.append(Button(pin, pull_up=True, bounce_time=config.bounce_ms / 1000, pin_factory=pin_factory))
        except (GPIOZeroError, OSError, RuntimeError) as e:
            for device in built:
                device.close()
            raise GpioError(f"cannot set up the decision buttons: {e}") from None
        self.let_through, self.turn_back, self.sign_out = built
        self.let_through.when_pressed = lambda: self.press("let_through", config.let_through_reason)
        self.turn_back.when_pressed = lambda: self.press("turned_back", config.turn_back_reason)
        self.sign_out.when_pressed = lambda: desk.sign_out()

    def press(self, outcome: str, reason: str) -> int | None:
        """Record `outcome` for the waiting verdict; the decision's seq, or None when refused."""
        from scanner.officers import DeskError

        pending = self.desk.pending()
        try:
            if pending is None:
                raise DeskError("nothing_to_decide", "", "no verdict waiting for a decision")
            seq = self.desk.decide(outcome, reason, pending.seq)
        except DeskError as e:
            self.refused.append(e.code)
            logger.info("gpio: %s press refused: %s", outcome, e.code)
            if self._signal is not None:
                self._signal("red")
            return None
        self.recorded += 1
        return int(seq)

    def close(self) -> None:
        """Release the pins."""
        for button in (self.let_through, self.turn_back, self.sign_out):
            try:
                button.close()
            except Exception:  # closing must go on for the other pins
                logger.exception("gpio: closing %r failed", button)
