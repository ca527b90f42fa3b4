"""The updater inside the running unit: check, fetch and stage in a thread; switch between people.

Driven by `Unit.tick()` once a second:
- in a trial (this process is the first start(s) of a new release) it evaluates the health
  gate; passed -> `good` follows `current`; not passed within `gate_s` -> switch back and restart;
- otherwise it starts a check when one is due (every `check_every_s`, or when `<root>/check-now`
  appears: the CLI and the dashboard's instruction touch it) in the "update" thread, which
  downloads and unpacks a newer release beside the running one;
- a staged release is switched to only when the unit is idle (no code in view, no verdict on
  screen, no decision pending, for `idle_s`) and inside the allowed hours; the unit then exits
  with EXIT_RESTART and systemd starts the new release.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from scanner.update.config import UpdateSection
from scanner.update.errors import GateFailed, UpdateError
from scanner.update.gate import HealthGate
from scanner.update.layout import MANIFEST, Layout, hold_point

logger = logging.getLogger(__name__)

EXIT_RESTART = 75
"""Exit status of a unit that switched releases: systemd restarts it (RestartForceExitStatus=75)."""
CHECK_NOW = "check-now"


def running_version() -> str | None:
    """The release this process runs (release.json beside its app/ tree), None when run from a source tree."""
    import scanner

    try:
        release = Path(scanner.__file__).resolve().parents[2]
        return str(json.loads((release / MANIFEST).read_bytes())["version"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


class UpdateAgent:
    """The unit's updater; `tick()` from the unit's loop, `status()` for its status topic."""

    def __init__(self, config: UpdateSection, unit: Any, *, running: str | None,
                 request_restart: Callable[[str], None],
                 local_hour: Callable[[], int] = lambda: datetime.now().hour) -> None:
        self.config = config
        self.unit = unit
        self.running = running
        self.layout = Layout(config.root)
        self.request_restart = request_restart
        self.local_hour = local_hour
        self.started = time.monotonic()
        state = self.layout.load()
        self.in_trial = state.phase == "trial" and running is not None and state.target == running
        self.gate = HealthGate(config, unit) if self.in_trial else None
        self.gate_reasons: list[str] = []
        self._thread: threading.Thread | None = None
        self._last_check = 0.0 if config.check_every_s else float("inf")
        self._switched = False
        if running is None:
            logger.warning("update: not running from a release under %s (no release.json): updates are off",
                           config.root)
        if self.in_trial:
            logger.info("update: release %s on trial (start %d of %d), health gate %.0f s",
                        running, state.starts, state.max_starts, config.gate_s)

    def preflight(self) -> None:
        """Before the camera opens: a release on trial verifies its self-test certificate first.

        :raises GateFailed: after switching back, so nobody is judged by a release that gets it wrong.
        """
        if not self.in_trial or self.gate is None or self.config.selftest_file is None:
            return
        reason = self.gate.selftest()
        if reason is None:
            return
        logger.error("update: release %s failed its self-test: %s", self.running, reason)
        with self.layout.locked():
            self.layout.roll_back(self.layout.load(), GateFailed.code, reason[:200])
        self.in_trial = False
        raise GateFailed(f"release {self.running}: {reason}; switched back to {self.layout.pointed('current')}")

    # -- the loop ----------------------------------------------------------------------------
    def tick(self) -> None:
        if self._switched or self.running is None:  # a source tree is updated with git, not here
            return
        if self.in_trial:
            self._judge_trial()
            return
        state = self.layout.load()
        if state.phase == "staged" and state.target is not None:
            # Only the switch is left: wait for a moment between people (idle() is sampled every tick).
            if self.idle() and self.config.in_hours(self.local_hour()):
                self._switch(state.target)
            return
        now = time.monotonic()
        trigger = self.layout.root / CHECK_NOW
        if (now - self._last_check >= self.config.check_every_s or trigger.exists()) and not self.checking:
            trigger.unlink(missing_ok=True)
            self._last_check = now
            self._thread = threading.Thread(target=self.check_and_stage, name="update", daemon=True)
            self._thread.start()

    @property
    def checking(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def idle(self) -> bool:
        """Between people: no code read for idle_s, nothing on screen, no decision waiting."""
        unit = self.unit
        pipeline = unit.pipeline
        last_read = max(pipeline.stats.last_read_at if pipeline is not None else 0.0, self.started)
        if time.monotonic() - last_read < self.config.idle_s:
            return False
        if unit.screen is not None and unit.screen.state.has_verdict:
            return False
        return not (unit.desk is not None and unit.desk.pending() is not None)

    # -- steps -------------------------------------------------------------------------------
    def check_and_stage(self) -> None:
        """Check the channel; fetch and unpack a newer release (runs in the "update" thread)."""
        stage_release(self.config, self.layout, self.running, wait=False)

    def _switch(self, version: str) -> None:
        with self.layout.locked(wait=False) as mine:
            if not mine:
                return
            state = self.layout.load()
            if state.phase != "staged" or state.target != version:
                return
            logger.info("update: switching %s -> %s between people", self.running, version)
            self.layout.switch(state, version, self.config.max_starts)
        self._switched = True
        self.request_restart(f"switched to release {version}")

    def _judge_trial(self) -> None:
        assert self.gate is not None
        hold_point(self.layout.root, "first-start")
        self.gate_reasons = self.gate.failing()
        if not self.gate_reasons:
            with self.layout.locked():
                state = self.layout.load()
                if state.phase == "trial" and state.target == self.running:
                    self.layout.commit(state)
            self.in_trial = False
            logger.info("update: release %s passed its health gate", self.running)
            return
        if time.monotonic() - self.started >= self.config.gate_s:
            reason = "; ".join(self.gate_reasons)
            logger.error("update: release %s failed its health gate: %s", self.running, reason)
            with self.layout.locked():
                self.layout.roll_back(self.layout.load(), "update_gate_failed", reason[:200])
            self._switched = True
            self.request_restart(f"release {self.running} rolled back: {reason}")

    # -- reporting ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Compact update status for the status topic: state, target, last failure's code and version."""
        state = self.layout.load()
        failure = state.last_failure or {}
        phase = "unmanaged" if self.running is None else "trial" if self.in_trial else state.phase
        return {"state": phase, "target": state.target,
                "failed": failure.get("version"), "failure": failure.get("code")}


def stage_release(config: UpdateSection, layout: Layout, running: str | None, *, wait: bool = True) -> str | None:
    """Check the channel and, if it names a newer release, download, verify and unpack it; returns its version.

    Every step is written to the state file before it starts; a failure is recorded as
    `last_failure` (and returned as None) so the unit's status reports it.
    """
    from scanner.update.channel import UpdateChannel

    with layout.locked(wait=wait) as mine:
        if not mine:
            return None
        state = layout.load()
        if state.phase == "staged":
            return state.target
        if state.phase != "idle":
            return None
        offer = None
        try:
            channel = UpdateChannel(layout.tuf_dir, config.root_file.read_bytes(), config.metadata_url,
                                    config.targets_url, config.channel)
            offer = channel.check(running)
            if offer is None or offer.version in state.bad_versions:
                return None
            state.phase, state.target = "downloading", offer.version
            layout.save(state)
            archive = channel.download(offer, layout.staging)
            state.phase = "unpacking"
            layout.save(state)
            layout.unpack(archive, expected=offer.version)
            state.phase = "staged"
            layout.save(state)
            layout.clean_partials()
            logger.info("update: release %s staged beside %s", offer.version, running)
            return offer.version
        except (UpdateError, OSError) as e:
            logger.warning("update: %s", e)
            layout.clean_partials()
            state.phase, state.target = "idle", None
            state.last_failure = {"version": offer.version if offer else None,
                                  "code": getattr(e, "code", "update_failed"), "reason": str(e)[:200],
                                  "at": time.time()}
            layout.save(state)
            return None
