"""End to end with `chot scanner run`: SIGKILL mid-run, restart, every verdict counted exactly once.

A real unit process (scripted phone-screen camera, real decoder and crypto, outbox, MQTT) scans
issued certificates; a subscriber with a persistent session sees all MQTT traffic, which is
also searched for the holders' personal data, as are the unit's files and logs.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.test_scanner_report_support import Collector, wait_or_kill, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parent.parent
STATUS = "chot/v1/ic7/unit-1/status"
PEOPLE = 12


class ChotUnit:
    """`chot scanner run --config ...` as a child process, its output kept for the privacy scan."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        out = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from chot.cli import main; main()", "-v", "scanner", "run",
             "--config", str(config)], cwd=ROOT, stdout=out, stderr=out)
        out.close()

    def signal(self, sig: int, timeout: float = 20) -> int:
        os.kill(self.proc.pid, sig)
        return wait_or_kill(self.proc, timeout)


def pending_seqs(db: Path) -> set[int]:
    """Seqs still in the outbox, read without touching the unit's files (read-only open)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT seq FROM events")}
    finally:
        conn.close()


@pytest.fixture
def unit_files(tmp_path, ministry, mosquitto):
    now = datetime.now(timezone.utc)
    issued = []
    for i in range(PEOPLE):
        if i % 3 == 2:  # every third person has one dose of two: yellow under vn-2021
            issued.append(ministry.issue_vaccination(doses=[(1, 2, (now - timedelta(days=30)).date(),
                                                             "astrazeneca")], now=now))
        else:
            issued.append(ministry.issue_vaccination(now=now))
    (tmp_path / "payloads.txt").write_text("\n".join(i.hc1 for i in issued) + "\n")
    (tmp_path / "anchor.pem").write_bytes(ministry.anchor_pem)
    (tmp_path / "bundle.json").write_bytes(ministry.bundle(version=1, policies={}))
    config = tmp_path / "unit.toml"
    config.write_text(f"""
[unit]
device_id = "unit-1"
checkpoint = "ic7"
policy = "vn-2021"

[trust]
anchor_file = "anchor.pem"
cache_dir = "trust"
bundle_file = "bundle.json"

[storage]
data_dir = "data"

[camera]
backend = "scripted"
source = "payloads.txt"
fps = 25
loop = false
hold_frames = 8
gap_frames = 6

[screen]
enabled = false

[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
max_inflight = 3
keepalive = 10
""")
    expected = ["yellow" if i % 3 == 2 else "green" for i in range(PEOPLE)]
    return config, issued, expected


def test_chot_scanner_run_killed_and_restarted_counts_every_verdict_once(tmp_path, mosquitto, unit_files):
    config, issued, expected = unit_files
    db = tmp_path / "data" / "outbox.sqlite"
    collector = Collector(mosquitto.port, ack=True)  # acks as the central's ingest does
    first = ChotUnit(config, tmp_path / "unit-1.log")
    try:
        wait_until(lambda: len(collector.distinct_seqs()) >= 3, 60, "the first unit to report")
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        wait_until(lambda: collector.statuses(STATUS)[-1:] == [{"state": "offline"}], 10, "the will")
        time.sleep(0.5)  # anything that was on the wire has arrived by now
        before = collector.distinct_seqs() | pending_seqs(db)  # every verdict committed in run 1
        assert len(before) < PEOPLE, "the kill must land mid-run"

        second = ChotUnit(config, tmp_path / "unit-2.log")
        wait_until(lambda: len(collector.distinct_seqs() - before) >= PEOPLE, 90, "run 2's verdicts")
        wait_until(lambda: not pending_seqs(db), 20, "the outbox to drain")
        assert second.signal(signal.SIGTERM) == 0
    finally:
        if first.proc.poll() is None:
            first.signal(signal.SIGKILL)
        collector.close()

    seqs = collector.distinct_seqs()
    run2 = sorted(seqs - before)
    assert before <= seqs, "a verdict committed before the kill was lost"
    assert len(run2) == PEOPLE and run2[0] > max(before), "run 2 reused or skipped backwards"
    collector.assert_duplicates_identical()
    print(f"run 1 committed {len(before)} before SIGKILL, run 2 gave {len(run2)}; "
          f"{len(collector.events()) - len(seqs)} redelivered")
    by_seq = {e["seq"]: e for e in collector.events()}
    assert [by_seq[s]["result"] for s in run2] == expected
    assert collector.statuses(STATUS)[-1] == {"state": "offline"}

    # Privacy: nothing personal in the MQTT traffic, the unit's files or its logs.
    with collector._lock:
        traffic = b"".join(topic.encode() + payload for topic, payload, _ in collector.messages)
    files = b"".join(p.read_bytes() for d in ("data", "trust") for p in (tmp_path / d).rglob("*") if p.is_file())
    logs = (tmp_path / "unit-1.log").read_bytes() + (tmp_path / "unit-2.log").read_bytes()
    for item in issued:
        person = item.person
        for secret in {item.uci, person.family_name, person.given_name, person.family_name_t,
                       person.given_name_t, person.dob, item.hc1[:40]}:
            if len(secret) >= 4:  # a 2-letter name like "VU" also occurs by chance in base64
                for where, blob in (("mqtt", traffic), ("files", files), ("logs", logs)):
                    assert secret.encode() not in blob, f"personal data in {where}"
