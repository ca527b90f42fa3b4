"""Exactly once across a SIGKILL of the unit mid-send, counted at a persistent-session subscriber."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.test_scanner_report_support import Collector, wait_or_kill, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parent.parent
STATUS = "chot/v1/ic7/unit-1/status"


class UnitProcess:
    """The helper unit (tests/test_scanner_report_support.py) as a real child process."""

    def __init__(self, db: Path, port: int, *args: str) -> None:
        self.recorded: list[int] = []
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.test_scanner_report_support", "unit", "--db", str(db),
             "--port", str(port), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("recorded "):
                self.recorded.append(int(line.split()[1]))

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)

    def wait(self, timeout: float) -> int:
        try:
            return wait_or_kill(self.proc, timeout)
        finally:
            self._reader.join(5)


def test_unit_killed_mid_send_delivers_exactly_once_after_restart(tmp_path, mosquitto):
    collector = Collector(mosquitto.port, ack=True)  # acks as the central's ingest does
    db = tmp_path / "outbox.sqlite"
    first = UnitProcess(db, mosquitto.port, "--record", "400", "--pace", "0.01", "--max-inflight", "5")
    try:
        wait_until(lambda: len(collector.distinct_seqs()) >= 60, 30, "the unit to be sending")
        first.kill()  # while it records and sends: events in flight, some unacknowledged
        seen_at_kill = len(collector.distinct_seqs())
        recorded = list(first.recorded)
        assert 60 <= seen_at_kill and len(recorded) < 400, "the kill must land mid-run"
        # The last will tells supervisors the unit is gone.
        wait_until(lambda: collector.statuses(STATUS)[-1:] == [{"state": "offline"}], 10, "the will")

        second = UnitProcess(db, mosquitto.port, "--record", "0", "--seconds", "20")
        assert second.wait(40) == 0, "\n".join(second.lines)
        assert second.lines[-1] == "drained backlog=0"
        wait_until(lambda: collector.statuses(STATUS)[-1:] == [{"state": "offline"}], 10, "offline")
        seqs = collector.distinct_seqs()
        top = max(seqs)
        assert seqs == set(range(1, top + 1)), "an event was lost"
        assert top >= max(recorded), "an event recorded before the kill never arrived"
        collector.assert_duplicates_identical()
        duplicates = len(collector.events()) - len(seqs)
        print(f"killed after {len(recorded)} recorded, {seen_at_kill} seen; "
              f"{top} delivered exactly once, {duplicates} redelivered")
        # Sent again: at most the in-flight window, and those the broker took whose central ack
        # had not reached the unit when it died (a window more).
        assert duplicates <= 2 * 5
        assert any(s["state"] == "online" for s in collector.statuses(STATUS))
    finally:
        if first.proc.poll() is None:
            first.kill()
        collector.close()
