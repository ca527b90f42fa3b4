"""A unit installed from releases, run as systemd would: the guard, then the unit from `current`.

`ReleasedUnit(root, config)` starts `python -m scanner.update.guard ROOT` from the good release's
tree, then `chot scanner run` with PYTHONPATH=<root>/current/app (the tree under test is NOT on
the path: the process runs the release's own code, as on a Pi). `start()`/`wait()`/`kill()`
act on the unit process; `run_until(...)` plays systemd's Restart= for exit status 75.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner.update.agent import EXIT_RESTART


class ReleasedUnit:
    """One unit's service, started and restarted by hand or by `run_until`."""

    def __init__(self, root: Path, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.config = config
        self.log = log
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._guarded = False

    def _env(self, tree: str, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CHOT_UPDATE_HOLD")}
        env.update({"PYTHONPATH": str(self.root / tree / "app"), "PYTHONUNBUFFERED": "1", **self.env, **extra})
        return env

    def guard(self) -> str:
        tree = "good" if (self.root / "good").exists() else "current"
        out = subprocess.run([sys.executable, "-m", "scanner.update.guard", str(self.root)], cwd=self.config.parent,
                             env=self._env(tree, {}), capture_output=True, timeout=60)
        with open(self.log, "ab") as f:
            f.write(out.stdout + out.stderr)
        self._guarded = True
        return out.stdout.decode()

    def start(self, **extra_env: str) -> None:
        """ExecStartPre (the guard, unless a test just ran it), then ExecStart on whatever `current` is now."""
        if not self._guarded:
            self.guard()
        self._guarded = False
        self.starts += 1
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from chot.cli import main; main()", "-v", "scanner", "run",
             "--config", str(self.config)], cwd=self.config.parent, env=self._env("current", extra_env),
            stdout=out, stderr=out)
        out.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def run_until(self, done: Callable[[], bool], timeout: float, **extra_env: str) -> None:
        """Start, and restart after exit status 75 (as RestartForceExitStatus=75 does), until `done()`."""
        deadline = time.monotonic() + timeout
        if self.proc is None or self.proc.poll() is not None:
            self.start(**extra_env)
        while time.monotonic() < deadline:
            if done():
                return
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                if code not in (EXIT_RESTART, 1):
                    raise AssertionError(f"unit exited {code}; log:\n{self.log.read_text()[-3000:]}")
                self.start(**extra_env)  # Restart=on-failure / RestartForceExitStatus=75
            time.sleep(0.2)
        raise AssertionError(f"not done within {timeout} s; log:\n{self.log.read_text()[-4000:]}")

    def supervise(self) -> None:
        """Keep the unit running in a thread, as systemd's Restart= does, until `stop()`."""
        import threading

        self._supervising = True

        def loop() -> None:
            while self._supervising:
                if self.proc is None or self.proc.poll() in (EXIT_RESTART, 1):
                    self.start()
                time.sleep(0.2)

        self.start()
        self._supervisor = threading.Thread(target=loop, name=f"systemd-{self.config.parent.name}", daemon=True)
        self._supervisor.start()

    def unsupervise(self) -> None:
        self._supervising = False
        if getattr(self, "_supervisor", None) is not None:
            self._supervisor.join(5)

    def wait_file(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{path.name} not reached; log:\n{self.log.read_text()[-3000:]}")
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"unit exited {self.proc.returncode} before {path.name}; log:\n"
                                     f"{self.log.read_text()[-3000:]}")
            time.sleep(0.1)


def write_unit(unit_dir: Path, *, ministry: Any, pinned_root: bytes, metadata_url: str, targets_url: str,
               people: int, device: str = "unit-1", channel: str = "stable", mqtt_port: int | None = None,
               gate_s: float = 6, max_starts: int = 2) -> Path:
    """A unit's config and files: scripted people, self-test certificate, trust anchor and bundle, TUF root.

    State (outbox, trust cache) goes to unit_dir/state, releases to unit_dir/opt.
    """
    now = datetime.now(UTC)
    unit_dir.mkdir(parents=True, exist_ok=True)
    (unit_dir / "payloads.txt").write_text("\n".join(ministry.issue_vaccination(now=now).hc1
                                                     for _ in range(people)) + "\n")
    (unit_dir / "selftest.txt").write_text(ministry.issue_vaccination(now=now).hc1)
    (unit_dir / "anchor.pem").write_bytes(ministry.anchor_pem)
    (unit_dir / "bundle.json").write_bytes(ministry.bundle(version=1, policies={}))
    (unit_dir / "tuf-root.json").write_bytes(pinned_root)
    mqtt = "" if mqtt_port is None else f"""
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
keepalive = 10
status_interval_s = 1
"""
    config = unit_dir / "unit.toml"
    config.write_text(f"""
[unit]
device_id = "{device}"
checkpoint = "ic7"
policy = "vn-2021"

[trust]
anchor_file = "anchor.pem"
cache_dir = "state/trust"
bundle_file = "bundle.json"

[storage]
data_dir = "state/data"

[camera]
backend = "scripted"
source = "payloads.txt"
width = 960
height = 720
fps = 20
loop = false
hold_frames = 6
gap_frames = 4

[screen]
enabled = false
{mqtt}
[update]
root = "opt"
root_file = "tuf-root.json"
metadata_url = "{metadata_url}"
targets_url = "{targets_url}"
channel = "{channel}"
check_every_s = 1
idle_s = 1
gate_s = {gate_s}
max_starts = {max_starts}
selftest_file = "selftest.txt"
""")
    return config
