"""A whole unit: in-process (screen, GPIO, systemd notify) and `chot scanner run` against a real Mosquitto."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from gpiozero.pins.mock import MockFactory

from scanner.config import parse_unit_config
from scanner.unit import Unit

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
CHOSEN = ["complete_series", "one_dose", "forged_known_kid", "garbage_text"]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def people(ministry) -> list:
    by_name = {s.name: s for s in ministry.samples(NOW)}
    return [by_name[n] for n in CHOSEN]


def unit_files(tmp_path: Path, ministry, people: list) -> dict:
    (tmp_path / "anchor.pem").write_bytes(ministry.anchor_pem)
    (tmp_path / "bundle.json").write_bytes(ministry.bundle(version=3, issued_at=NOW - dt.timedelta(hours=1)))
    (tmp_path / "people.txt").write_text("".join(s.payload + "\n" for s in people))
    return {
        "unit": {"device_id": "unit-1", "checkpoint": "ic7", "policy": "vn-2021"},
        "camera": {"backend": "scripted", "source": "people.txt", "fps": 30, "loop": False,
                   "hold_frames": 10, "gap_frames": 4},
        "debounce": {"gone_frames": 3, "gone_seconds": 0.5},
        "trust": {"anchor_file": "anchor.pem", "cache_dir": "trust", "bundle_file": "bundle.json"},
        "storage": {"data_dir": "data"},
        "screen": {"enabled": True, "port": 0, "verdict_seconds": 30},
    }


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    folder = tempfile.mkdtemp(prefix="chot-notify-")  # short path: AF_UNIX allows about 100 bytes
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # a ping a second: the socket queue holds 10
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    try:
        yield sock
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(folder)


def test_unit_scans_shows_signals_and_records(tmp_path: Path, ministry, people, notify_socket) -> None:
    data = unit_files(tmp_path, ministry, people)
    data["gpio"] = {"enabled": True, "relay_seconds": 30}
    config = parse_unit_config(data, tmp_path)
    factory = MockFactory()
    unit = Unit(config, pin_factory=factory)
    stop = threading.Event()
    runner = threading.Thread(target=unit.run, args=(stop,), name="test-unit")
    runner.start()
    try:
        assert notify_socket.recv(256).startswith(b"READY=1")
        wait_for(lambda: unit.outbox is not None and unit.capture is not None and unit.capture.ended
                 and unit.pipeline.stats.scans == len(people), 60, "every person scanned")
        assert notify_socket.recv(256) == b"WATCHDOG=1"  # fed while the pipeline runs
        assert unit.outbox.counts_today(dt.date.today()) == {"green": 1, "yellow": 1, "red": 2}
        events = unit.outbox.pending()
        assert [(e.result, e.reason) for e in events][2:] == [("red", "signature"), ("red", "prefix")]
        assert all(e.trust_version == 3 and e.policy == "vn-2021" for e in events)
        # the officer screen: last verdict shown with its counts
        wait_for(lambda: unit.screen.state.snapshot()["status"].get("counts", {}).get("red") == 2, 5, "counts")
        with urllib.request.urlopen(unit.screen.url + "state", timeout=5) as resp:
            state = json.loads(resp.read())
        assert state["verdict"]["reason"] == "prefix"
        assert state["status"]["trust"]["version"] == 3 and state["status"]["network"]["connected"] is None
        assert state["status"]["clock"]["ok"] is True
        with urllib.request.urlopen(unit.screen.url + "preview.mjpg", timeout=5) as resp:  # live camera view
            head = resp.read(4096)
        assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head
        # GPIO: green opened the gate earlier; the last (red) verdict shut it again
        relay = factory.pin(config.gpio.pins.relay)
        assert any(s.state for s in relay.states) and not relay.state
        assert factory.pin(config.gpio.pins.red).state
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    assert not unit.pipeline.running and not unit.capture.running
    notify_socket.setblocking(False)
    messages = []
    while True:  # watchdog pings, then the goodbye
        try:
            messages.append(notify_socket.recv(256))
        except BlockingIOError:
            break
    assert messages and messages[-1] == b"STOPPING=1" and set(messages[:-1]) <= {b"WATCHDOG=1"}
    assert (tmp_path / "data" / "clock.json").exists()  # the last seen time survives a restart


def test_unit_refuses_to_start_with_a_clear_reason(tmp_path: Path, ministry, people) -> None:
    from scanner.unit import UnitError

    data = unit_files(tmp_path, ministry, people)
    data["unit"]["policy"] = "no-such-policy"
    unit = Unit(parse_unit_config(data, tmp_path))
    with pytest.raises(UnitError, match="unit.policy: .*no built-in policy 'no-such-policy'"):
        unit.start()
    (tmp_path / "anchor.pem").write_text("not a key")
    data["unit"]["policy"] = "vn-2021"
    with pytest.raises(UnitError, match="trust: pinned trust anchor is not a PEM public key"):
        Unit(parse_unit_config(data, tmp_path)).start()


def test_watchdog_goes_unfed_when_the_camera_stalls(tmp_path: Path, ministry, people) -> None:
    data = unit_files(tmp_path, ministry, people)
    data["screen"] = {"enabled": False}
    data["camera"]["fps"] = 0.2  # one frame every 5 s: a camera that hangs between frames
    unit = Unit(parse_unit_config(data, tmp_path))
    unit.stall_seconds = 1.0
    unit.start()
    try:
        wait_for(lambda: unit.capture.frames >= 1, 30, "the first frame")
        assert unit.healthy
        wait_for(lambda: not unit.healthy, 5, "the stall to be noticed")
        assert unit.pipeline.running and unit.capture.error is None  # nothing failed: it hangs
    finally:
        unit.stop()
    assert not unit.healthy


def test_unit_picks_up_a_bundle_from_a_usb_stick(tmp_path: Path, ministry, people) -> None:
    data = unit_files(tmp_path, ministry, people)
    del data["trust"]["bundle_file"]
    data["screen"] = {"enabled": False}
    stick = tmp_path / "media" / "stick"
    stick.mkdir(parents=True)
    (stick / "chot-trust.json").write_bytes(ministry.bundle(version=9, issued_at=NOW - dt.timedelta(hours=1),
                                                            next_update=NOW + dt.timedelta(days=30)))
    data["trust"]["usb_glob"] = str(tmp_path / "media" / "*" / "chot-trust*.json")
    unit = Unit(parse_unit_config(data, tmp_path))
    unit.start()
    try:
        assert unit.trust.current is not None and unit.trust.current.version == 9
        assert unit.health()["trust_version"] == 9
        # The officer desk's wrong-PIN report rides in the status (none yet).
        assert unit.desk is not None and unit.health()["pins"] == {
            "wrong_hour": 0, "wrong_total": 0, "lockouts": 0, "locked": False, "officers": []}
        assert unit.screen_status(NOW)["trust"] == {"version": 9, "age_s": 3600, "stale": False}
        # vn-2021 allows a 72 h old bundle: past that the screen warns (and verdicts are capped)
        assert unit.screen_status(NOW + dt.timedelta(hours=70))["trust"]["stale"] is False
        assert unit.screen_status(NOW + dt.timedelta(hours=72))["trust"]["stale"] is True
    finally:
        unit.stop()


@pytest.mark.broker
def test_chot_scanner_run_reports_each_scan_over_mqtt(tmp_path: Path, ministry, people, mosquitto_factory) -> None:
    broker = mosquitto_factory(passwords={"unit-1": "pw-unit", "watcher": "pw-watch"})
    data = unit_files(tmp_path, ministry, people)
    data["screen"] = {"enabled": False}
    config_text = _toml(data) + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    (tmp_path / "unit.toml").write_text(config_text)

    received: list[tuple[str, bytes]] = []
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.username_pw_set("watcher", "pw-watch")
    watcher.on_message = lambda c, u, m: received.append((m.topic, bytes(m.payload)))
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe("chot/v1/#", qos=1)
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    env = dict(os.environ, CHOT_MQTT_PASSWORD="pw-unit")
    env.pop("NOTIFY_SOCKET", None)
    log = open(tmp_path / "unit.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "chot"), "-v", "scanner", "run", "--config",
                             str(tmp_path / "unit.toml")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        def events() -> list[dict]:
            return [json.loads(p) for t, p in received if t == "chot/v1/ic7/unit-1/event"]

        wait_for(lambda: len(events()) == len(people) or proc.poll() is not None, 90, "events over MQTT")
        assert proc.poll() is None, (tmp_path / "unit.log").read_text()
        got = events()
        assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
        assert [e["result"] for e in got] == ["green", "yellow", "red", "red"]
        assert all(set(e) == {"seq", "ts", "result", "reason", "policy", "trust_version"} for e in got)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
        watcher.loop_stop()
        watcher.disconnect()
    wait_for(lambda: any(t.endswith("/status") and json.loads(p).get("state") == "offline" for t, p in received),
             10, "offline status after SIGTERM")
    text = (tmp_path / "unit.log").read_text()
    assert "unit stopped" in text and "Traceback" not in text
    for s in people:  # no personal data in the unit's log or on the wire
        if s.issued is not None:
            for secret in (s.issued.person.family_name, s.issued.person.dob, s.issued.uci):
                assert secret not in text and all(secret.encode() not in p for _, p in received)


def _toml(data: dict) -> str:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
