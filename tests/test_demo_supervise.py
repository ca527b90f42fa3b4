"""chot/demo/supervise.py: the demo restarts its children as the shipped systemd units would."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chot.demo.supervise import (
    DEFAULT_BURST,
    DEFAULT_INTERVAL_S,
    POLICIES,
    ChildFailed,
    RestartPolicy,
    Supervisor,
    death_cause,
    restartable,
)
from tests.test_firmware_config import FW, unit_directives

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_each_policy_mirrors_its_shipped_unit(kind: str) -> None:
    policy = POLICIES[kind]
    d = unit_directives(FW / "systemd" / policy.unit)
    assert d["Restart"] == ["on-failure"]
    assert float(d["RestartSec"][0]) == policy.restart_sec
    assert int(d.get("StartLimitBurst", [DEFAULT_BURST])[0]) == policy.burst
    assert float(d.get("StartLimitIntervalSec", [DEFAULT_INTERVAL_S])[0]) == policy.interval_s


def test_systemd_defaults_are_the_ones_this_machine_documents() -> None:
    text = Path("/etc/systemd/system.conf").read_text(encoding="utf-8")
    assert f"#DefaultStartLimitBurst={DEFAULT_BURST}" in text
    assert f"#DefaultStartLimitIntervalSec={DEFAULT_INTERVAL_S:g}s" in text


@pytest.mark.parametrize("code, restart", [(-9, True), (-6, True), (1, True), (0, False), (-15, False), (-2, False)])
def test_on_failure_restarts_what_systemd_restarts(code: int, restart: bool) -> None:
    assert restartable(code) is restart


def test_death_cause_names_the_signal() -> None:
    assert death_cause(-9) == "killed by SIGKILL" and death_cause(3) == "exited with code 3"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_killed_child_is_restarted_after_restart_sec_and_the_restart_is_said() -> None:
    said: list[str] = []
    clock = Clock()
    sup = Supervisor(said.append, clock)
    procs = [sleeper()]

    def restart() -> None:
        procs.append(sleeper())
        sup.children["ingest-1"].exit_code = procs[-1].poll

    try:
        sup.watch("ingest-1", RestartPolicy("x", 3, 10, 300), procs[0].poll, restart)
        sup.tick()
        assert said == []
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(5)
        sup.tick()
        assert "ingest-1 killed by SIGKILL: restarting it in 3 s" in said[0]
        clock.t += 2.9
        sup.tick()
        assert len(procs) == 1  # RestartSec not over yet
        clock.t += 0.2
        sup.tick()
        assert len(procs) == 2 and procs[1].poll() is None
        assert sup.restarted == [("ingest-1", "killed by SIGKILL")] and "restarted" in said[-1]
    finally:
        for p in procs:
            p.kill()
            p.wait(5)


def test_a_clean_stop_is_left_stopped_and_said() -> None:
    said: list[str] = []
    sup = Supervisor(said.append, Clock())
    restarts: list[int] = []
    sup.watch("web", RestartPolicy("x", 2), lambda: -15, lambda: restarts.append(1))
    for _ in range(3):
        sup.tick()
    assert restarts == [] and sup.stopped == [("web", "killed by SIGTERM")] and "web" not in sup.children
    assert len(said) == 1 and "a clean stop, which its unit does not restart" in said[0]


def test_a_start_limit_ends_the_run() -> None:
    clock = Clock()

    sup = Supervisor(lambda _: None, clock)
    sup.watch("node", RestartPolicy("x", 1, burst=3, interval_s=10), lambda: -9, lambda: None)
    for _ in range(2):  # starts 2 and 3 of at most 3 in 10 s
        sup.tick()
        clock.t += 1.0
        sup.tick()
    sup.tick()
    clock.t += 1.0
    with pytest.raises(ChildFailed, match="start limit hit"):
        sup.tick()


def test_starts_older_than_the_interval_do_not_count() -> None:
    clock = Clock()
    sup = Supervisor(lambda _: None, clock)
    sup.watch("unit", RestartPolicy("x", 5, burst=2, interval_s=10), lambda: 1, lambda: None)
    for _ in range(5):  # every restart 11 s after the last: never 2 starts in 10 s
        sup.tick()
        clock.t += 11
        sup.tick()
    assert len(sup.restarted) == 5


def test_a_restart_that_fails_is_tried_again() -> None:
    clock = Clock()
    attempts: list[float] = []

    def failing() -> None:
        attempts.append(clock.t)
        raise RuntimeError("port busy")

    said: list[str] = []
    sup = Supervisor(said.append, clock)
    sup.watch("node", RestartPolicy("x", 2, burst=10, interval_s=300), lambda: -9, failing)
    sup.tick()
    clock.t += 2
    sup.tick()
    assert "failed to start again (port busy)" in said[-1]
    clock.t += 2
    sup.tick()
    assert len(attempts) == 2
