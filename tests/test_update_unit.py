"""A/B updates of a real unit process: switch between people, health gate, rollback, SIGKILL anywhere.

The ministry tooling builds releases of this tree and publishes them in a real TUF repository
served over HTTP; the unit is provisioned through the channel and then runs *the release's own
code* (PYTHONPATH=<root>/current/app), started as systemd would: the guard, then
`chot scanner run`, restarted on exit status 75. Certificates and keys are made by the test
ministry; the camera is the scripted phone-screen camera (fake hardware, real decoder and crypto).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from keys.releases import ReleaseRepo, build_release
from scanner.cli import scanner as scanner_cli
from scanner.update.layout import Layout
from testbed.release_unit import ReleasedUnit, write_unit
from testbed.update_repo import StaticServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parent.parent
PEOPLE = 3
# Release 1.2.0's regression: the verifier judges as if ten years had passed (every certificate expired).
CLOCK_BUG = b"""
_released_verify = verify


def verify(payload, store, now, policy, options):  # noqa: F811 - the patch replaces the released verify
    return _released_verify(payload, store, now + timedelta(days=3650), policy, options)
"""


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Release archives built once from this tree: good ones and two broken ones."""
    out = tmp_path_factory.mktemp("releases")
    pipeline = (ROOT / "scanner" / "pipeline.py").read_bytes()
    return {
        "1.0.0": build_release(ROOT, "1.0.0", out / "1.0.0.tar.gz"),
        "1.1.0": build_release(ROOT, "1.1.0", out / "1.1.0.tar.gz"),
        "1.2.0": build_release(ROOT, "1.2.0", out / "1.2.0.tar.gz",
                               patch={"scanner/pipeline.py": pipeline + CLOCK_BUG}),
        "1.4.0": build_release(ROOT, "1.4.0", out / "1.4.0.tar.gz", patch={"scanner/capture.py": (
            ROOT / "scanner" / "capture.py").read_bytes() + b"\nCapture.start = lambda self: None  # 1.4.0: no frames\n"}),
        "1.3.0": build_release(ROOT, "1.3.0", out / "1.3.0.tar.gz",
                               patch={"scanner/pipeline.py": pipeline + b"\nraise ImportError('1.3.0 does not start')\n"}),
    }


@pytest.fixture
def site(tmp_path, ministry, archives):
    """Repository + server + a unit provisioned with 1.0.0 through the channel."""
    repo = ReleaseRepo.create(tmp_path / "repo", "test passphrase", kdf_iterations=1000)
    repo.add_release(archives["1.0.0"], "1.0.0")
    server = StaticServer(repo.path / "public")
    unit_dir = tmp_path / "unit"
    config = write_unit(unit_dir, ministry=ministry, pinned_root=repo.pinned_root(), people=PEOPLE,
                        metadata_url=server.metadata_url, targets_url=server.targets_url)
    result = CliRunner().invoke(scanner_cli, ["update", "provision", "--config", str(config)])
    assert result.exit_code == 0, result.output
    unit = ReleasedUnit(unit_dir / "opt", config, tmp_path / "unit.log")
    yield repo, unit, Layout(unit_dir / "opt"), unit_dir / "state"
    unit.kill()
    server.close()


def outbox_rows(state_dir: Path) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{state_dir / 'data' / 'outbox.sqlite'}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return []  # not created yet
    try:
        return conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def trust_files(state_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(state_dir)): p.read_bytes() for p in sorted((state_dir / "trust").rglob("*"))
            if p.is_file()}


def settle_on_first_release(unit: ReleasedUnit, state_dir: Path) -> tuple[list[tuple], dict[str, bytes]]:
    """Run 1.0.0 until its people are judged; return the outbox rows and trust cache to compare later."""
    unit.run_until(lambda: len(outbox_rows(state_dir)) >= PEOPLE, 90)
    return outbox_rows(state_dir), trust_files(state_dir)


def assert_nothing_lost_or_doubled(before: list[tuple], after: list[tuple], kills: int = 0) -> None:
    """Rows before are unchanged; seqs unique and increasing, contiguous but for one gap per SIGKILL
    (the outbox reserves a seq before the row commits: a kill in between leaves a gap, never a reuse)."""
    assert after[:len(before)] == before, "a row recorded before the update changed or vanished"
    seqs = [row[0] for row in after]
    assert seqs == sorted(set(seqs)), f"seqs not unique and increasing: {seqs}"
    assert seqs[-1] - seqs[0] + 1 - len(seqs) <= kills, f"seqs have gaps: {seqs}"


def test_good_release_switches_between_people_passes_its_gate_and_keeps_the_state(site, archives):
    repo, unit, layout, state_dir = site
    assert (layout.pointed("current"), layout.pointed("good")) == ("1.0.0", "1.0.0")
    before, trust = settle_on_first_release(unit, state_dir)
    repo.add_release(archives["1.1.0"], "1.1.0")
    unit.run_until(lambda: layout.pointed("good") == "1.1.0", 120)
    state = layout.load()
    assert (state.phase, state.last_result, state.last_failure) == ("idle", "updated 1.0.0 -> 1.1.0", None)
    assert layout.pointed("current") == "1.1.0" and unit.starts == 2
    assert unit.stop() == 0
    assert_nothing_lost_or_doubled(before, outbox_rows(state_dir))
    assert trust_files(state_dir) == trust
    log = unit.log.read_text()
    assert "release 1.1.0 on trial" in log and "passed its health gate" in log
    assert not list(layout.releases.glob(".partial-*")) and not layout.staging.exists()


def test_bad_release_fails_its_self_test_and_the_unit_switches_back_by_itself(site, archives):
    repo, unit, layout, state_dir = site
    before, trust = settle_on_first_release(unit, state_dir)
    repo.add_release(archives["1.2.0"], "1.2.0")
    unit.run_until(lambda: (layout.load().last_failure or {}).get("version") == "1.2.0"
                   and layout.pointed("current") == "1.0.0" and unit.starts >= 3, 120)
    state = layout.load()
    assert state.last_failure["code"] == "update_gate_failed"
    assert "self-test certificate got red" in state.last_failure["reason"]
    assert layout.pointed("good") == "1.0.0" and state.bad_versions == ["1.2.0"]
    # Back on 1.0.0 it does not take 1.2.0 again, and it reports why in its status.
    unit.run_until(lambda: len(outbox_rows(state_dir)) >= len(before) + PEOPLE, 60)
    assert layout.load().phase == "idle" and layout.pointed("current") == "1.0.0"
    assert unit.stop() == 0
    after = outbox_rows(state_dir)
    assert_nothing_lost_or_doubled(before, after)
    assert trust_files(state_dir) == trust
    # The self-test ran before the camera opened: nobody was judged (red) by the broken release.
    assert len(after) == len(before) + PEOPLE and "red" not in {row[2] for row in after}, after
    assert "failed its self-test" in unit.log.read_text()


def test_release_that_cannot_start_is_switched_back_by_the_guard(site, archives):
    repo, unit, layout, state_dir = site
    before, trust = settle_on_first_release(unit, state_dir)
    repo.add_release(archives["1.3.0"], "1.3.0")
    unit.run_until(lambda: (layout.load().last_failure or {}).get("version") == "1.3.0"
                   and layout.pointed("current") == "1.0.0", 120)
    state = layout.load()
    assert state.last_failure["code"] == "update_gate_failed" and "in 2 starts" in state.last_failure["reason"]
    assert "1.3.0 does not start" in unit.log.read_text()
    unit.run_until(lambda: len(outbox_rows(state_dir)) >= len(before) + PEOPLE, 60)
    assert unit.stop() == 0
    assert_nothing_lost_or_doubled(before, outbox_rows(state_dir))
    assert trust_files(state_dir) == trust


def test_release_without_camera_frames_fails_its_gate_in_time_and_switches_back(site, archives):
    """Self-test passes, but the camera never delivers: the gate's deadline switches the unit back."""
    repo, unit, layout, state_dir = site
    before, trust = settle_on_first_release(unit, state_dir)
    repo.add_release(archives["1.4.0"], "1.4.0")
    unit.run_until(lambda: (layout.load().last_failure or {}).get("version") == "1.4.0"
                   and layout.pointed("current") == "1.0.0", 120)
    failure = layout.load().last_failure
    assert failure["code"] == "update_gate_failed" and "no camera frame yet" in failure["reason"]
    unit.run_until(lambda: len(outbox_rows(state_dir)) >= len(before) + PEOPLE, 60)
    assert unit.stop() == 0
    assert_nothing_lost_or_doubled(before, outbox_rows(state_dir))
    assert trust_files(state_dir) == trust


@pytest.mark.parametrize("step", ["download", "unpack", "switch", "switched", "first-start"])
def test_sigkill_at_every_step_comes_back_on_a_working_release(site, archives, step):
    repo, unit, layout, state_dir = site
    before, trust = settle_on_first_release(unit, state_dir)
    unit.stop()
    held = layout.root / f"held-{step}"
    repo.add_release(archives["1.1.0"], "1.1.0")
    unit.run_until(held.exists, 90, CHOT_UPDATE_HOLD=step)
    unit.kill()  # power cut at this step
    held.unlink()
    killed_in = layout.load().phase
    unit.guard()  # what the next boot runs first
    assert layout.pointed("current") in ("1.0.0", "1.1.0"), "current must name an installed release"
    assert not list(layout.releases.glob(".partial-*")), "half-unpacked release left behind"
    # The next start carries on (or starts over) and ends on the new release, committed.
    unit.run_until(lambda: layout.pointed("good") == "1.1.0" and layout.load().phase == "idle", 120)
    assert layout.pointed("current") == "1.1.0" and layout.load().last_failure is None
    assert unit.stop() == 0
    assert_nothing_lost_or_doubled(before, outbox_rows(state_dir), kills=1)
    assert trust_files(state_dir) == trust
    print(f"killed at {step} (state phase {killed_in}); recovered after {unit.starts} starts")


def test_status_command_on_a_freshly_provisioned_unit(site):
    """`chot scanner update status`: the first release is current and good, nothing in progress."""
    _repo, unit, _layout, _state_dir = site
    result = CliRunner().invoke(scanner_cli, ["update", "status", "--config", str(unit.config)])
    status = json.loads(result.output)
    assert (status["current"], status["good"], status["installed"], status["phase"]) == \
        ("1.0.0", "1.0.0", ["1.0.0"], "idle")
