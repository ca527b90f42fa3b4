"""Bad files on a unit: configs, a corrupt outbox or trust cache, and bad trust bundles.

Each case runs the real `chot scanner run` process (replay camera of issued certificates, the
officer screen's /state read over HTTP). The unit either recovers and says what it did, or stops
with one readable line naming what is wrong; it never crashes with a traceback and never
silently forgets recorded events (a damaged outbox is kept, named, and its seqs never reused).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from keys.qr import write_png
from tests.support.broker import free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime.now(dt.timezone.utc)


class UnitRun:
    """One `chot scanner run` process in `folder`, with its log and its officer screen."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.log = folder / f"unit-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chot", "-v", "scanner", "run", "--config", str(folder / "unit.toml")],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/state", timeout=2) as r:
            return json.loads(r.read())

    def wait_counts(self, at_least: int, timeout: float = 40) -> dict[str, Any]:
        """Until the screen's counters show `at_least` verdicts today (the outbox's own counts)."""
        wait_for_port(self.port, 30)
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.state()
            counts = (state.get("status") or {}).get("counts") or {}
            if sum(counts.values()) >= at_least:
                return state
            time.sleep(0.2)
        raise AssertionError(f"no {at_least} verdicts on screen: {state}\n{self.text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def finish(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def unit_dir(tmp_path: Path, ministry: Any) -> Path:
    """A unit folder: anchor, first bundle, a replay camera of six people, a config without MQTT."""
    camera = tmp_path / "camera"
    camera.mkdir()
    for i in range(6):
        write_png(ministry.issue_vaccination(now=NOW).hc1, camera / f"p{i}.png", scale=3)
    (tmp_path / "anchor.pem").write_bytes(ministry.anchor_pem)
    (tmp_path / "bundle.json").write_bytes(ministry.bundle(version=1))
    write_config(tmp_path)
    return tmp_path


def write_config(folder: Path, mqtt_port: int | None = None, extra: str = "") -> int:
    port = free_port()
    text = f"""
[unit]
device_id = "unit-bad"
checkpoint = "IC7"

[trust]
anchor_file = "anchor.pem"
cache_dir = "data/trust"
bundle_file = "bundle.json"

[storage]
data_dir = "data"

[camera]
backend = "replay"
source = "camera"
fps = 8
loop = true

[debounce]
gone_frames = 2
gone_seconds = 0.05

[screen]
port = {port}
verdict_seconds = 0.5
"""
    if mqtt_port is not None:
        text += f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nkeepalive = 5\n'
    (folder / "unit.toml").write_text(text + extra)
    return port


def run_config_only(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chot", "scanner", "run", "--config", str(folder / "unit.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


# -- bad configs ----------------------------------------------------------------------------------
BAD_CONFIGS = {
    "not toml": (b"[unit\ndevice_id = ", "toml"),
    "empty": (b"", "unit"),
    "binary": (bytes(range(256)) * 4, ""),
    "utf-16": ('[unit]\ndevice_id = "a"\n'.encode("utf-16"), ""),
    "unknown key": (b'[unit]\ndevice_id = "a"\ncheckpoint = "b"\nfavourite_colour = "red"\n', "favourite_colour"),
    "wildcard id": (b'[unit]\ndevice_id = "a/#"\ncheckpoint = "b"\n', "device_id"),
    "wrong type": (b'[unit]\ndevice_id = 7\ncheckpoint = "b"\n', "device_id"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_a_bad_config_file_stops_the_unit_with_one_readable_reason(tmp_path: Path, name: str) -> None:
    content, words = BAD_CONFIGS[name]
    (tmp_path / "unit.toml").write_bytes(content)
    done = run_config_only(tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().startswith("Error:"), done.stderr
    assert words in done.stderr, done.stderr


@pytest.mark.parametrize("change,words", [
    ('backend = "replay"', "camera.source"),  # source folder missing
    ("fps = 8", "fps"),
])
def test_a_config_pointing_nowhere_names_the_key(unit_dir: Path, change: str, words: str) -> None:
    text = (unit_dir / "unit.toml").read_text()
    if words == "camera.source":
        text = text.replace('source = "camera"', 'source = "no-such-folder"')
    else:
        text = text.replace(change, "fps = -3")
    (unit_dir / "unit.toml").write_text(text)
    done = run_config_only(unit_dir)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert words in done.stderr, done.stderr


@pytest.mark.parametrize("anchor", [b"", b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
                                    b"\x00\xff" * 100])
def test_a_broken_trust_anchor_stops_the_unit_with_a_reason(unit_dir: Path, anchor: bytes) -> None:
    (unit_dir / "anchor.pem").write_bytes(anchor)
    done = run_config_only(unit_dir)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "anchor" in done.stderr, done.stderr


# -- a corrupt outbox -----------------------------------------------------------------------------
def outbox_rows(path: Path) -> tuple[int, int]:
    """(events waiting, next seq) of an outbox file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        waiting = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        next_seq = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        return waiting, next_seq
    finally:
        conn.close()


@pytest.mark.parametrize("damage", ["garbage header", "truncated", "zeroed"])
def test_a_corrupt_outbox_is_kept_named_and_its_seqs_never_reused(unit_dir: Path, damage: str) -> None:
    port = write_config(unit_dir)
    first = UnitRun(unit_dir, port)
    first.wait_counts(4)
    assert first.stop() == 0
    outbox = unit_dir / "data" / "outbox.sqlite"
    waiting, next_seq = outbox_rows(outbox)
    assert waiting >= 4, "with no broker every verdict is still waiting in the outbox"
    data = outbox.read_bytes()
    if damage == "garbage header":
        outbox.write_bytes(b"this is not sqlite" + data[18:])
    elif damage == "truncated":
        outbox.write_bytes(data[:1500])
    else:
        outbox.write_bytes(b"\0" * len(data))
    second = UnitRun(unit_dir, port)
    code = second.finish(30)
    log = second.text()
    kept = sorted((unit_dir / "data").glob("outbox.sqlite.corrupt-*"))
    assert kept, "the damaged outbox must be kept for recovery, not deleted"
    assert kept[0].read_bytes()[:100] == outbox.read_bytes()[:100] if outbox.exists() else True
    # Not silent: the unit names the damage, the file it kept, and that its events were not sent.
    assert "outbox" in log and str(kept[0].name) in log and "not sent" in log, log[-2000:]
    assert "Traceback" not in log
    if code != 0:
        # It stopped with that reason; started again (as systemd does), it works on a fresh file.
        third = UnitRun(unit_dir, port)
        third.wait_counts(2)
        assert third.stop() == 0
    # Seqs continue above every seq handed out before the damage (the ingest would drop a reuse).
    _, after = outbox_rows(outbox)
    rows = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True).execute("SELECT min(seq) FROM events").fetchone()
    assert rows[0] is not None and rows[0] >= next_seq and after > next_seq


def test_a_corrupt_seq_mark_is_named_and_the_outbox_still_counts(unit_dir: Path) -> None:
    port = write_config(unit_dir)
    first = UnitRun(unit_dir, port)
    first.wait_counts(3)
    assert first.stop() == 0
    waiting, next_seq = outbox_rows(unit_dir / "data" / "outbox.sqlite")
    (unit_dir / "data" / "outbox.sqlite.seq").write_bytes(b"\xff\xfegarbage")
    second = UnitRun(unit_dir, port)
    second.wait_counts(waiting + 2)
    assert second.stop() == 0
    assert "seq mark" in second.text() and "unreadable" in second.text()
    conn = sqlite3.connect(f"file:{unit_dir / 'data' / 'outbox.sqlite'}?mode=ro", uri=True)
    seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
    assert len(seqs) == len(set(seqs)) and max(seqs) >= next_seq and len(seqs) > waiting


# -- the trust cache and bad bundles -----------------------------------------------------------
@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong name", "other signer"])
def test_a_damaged_trust_cache_falls_back_and_says_so(unit_dir: Path, ministry: Any, damage: str,
                                                      other_trust_key_bundle: bytes) -> None:
    cache = unit_dir / "data" / "trust"
    cache.mkdir(parents=True)
    (cache / "bundle-2.json").write_bytes(ministry.bundle(version=2))
    good3 = ministry.bundle(version=3)
    bad = {"garbage": b"\x00garbage{", "truncated": good3[: len(good3) // 2],
           "wrong name": ministry.bundle(version=2), "other signer": other_trust_key_bundle}[damage]
    (cache / "bundle-3.json").write_bytes(bad)
    port = write_config(unit_dir)
    run = UnitRun(unit_dir, port)
    state = run.wait_counts(2)
    assert run.stop() == 0
    assert state["status"]["trust"]["version"] == 2, state["status"]["trust"]
    log = run.text()
    assert "bundle-3.json is unusable" in log, log[-2000:]
    assert (cache / "bundle-3.json.corrupt").exists()


@pytest.fixture
def other_trust_key_bundle(ministry: Any) -> bytes:
    from keys import ca

    return ministry.bundle(version=3, signer=ca.generate_key("ES256"))


def test_bad_bundles_offered_to_a_running_unit_are_refused_with_reasons(
        unit_dir: Path, ministry: Any, mosquitto: Any, other_trust_key_bundle: bytes) -> None:
    (unit_dir / "bundle.json").write_bytes(ministry.bundle(version=5))
    port = write_config(unit_dir, mqtt_port=mosquitto.port)
    run = UnitRun(unit_dir, port)
    run.wait_counts(1)
    v5 = ministry.bundle(version=5)
    offers = {
        "tampered": v5.replace(b'"payload": "', b'"payload": "A', 1) if b'"payload": "' in v5 else v5[:-5] + b"xx" + v5[-3:],
        "wrong key": other_trust_key_bundle,
        "older": ministry.bundle(version=4),
        "not json": b"\x89PNG\r\n",
    }
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        for data in offers.values():
            publisher.publish("chot/v1/trust", data, qos=1, retain=True).wait_for_publish(5)
            time.sleep(0.7)
        assert run.state()["status"]["trust"]["version"] == 5
        # An expired bundle (next update in the past) that is newer is taken, and shown stale.
        expired = ministry.bundle(version=6, issued_at=NOW - dt.timedelta(days=10),
                                  next_update=NOW - dt.timedelta(days=9))
        publisher.publish("chot/v1/trust", expired, qos=1, retain=True).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while run.state()["status"]["trust"]["version"] != 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        trust = run.state()["status"]["trust"]
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        run.stop()
    assert trust["version"] == 6 and trust["stale"] is True, trust
    log = run.text()
    refusals = [line for line in log.splitlines() if "trust bundle from mqtt" in line and "refused" in line]
    assert len(refusals) >= len(offers), log[-3000:]
    assert any("version" in line for line in refusals)  # the older one: why it was refused
    assert sum("signed by" in line or "signature" in line for line in refusals) >= 2  # tampered, wrong key
    assert "Traceback" not in log
    assert os.path.exists(unit_dir / "data" / "trust" / "bundle-6.json")
