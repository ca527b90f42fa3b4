"""The demo's children restarted the way the shipped systemd units restart them.

Each kind of child mirrors its unit in firmware-config/systemd/ (tests/test_demo_supervise.py
reads the unit files and fails when these figures drift from them): `Restart=on-failure` (a
non-zero exit or a death by a signal other than SIGHUP/SIGINT/SIGTERM/SIGPIPE restarts it; a
clean exit does not), `RestartSec=` (the wait before the restart) and `StartLimitBurst=` starts
within `StartLimitIntervalSec=` (more and the unit fails for good; systemd's defaults, 5 in 10 s,
where a unit sets none).
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# systemd's DefaultStartLimitBurst / DefaultStartLimitIntervalSec (system.conf), for units without their own.
DEFAULT_BURST = 5
DEFAULT_INTERVAL_S = 10.0
# Deaths that Restart=on-failure treats as a clean stop (systemd.service(5)).
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})


@dataclass(frozen=True)
class RestartPolicy:
    """What one shipped unit says about restarting its process."""

    unit: str  # the unit file it mirrors, relative to firmware-config/systemd/
    restart_sec: float
    burst: int = DEFAULT_BURST
    interval_s: float = DEFAULT_INTERVAL_S

    def describe(self) -> str:
        return (f"{self.unit}: Restart=on-failure, RestartSec={self.restart_sec:g},"
                f" at most {self.burst} starts in {self.interval_s:g} s")


# Kind of child -> its unit's policy.
POLICIES: dict[str, RestartPolicy] = {
    "mosquitto": RestartPolicy("chot-broker.service", 2),
    "ingest": RestartPolicy("chot-ingest.service", 3, 10, 300),
    "dashboard": RestartPolicy("chot-dashboard.service", 3, 10, 300),
    "unit": RestartPolicy("chot-scanner.service", 5, 10, 300),
    "ingest-worker": RestartPolicy("national/chot-ingest@.service", 3, 10, 300),
    "web-process": RestartPolicy("national/chot-dashboard@.service", 2),
    "nats-node": RestartPolicy("national/chot-nats@.service", 2),
    # Debian's nginx.service restarts nothing; the demo treats its front like a web process.
    "nginx": RestartPolicy("national/chot-dashboard@.service", 2),
}


def death_cause(returncode: int) -> str:
    """How a child ended, in words (Popen's negative return code is the signal)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def restartable(returncode: int) -> bool:
    """Restart=on-failure: a non-zero exit or an unclean signal."""
    if returncode < 0:
        return -returncode not in CLEAN_SIGNALS
    return returncode != 0


class ChildFailed(RuntimeError):
    """A child keeps failing: it hit its unit's start limit."""


@dataclass
class _Watched:
    name: str
    policy: RestartPolicy
    exit_code: Callable[[], int | None]  # None while running
    restart: Callable[[], None]
    starts: deque[float] = field(default_factory=deque)
    due: float | None = None  # when the pending restart is to happen
    cause: str = ""
    restarts: int = 0


class Supervisor:
    """Watches children and restarts those that die, as systemd would; `tick()` often."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.say = say
        self.clock = clock
        self.children: dict[str, _Watched] = {}
        self.restarted: list[tuple[str, str]] = []  # (name, cause), in order
        self.stopped: list[tuple[str, str]] = []  # cleanly stopped, left so (name, cause)

    def watch(self, name: str, policy: RestartPolicy, exit_code: Callable[[], int | None],
              restart: Callable[[], None]) -> None:
        """Watch a child that has just started (that start counts towards its limit)."""
        child = _Watched(name, policy, exit_code, restart)
        child.starts.append(self.clock())
        self.children[name] = child

    def forget(self, name: str) -> None:
        self.children.pop(name, None)

    def tick(self, label: str = "") -> None:
        """Notice deaths, schedule restarts after RestartSec, make the restarts that are due.
        A clean stop (exit 0, SIGTERM, SIGINT, SIGHUP, SIGPIPE) is left stopped, as on-failure
        does; raises ChildFailed when a child hits its start limit."""
        now = self.clock()
        for child in list(self.children.values()):
            if child.due is None:
                code = child.exit_code()
                if code is None:
                    continue
                child.cause = death_cause(code)
                if not restartable(code):
                    # Restart=on-failure leaves a clean stop stopped; so does the demo, and goes on.
                    self.say(f"{label}{child.name} {child.cause}: a clean stop, which its unit does not restart"
                             f" ({child.policy.unit}); the run goes on without it")
                    self.stopped.append((child.name, child.cause))
                    del self.children[child.name]
                    continue
                child.due = now + child.policy.restart_sec
                self.say(f"{label}{child.name} {child.cause}: restarting it in {child.policy.restart_sec:g} s"
                         f" ({child.policy.describe()})")
            elif now >= child.due:
                while child.starts and child.starts[0] <= now - child.policy.interval_s:
                    child.starts.popleft()
                if len(child.starts) >= child.policy.burst:
                    raise ChildFailed(f"{child.name} keeps failing ({child.cause}): start limit hit,"
                                      f" {child.policy.burst} starts in {child.policy.interval_s:g} s")
                child.due = None
                child.starts.append(now)
                try:
                    child.restart()
                except Exception as err:  # noqa: BLE001 - a start that fails is one more failure
                    child.cause = f"failed to start again ({err})"
                    child.due = now + child.policy.restart_sec
                    self.say(f"{label}{child.name} {child.cause}: trying again in {child.policy.restart_sec:g} s")
                    continue
                child.restarts += 1
                self.restarted.append((child.name, child.cause))
                self.say(f"{label}{child.name} restarted (restart {child.restarts}, after it {child.cause})")
