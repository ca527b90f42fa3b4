"""The unit's release directories and state file: what recover() does with every state a kill can leave."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from scanner.update.errors import BadRelease
from scanner.update.layout import Layout, UpdateState


def archive(path: Path, version: str, members: dict[str, bytes] | None = None, *, link: str | None = None) -> Path:
    files = members if members is not None else {
        "release.json": json.dumps({"version": version}).encode(), "app/scanner/__init__.py": b""}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("app/evil")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return path


@pytest.fixture
def layout(tmp_path):
    layout = Layout(tmp_path / "sw")
    layout.install_first(archive(tmp_path / "a.tgz", "1.0.0"))
    layout.unpack(archive(tmp_path / "b.tgz", "1.1.0"))
    return layout


def test_install_points_current_and_good_and_unpack_is_beside_it(layout):
    assert (layout.pointed("current"), layout.pointed("good"), layout.installed()) == ("1.0.0", "1.0.0",
                                                                                       ["1.0.0", "1.1.0"])
    assert os.readlink(layout.root / "current") == "releases/1.0.0"  # relative: the root may move


@pytest.mark.parametrize("members, link, words", [
    ({"../escape.py": b"x", "release.json": b'{"version": "2.0.0"}'}, None, "unsafe path"),
    ({"/abs.py": b"x", "release.json": b'{"version": "2.0.0"}'}, None, "unsafe path"),
    ({"release.json": b'{"version": "2.0.0"}', "app/scanner/__init__.py": b""}, "/etc/passwd", "only files"),
    ({"app/scanner/__init__.py": b""}, None, "release.json"),
    ({"release.json": b'{"version": "2.0.0"}'}, None, "no app/scanner"),
])
def test_malformed_or_hostile_archives_are_refused_and_leave_nothing(tmp_path, layout, members, link, words):
    with pytest.raises(BadRelease, match=words):
        layout.unpack(archive(tmp_path / "x.tgz", "2.0.0", members, link=link))
    assert layout.installed() == ["1.0.0", "1.1.0"] and not list(layout.releases.glob(".partial-*"))
    assert not (tmp_path / "escape.py").exists()


def test_version_in_archive_must_match_the_signed_one(tmp_path, layout):
    with pytest.raises(BadRelease, match="signed metadata says 1.5.0"):
        layout.unpack(archive(tmp_path / "c.tgz", "1.4.0"), expected="1.5.0")


@pytest.mark.parametrize("phase", ["downloading", "unpacking"])
def test_kill_while_fetching_cleans_up_and_keeps_running(layout, phase):
    (layout.releases / ".partial-123").mkdir()
    layout.staging.mkdir()
    (layout.staging / "chot-unit-1.2.0.tar.gz.part").write_bytes(b"half")
    layout.save(UpdateState(phase=phase, target="1.2.0"))
    state = layout.recover()
    assert (state.phase, layout.pointed("current")) == ("idle", "1.0.0")
    assert not (layout.releases / ".partial-123").exists() and not layout.staging.exists()


@pytest.mark.parametrize("moved", [False, True])
def test_kill_during_switch_completes_or_drops_it(layout, moved):
    layout.save(UpdateState(phase="switching", target="1.1.0", previous="1.0.0"))
    if moved:
        layout.point("current", "1.1.0")
    state = layout.recover()
    assert (state.phase, layout.pointed("current")) == (("trial", "1.1.0") if moved else ("staged", "1.0.0"))


def test_trial_starts_are_counted_and_exhausted_ones_switch_back(layout):
    state = UpdateState(target="1.1.0", previous="1.0.0")
    layout.switch(state, "1.1.0", max_starts=2)
    assert [layout.recover().starts for _ in range(2)] == [1, 2]
    state = layout.recover()  # a third start: the release had its chances
    assert (state.phase, layout.pointed("current"), layout.pointed("good")) == ("idle", "1.0.0", "1.0.0")
    assert state.last_failure["code"] == "update_gate_failed" and state.bad_versions == ["1.1.0"]


def test_commit_moves_good_and_prunes_old_releases(tmp_path, layout):
    for version in ("1.2.0", "1.3.0"):
        layout.unpack(archive(tmp_path / f"{version}.tgz", version))
        state = layout.load()
        layout.switch(state, version, 3)
        layout.commit(layout.load())
    assert (layout.pointed("current"), layout.pointed("good")) == ("1.3.0", "1.3.0")
    assert layout.installed() == ["1.2.0", "1.3.0"]


def test_unreadable_state_or_dangling_current_recover_to_a_release(layout):
    (layout.root / "update-state.json").write_text("{torn")
    (layout.root / "current").unlink()
    os.symlink("releases/9.9.9", layout.root / "current")
    state = layout.recover()
    assert state.phase == "idle" and layout.pointed("current") == "1.0.0"


def test_agent_switches_a_staged_release_only_inside_the_allowed_hours(tmp_path, layout):
    """The unit's loop offers the switch every tick; outside `hours` it waits, inside it switches and restarts."""
    from types import SimpleNamespace

    from common.typedconfig import parse
    from scanner.update.agent import UpdateAgent
    from scanner.update.config import UpdateSection

    config = parse(UpdateSection, {"root": str(layout.root), "root_file": str(tmp_path / "root.json"),
                                   "metadata_url": "http://127.0.0.1:9/m/", "targets_url": "http://127.0.0.1:9/t/",
                                   "hours": "22-05", "idle_s": 0.0, "check_every_s": 0})
    layout.save(UpdateState(phase="staged", target="1.1.0"))
    hour = [12]
    restarts: list[str] = []
    idle_unit = SimpleNamespace(pipeline=None, screen=None, desk=None)  # no camera in this test: always idle
    agent = UpdateAgent(config, idle_unit, running="1.0.0", request_restart=restarts.append,
                        local_hour=lambda: hour[0])
    agent.tick()
    assert (layout.load().phase, layout.pointed("current"), restarts) == ("staged", "1.0.0", [])
    hour[0] = 23
    agent.tick()
    assert (layout.load().phase, layout.pointed("current")) == ("trial", "1.1.0")
    assert restarts == ["switched to release 1.1.0"] and agent.status()["state"] == "trial"
