"""One checkpoint unit, wired: camera, capture, decode, debounce, verify, feedback, outbox, MQTT.

`Unit(config).run(stop)` starts everything, tells systemd READY=1, then once a second refreshes
the screen's status lines, records the clock, looks for trust bundles on USB and pings the
systemd watchdog while frames are being processed. Setting `stop` (SIGTERM, SIGINT) shuts the
parts down in reverse order.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import cv2

from scanner.camera import Camera
from scanner.camera.backends import open_camera
from scanner.capture import Capture, Frame
from scanner.config import UnitConfig
from scanner.debounce import Debounce
from scanner.pipeline import Decoder, Judge, Pipeline, utc_now
from verifier import Verdict
from verifier.errors import VerificationError

logger = logging.getLogger(__name__)

_TICK_S = 1.0
_USB_EVERY_S = 30.0
_PREVIEW_WIDTH = 480
# The watchdog is fed only while the pipeline went round, and the camera gave a frame, this recently.
STALL_SECONDS = 10.0


class UnitError(Exception):
    """The unit cannot start; the reason says what to fix."""


def sd_notify(message: str) -> bool:
    """Send a datagram to systemd's $NOTIFY_SOCKET (READY=1, WATCHDOG=1...); False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a stuck service manager must never stall the unit
            sock.connect(address)
            sock.send(message.encode())
        return True
    except OSError as e:
        logger.warning("sd_notify %s failed: %s", message.split("=")[0], e)
        return False


def watchdog_interval() -> float | None:
    """Half the systemd watchdog timeout (WATCHDOG_USEC), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.1)
    except ValueError:
        return None


class Unit:
    """All parts of a unit; seams for tests: camera, decoder and GPIO pin factory."""

    def __init__(self, config: UnitConfig, *, camera: Camera | None = None, decoder: Decoder | None = None,
                 pin_factory: Any = None, wall_clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self.wall_clock = wall_clock
        self.started_at = time.monotonic()
        self.stall_seconds = STALL_SECONDS
        """No frame or pipeline round for this long = stalled: the watchdog goes unfed."""
        self._camera = camera
        self._decoder = decoder
        self._pin_factory = pin_factory
        self._stoppers: list[tuple[str, Callable[[], None]]] = []
        self.outbox: Any = None
        self.trust: Any = None
        self.clock: Any = None
        self.link: Any = None
        self.screen: Any = None
        self.gpio: Any = None
        self.roster: Any = None
        self.desk: Any = None
        self.buttons: Any = None
        self.capture: Capture | None = None
        self.judge: Judge | None = None
        self.pipeline: Pipeline | None = None
        self.outbox_error: str | None = None
        self._last_usb = 0.0
        self._usb_seen: set[tuple[str, float]] = set()

    # -- building ---------------------------------------------------------------------------
    def start(self) -> None:
        """Build and start every part; on failure, stop what was started and raise UnitError."""
        try:
            self._start_parts()
        except Exception:
            self.stop()
            raise

    def _start_parts(self) -> None:
        from scanner.clock import ClockGuard
        from scanner.outbox import Outbox, OutboxError

        cfg = self.config
        try:
            cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
            self.outbox = Outbox(cfg.storage.data_dir / "outbox.sqlite")
        except (OSError, OutboxError) as e:
            raise UnitError(f"storage.data_dir: cannot open the outbox: {e}") from None
        self._stoppers.append(("outbox", self.outbox.close))
        self.clock = ClockGuard(cfg.storage.data_dir / "clock.json",
                                tolerance=timedelta(seconds=cfg.clock.max_skew_seconds))
        self._stoppers.append(("clock", self.clock.flush))
        self.trust = self._open_trust()

        max_age = timedelta(hours=cfg.trust.max_age_hours) if cfg.trust.max_age_hours else None
        try:
            judge = Judge(cfg.unit.policy, self.trust, max_trust_age=max_age,
                          clock_ok=lambda now, issued: self.clock.check(now, issued).ok)
        except VerificationError as e:  # verifier.policy.UnknownPolicy, a broken policy document
            raise UnitError(f"unit.policy: {e}") from None
        self.judge = judge
        self.trust.add_listener(judge.prepare)  # build the next trust store off the frame path
        judge.prepare(self.trust.current)
        if cfg.officers.enabled:
            self._start_desk()

        feedback: list[Callable[[Verdict], None]] = []
        if cfg.screen.enabled:
            self._start_screen()
            feedback.append(self.screen.show)
        if cfg.gpio.enabled:
            from scanner.gpio import GpioFeedback, GpioError

            try:
                self.gpio = GpioFeedback(cfg.gpio, pin_factory=self._pin_factory)
            except GpioError as e:
                raise UnitError(f"gpio: {e}") from None
            self._stoppers.append(("gpio", self.gpio.close))
            feedback.append(self.gpio)
            if cfg.gpio.buttons.enabled and self.desk is not None:
                from scanner.gpio import DecisionButtons

                try:
                    self.buttons = DecisionButtons(cfg.gpio.buttons, self.desk, self.gpio.signal,
                                                   pin_factory=self._pin_factory)
                except GpioError as e:
                    raise UnitError(f"gpio.buttons: {e}") from None
                self._stoppers.append(("buttons", self.buttons.close))

        if cfg.mqtt is not None:
            from scanner.mqtt import MqttLink

            self.link = MqttLink(cfg.mqtt, cfg.unit.device_id, cfg.unit.checkpoint, self.outbox,
                                 status_fn=self.health, on_trust=self._trust_from_mqtt,
                                 backoff_max=cfg.mqtt.reconnect_max_s, status_interval=cfg.mqtt.status_interval_s,
                                 on_roster=self._roster_from_mqtt if self.roster is not None else None)
            self.link.start()
            self._stoppers.append(("mqtt", self.link.stop))

        decoder = self._decoder
        if decoder is None:
            from scanner.qr.decode import QrDecoder

            decoder = QrDecoder()
        camera = self._camera or open_camera(cfg.camera)
        self.capture = Capture(camera)
        self.pipeline = Pipeline(self.capture, decoder, Debounce(cfg.debounce.gone_frames, cfg.debounce.gone_seconds),
                                 judge, feedback=feedback, recorders=[self._record], max_fps=cfg.decode.max_fps,
                                 wall_clock=self.wall_clock)
        self.capture.start()
        self._stoppers.append(("capture", self.capture.stop))
        self.pipeline.start()
        self._stoppers.append(("pipeline", self.pipeline.stop))
        logger.info("unit %s at %s started (policy %s, camera %s, trust version %s)", cfg.unit.device_id,
                    cfg.unit.checkpoint, cfg.unit.policy, cfg.camera.backend,
                    getattr(self.trust.current, "version", None))

    def _open_trust(self) -> Any:
        from scanner.trust_sync import TrustKeeper, TrustSyncError

        cfg = self.config.trust
        try:
            anchor = cfg.anchor_file.read_bytes()
        except OSError as e:
            raise UnitError(f"trust.anchor_file: cannot read {cfg.anchor_file}: {e.strerror}") from None
        try:
            keeper = TrustKeeper(cfg.cache_dir, anchor)
        except (TrustSyncError, OSError) as e:
            raise UnitError(f"trust: {e}") from None
        for problem in keeper.problems:
            logger.warning("trust cache: %s", problem)
        if cfg.bundle_file is not None:
            result = keeper.load_file(cfg.bundle_file)
            logger.info("trust.bundle_file %s: %s", cfg.bundle_file, result.reason)
        self._check_usb(keeper)
        return keeper

    def _start_screen(self) -> None:
        from scanner.screen import OfficerScreen

        cfg = self.config.screen
        self.screen = OfficerScreen(cfg.host, cfg.port, language=self.config.screen_language,
                                    verdict_seconds=cfg.verdict_seconds, preview=self._preview_jpeg,
                                    preview_fps=cfg.preview_fps, desk=self.desk)
        if self.desk is not None:
            self.screen.state.advice = self._advice
            self.screen.state.update_desk(self.desk.view())
        try:
            self.screen.start()
        except OSError as e:
            raise UnitError(f"screen.port: cannot listen on {cfg.host}:{cfg.port}: {e.strerror}") from None
        self._stoppers.append(("screen", self.screen.stop))

    def _start_desk(self) -> None:
        from scanner.officers import OfficerDesk, RosterKeeper

        cfg = self.config
        data = cfg.storage.data_dir
        self.roster = RosterKeeper(data / "roster.json", cfg.unit.checkpoint,
                                   lambda: getattr(self.trust.current, "roster_keys", ()))
        self.trust.add_listener(lambda bundle: self.roster.recheck())  # a roster key may be withdrawn
        self.desk = OfficerDesk(self.roster, cfg.unit.device_id, self._record_decision, self._decision_rules,
                                data / "signin.json", idle_s=cfg.officers.idle_signout_s,
                                hold_s=cfg.officers.decision_hold_s, wall_clock=self.wall_clock,
                                on_change=self._desk_changed,
                                on_screen=lambda: self.screen is None or self.screen.state.has_verdict,
                                on_decided=lambda: self.screen is not None and self.screen.state.release())

    def _decision_rules(self) -> tuple[Any, str | None, int | None]:
        """The current policy's decision rules, its name and the trust version."""
        from verifier.decisions import DecisionRules

        assert self.judge is not None
        policy = self.judge.policy()
        return (getattr(policy, "decisions", None) or DecisionRules.none(), getattr(policy, "name", None),
                getattr(self.trust.current, "version", None))

    def _advice(self, verdict: Verdict) -> dict[str, Any] | None:
        return self._decision_rules()[0].next_step(verdict.reason, verdict.result)

    def _desk_changed(self) -> None:
        if self.screen is not None and self.desk is not None:
            pending = self.desk.pending()
            if pending is not None and self.desk.officer is not None:
                # An officer who signs in while a yellow or red is up gets it held to decide on.
                self.screen.state.hold(max(0.0, pending.until - time.monotonic()))
            self.screen.state.update_desk(self.desk.view())

    # -- callbacks ----------------------------------------------------------------------------
    def _record(self, verdict: Verdict, now: datetime) -> None:
        """Recorder: the verdict's event fields into the outbox, then wake the MQTT link."""
        seq = self._into_outbox(verdict.event_fields(), now)
        if self.desk is not None:
            hold = self.desk.note_verdict(verdict.result, verdict.reason, verdict.policy, verdict.trust_version, seq)
            if hold and self.screen is not None:
                self.screen.state.hold(self.desk.hold_s)
            self._desk_changed()

    def _record_decision(self, fields: dict[str, Any]) -> int:
        """An officer's decision into the outbox (one transaction), then wake the MQTT link."""
        return self._into_outbox(fields, self.wall_clock())

    def _into_outbox(self, fields: dict[str, Any], now: datetime) -> int:
        """Record durably (a failure is shown on screen and raised), then wake the MQTT link."""
        try:
            seq = int(self.outbox.record(fields, now))
            self.outbox_error = None
        except Exception as e:
            self.outbox_error = str(e)
            raise
        if self.link is not None:
            self.link.wake()
        return seq

    def _roster_from_mqtt(self, data: bytes) -> None:
        result = self.roster.offer(data, "mqtt")
        logger.info("officer roster from mqtt: %s", result.reason)
        self._desk_changed()

    def _trust_from_mqtt(self, data: bytes) -> None:
        result = self.trust.offer(data, "mqtt")
        logger.info("trust bundle from mqtt: %s", result.reason)

    def _check_usb(self, keeper: Any) -> None:
        pattern = self.config.trust.usb_glob
        self._last_usb = time.monotonic()
        if not pattern:
            return
        for path in sorted(glob.glob(pattern)):
            try:
                key = (path, os.stat(path).st_mtime)
            except OSError:
                continue
            if key in self._usb_seen:
                continue
            self._usb_seen.add(key)
            logger.info("trust bundle on USB %s: %s", path, keeper.load_file(path).reason)

    def _preview_jpeg(self) -> bytes | None:
        capture = self.capture
        if capture is None:
            return None

        def shrink(frame: Frame) -> Any:
            h, w = frame.gray.shape
            return cv2.resize(frame.gray, (_PREVIEW_WIDTH, max(1, h * _PREVIEW_WIDTH // w)),
                              interpolation=cv2.INTER_AREA)

        small = capture.latest.peek(shrink)
        if small is None:
            return None
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
        return jpeg.tobytes() if ok else None

    # -- status -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The status topic's payload (no personal data)."""
        from scanner.health import collect

        now = self.wall_clock()
        bundle = self.trust.current if self.trust is not None else None
        issued = getattr(bundle, "issued_at", None)
        return collect(now=now, started_monotonic=self.started_at, trust_version=getattr(bundle, "version", None),
                       trust_issued_at=issued, backlog=self.outbox.backlog(),
                       clock=self.clock.check(now, issued).reason,
                       fps=self.capture.fps if self.capture is not None else None)

    def screen_status(self, now: datetime) -> dict[str, Any]:
        """The status lines of the officer screen."""
        bundle = self.trust.current
        issued = getattr(bundle, "issued_at", None)
        clock = self.clock.check(now, issued)
        next_update = getattr(bundle, "next_update", None)
        limit = self.judge.trust_limit() if self.judge is not None else None
        # Past the limit verdicts are capped at yellow; past next_update a newer bundle is due.
        stale = bundle is not None and ((next_update is not None and now > next_update)
                                        or (limit is not None and now - issued > limit))
        capture = self.capture
        return {
            "trust": {"version": getattr(bundle, "version", None),
                      "age_s": int((now - issued).total_seconds()) if issued else None, "stale": stale},
            "network": {"connected": None if self.link is None else bool(self.link.connected),
                        "backlog": self.outbox.backlog()},
            "clock": {"ok": clock.ok, "reason": clock.reason},
            "counts": {**self.outbox.counts_today(date.today()),
                       **self.outbox.counts_today(date.today(), kinds=("decision", "manual"))},
            "camera": {"fps": round(capture.fps, 1) if capture else None,
                       "error": capture.error if capture else None},
            "outbox_error": self.outbox_error,
        }

    def tick(self) -> None:
        """Once a second: remember the time, refresh the screen, look at USB."""
        now = self.wall_clock()
        if self.clock is not None:
            self.clock.record(now)
        if self.screen is not None:
            self.screen.update_status(self.screen_status(now))
            self._desk_changed()  # sign-out after inactivity, lock-out countdown, roster expiry
        if time.monotonic() - self._last_usb >= _USB_EVERY_S and self.trust is not None:
            self._check_usb(self.trust)

    @property
    def healthy(self) -> bool:
        """Pipeline and capture alive and moving (feeds the systemd watchdog).

        A camera that reports an error, or a replay that ended, is not stalled: the screen says
        so and capture retries. A read that hangs with neither is, and a restart may cure it.
        """
        pipeline, capture, now = self.pipeline, self.capture, time.monotonic()
        if pipeline is None or capture is None or not pipeline.running:
            return False
        if not capture.running and not capture.ended:
            return False
        if now - pipeline.stats.last_loop_at >= self.stall_seconds:
            return False
        waiting_since = capture.last_frame_at or self.started_at
        return capture.ended or capture.error is not None or now - waiting_since < self.stall_seconds

    # -- running ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Start, serve until `stop` is set, then shut down cleanly."""
        self.start()
        try:
            sd_notify("READY=1\nSTATUS=scanning")
            watchdog = watchdog_interval()
            last_ping = 0.0
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # a status glitch must not stop the checkpoint
                    logger.exception("unit: status refresh failed")
                if watchdog is not None and time.monotonic() - last_ping >= watchdog and self.healthy:
                    sd_notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                stop.wait(min(_TICK_S, watchdog or _TICK_S))
        finally:
            sd_notify("STOPPING=1")
            self.stop()

    def stop(self) -> None:
        """Stop every started part, newest first; each gets its chance even if another fails."""
        while self._stoppers:
            name, stop = self._stoppers.pop()
            try:
                stop()
            except Exception:
                logger.exception("unit: stopping %s failed", name)
        logger.info("unit stopped")
