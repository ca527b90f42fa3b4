"""The unit's A/B release directories and its update state file (standard library only).

    <root>/releases/<version>/release.json, app/...   one directory per installed release
    <root>/current -> releases/<v>    what the service runs (PYTHONPATH=<root>/current/app)
    <root>/good    -> releases/<v>    the last release that passed its health gate
    <root>/staging/                   downloads in progress
    <root>/tuf/                       TUF metadata the unit has trusted (rollback protection)
    <root>/update-state.json          the phase of the update in progress, written atomically

Each step writes the state before it acts, so after a power cut or SIGKILL `recover()` (run
before every start by `scanner.update.guard`) knows what was under way and finishes or undoes
it: partial downloads and unpacks are removed, an interrupted switch is completed or dropped,
and a release that keeps failing its first starts is switched back to `good`. Nothing outside
`<root>` (outbox, trust cache, rosters, config) is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.atomicfile import fsync_dir, write_atomic

STATE_FILE = "update-state.json"
MANIFEST = "release.json"
PHASES = ("idle", "downloading", "unpacking", "staged", "switching", "trial")
DEFAULT_MAX_STARTS = 3
HOLD_ENV = "CHOT_UPDATE_HOLD"


def version_key(version: str) -> tuple[int, ...]:
    """'1.10.0' sorts after '1.9.2'; anything not dotted numbers sorts first."""
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return ()


def hold_point(root: Path, step: str) -> None:
    """Fault-injection point: if $CHOT_UPDATE_HOLD names `step`, say so in a file and wait to be killed.

    The kill tests use it to SIGKILL the unit at an exact step; unset, it costs one env lookup.
    """
    if os.environ.get(HOLD_ENV) == step:
        (root / f"held-{step}").write_text(str(os.getpid()))
        while True:
            time.sleep(60)


@dataclass
class UpdateState:
    """What the unit's updater is doing; `last_failure` is reported in the unit's status."""

    phase: str = "idle"
    target: str | None = None
    """The version being installed or tried."""
    previous: str | None = None
    """The version running before the switch (where a rollback goes)."""
    starts: int = 0
    """Starts of `target` in trial so far (the guard counts them)."""
    max_starts: int = DEFAULT_MAX_STARTS
    last_result: str | None = None
    """Plain words on the last finished update ("updated 1.0.0 -> 1.1.0")."""
    last_failure: dict[str, Any] | None = None
    """{version, code, reason, at} of the last refused or rolled back update."""
    bad_versions: list[str] = field(default_factory=list)
    """Releases that failed their health gate here: never staged again (a fixed one gets a new version)."""
    updated_at: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpdateState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        state = cls(**known)
        if state.phase not in PHASES:
            state.phase = "idle"
        return state


class Layout:
    """The release root of one unit and the operations on it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.releases = self.root / "releases"
        self.staging = self.root / "staging"
        self.tuf_dir = self.root / "tuf"

    # -- state -------------------------------------------------------------------------------
    def load(self) -> UpdateState:
        """The saved state; a missing or unreadable file reads as idle (the running release stands)."""
        try:
            return UpdateState.from_dict(json.loads((self.root / STATE_FILE).read_bytes()))
        except (OSError, ValueError, TypeError):
            return UpdateState()

    def save(self, state: UpdateState) -> None:
        state.updated_at = time.time()
        write_atomic(self.root / STATE_FILE, json.dumps(asdict(state), sort_keys=True).encode())

    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """One updater at a time (the unit's agent, the CLI, the guard); yields False if busy and not waiting."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "update.lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- releases ----------------------------------------------------------------------------
    def release_dir(self, version: str) -> Path:
        return self.releases / version

    def pointed(self, name: str) -> str | None:
        """The version `current` or `good` points at, or None."""
        try:
            target = os.readlink(self.root / name)
        except OSError:
            return None
        version = Path(target).name
        return version if (self.release_dir(version) / MANIFEST).is_file() else None

    def installed(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir() if not p.name.startswith(".")
                      and (p / MANIFEST).is_file())

    def install_first(self, archive: Path) -> str:
        """Provision a unit with its first release: unpack it and point current and good at it."""
        version = self.unpack(archive)
        self.point("current", version)
        self.point("good", version)
        return version

    def unpack(self, archive: Path, expected: str | None = None) -> str:
        """Unpack a release archive into releases/<version> (via a hidden partial dir); returns the version."""
        from scanner.update.errors import BadRelease  # only the unpacking unit needs it

        self.releases.mkdir(parents=True, exist_ok=True)
        partial = self.releases / f".partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                for i, member in enumerate(members):
                    if not (member.isfile() or member.isdir()):
                        raise BadRelease(f"{member.name}: only files and directories may be in a release")
                    if member.name.startswith("/") or ".." in Path(member.name).parts:
                        raise BadRelease(f"{member.name}: unsafe path in a release archive")
                    tar.extract(member, partial, filter="data")
                    if i == len(members) // 2:
                        hold_point(self.root, "unpack")
        except (tarfile.TarError, OSError, EOFError) as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise BadRelease(f"cannot unpack {archive.name}: {e}") from None
        except BadRelease:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        try:
            manifest = json.loads((partial / MANIFEST).read_bytes())
            version = str(manifest["version"])
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(partial, ignore_errors=True)
            raise BadRelease("release.json missing or without a version") from None
        if expected is not None and version != expected:
            shutil.rmtree(partial, ignore_errors=True)
            raise BadRelease(f"archive says version {version}, the signed metadata says {expected}")
        if not (partial / "app" / "scanner" / "__init__.py").is_file() or "/" in version or version.startswith("."):
            shutil.rmtree(partial, ignore_errors=True)
            raise BadRelease("no app/scanner package in the release")
        for path in partial.rglob("*"):  # durable before it is named: a power cut leaves no half release
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        final = self.release_dir(version)
        if final.exists() and version not in (self.pointed("current"), self.pointed("good")):
            shutil.rmtree(final)  # an earlier unpack of the same version that was never run
        if final.exists():
            shutil.rmtree(partial, ignore_errors=True)
            return version
        os.rename(partial, final)
        fsync_dir(self.releases)
        return version

    def point(self, name: str, version: str) -> None:
        """Point `current` or `good` at a release in one atomic step (rename of a new symlink over it)."""
        if not (self.release_dir(version) / MANIFEST).is_file():
            raise FileNotFoundError(f"release {version} is not installed")
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"releases/{version}", tmp)
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)

    def clean_partials(self) -> None:
        """Remove half-made downloads and unpacks (from a process that died mid-step)."""
        if self.releases.is_dir():
            for p in self.releases.glob(".partial-*"):
                shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                p.unlink()
        shutil.rmtree(self.staging, ignore_errors=True)

    def prune(self, keep: int = 2) -> None:
        """Remove releases other than current, good and the newest `keep` (space on the SD card)."""
        protected = {self.pointed("current"), self.pointed("good")}
        newest = sorted(self.installed(), key=version_key)[-keep:]
        for version in self.installed():
            if version not in protected and version not in newest:
                shutil.rmtree(self.release_dir(version), ignore_errors=True)

    # -- transitions -------------------------------------------------------------------------
    def switch(self, state: UpdateState, version: str, max_starts: int) -> None:
        """Make `version` current and start its trial: state first, then the symlink, then the state again."""
        state.phase, state.target, state.previous = "switching", version, self.pointed("current")
        state.starts, state.max_starts = 0, max_starts
        self.save(state)
        hold_point(self.root, "switch")
        self.point("current", version)
        hold_point(self.root, "switched")
        state.phase = "trial"
        self.save(state)

    def commit(self, state: UpdateState) -> None:
        """The trial passed: `good` follows `current`, the state goes idle."""
        version = state.target or self.pointed("current")
        assert version is not None
        self.point("good", version)
        state.last_result = f"updated {state.previous} -> {version}"
        state.phase, state.target, state.previous, state.starts = "idle", None, None, 0
        self.save(state)
        self.prune()

    def roll_back(self, state: UpdateState, code: str, reason: str) -> None:
        """Switch `current` back to `good` and record why (reported in the unit's status)."""
        good = self.pointed("good") or state.previous
        failed = state.target
        if good is not None and good != self.pointed("current"):
            self.point("current", good)
        state.last_failure = {"version": failed, "code": code, "reason": reason, "at": time.time()}
        if failed is not None and failed not in state.bad_versions:
            state.bad_versions = [*state.bad_versions, failed][-20:]
        state.last_result = f"rolled back {failed} -> {good}"
        state.phase, state.target, state.previous, state.starts = "idle", None, None, 0
        self.save(state)

    def recover(self) -> UpdateState:
        """Before a start: finish or undo whatever a killed process left, count trial starts.

        Always leaves `current` pointing at an installed release (the good one when in doubt).
        """
        with self.locked():
            state = self.load()
            current = self.pointed("current")
            if state.phase in ("downloading", "unpacking"):
                self.clean_partials()
                state.phase, state.target = "idle", None
                self.save(state)
            elif state.phase == "staged":
                if state.target is None or state.target not in self.installed():
                    state.phase, state.target = "idle", None
                    self.save(state)
            elif state.phase == "switching":
                # Killed between writing "switching" and the trial: the symlink either moved or not.
                state.phase = "trial" if current == state.target else "staged"
                self.save(state)
            if state.phase == "trial":
                if current != state.target:  # someone pointed current elsewhere by hand
                    state.phase, state.target = "idle", None
                    self.save(state)
                else:
                    state.starts += 1
                    if state.starts > state.max_starts:
                        self.roll_back(state, "update_gate_failed",
                                       f"{state.target} did not pass its health gate in {state.max_starts} starts")
                    else:
                        self.save(state)
            if state.phase in ("idle", "staged"):
                self.clean_partials()
            if self.pointed("current") is None:  # dangling or missing: run the last good release
                installed = sorted(self.installed(), key=version_key)
                good = self.pointed("good") or (installed[-1] if installed else None)
                if good is not None:
                    self.point("current", good)
            return state
