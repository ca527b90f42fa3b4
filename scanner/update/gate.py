"""The health gate a new release must pass after its first start, checked on the running unit.

All at once, within `update.gate_s` of the start: the self-test certificate gets its expected
colour (decoder-independent: the verifier, trust bundle and policy of this release), the camera
has delivered frames, reports can leave (broker connected, or the outbox takes a write lock), and
the unit is healthy as the systemd watchdog sees it. Nothing is recorded: the self-test verdict
never reaches the outbox, the screen or the log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from scanner.update.config import UpdateSection


def outbox_accepts(path: Path) -> bool:
    """The outbox file takes a write transaction (taken and rolled back, nothing written)."""
    try:
        conn = sqlite3.connect(str(path), timeout=1.0, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


class HealthGate:
    """Re-evaluated every tick until all checks hold together; `failing()` names those that do not."""

    def __init__(self, config: UpdateSection, unit: Any) -> None:
        self.config = config
        self.unit = unit
        self._selftest_ok: bool | None = None

    def selftest(self) -> str | None:
        """None if the self-test certificate gets its expected colour (or none is configured), else why not."""
        if self.config.selftest_file is None:
            return None
        if self._selftest_ok is None:
            try:
                payload = self.config.selftest_file.read_text(encoding="ascii").strip()
                verdict = self.unit.judge(payload, self.unit.wall_clock())
                self._selftest_ok = verdict.result == self.config.selftest_expect
                self._selftest_reason = f"self-test certificate got {verdict.result} ({verdict.reason})"
                del payload
            except Exception as e:  # noqa: BLE001 - a broken verifier in the new release is exactly what this catches
                self._selftest_ok = False
                self._selftest_reason = f"self-test raised {type(e).__name__}"
        return None if self._selftest_ok else self._selftest_reason

    def failing(self) -> list[str]:
        """Reasons the gate is not passed yet (empty = passed)."""
        unit = self.unit
        reasons: list[str] = []
        if unit.judge is None:
            return ["the unit has not started judging"]
        selftest = self.selftest()
        if selftest:
            reasons.append(selftest)
        capture = unit.capture
        if capture is None or not capture.frames:
            reasons.append("no camera frame yet")
        link = unit.link
        if not (link is not None and link.connected) and not outbox_accepts(unit.config.storage.data_dir
                                                                            / "outbox.sqlite"):
            reasons.append("neither the broker nor the outbox accepts reports")
        if not unit.healthy:
            reasons.append("the pipeline is not running (watchdog would not be fed)")
        return reasons
