"""Staged rollout ring by ring: a release that canaries roll back never reaches the next ring.

Real pieces: the ministry's TUF repository over HTTP, a Mosquitto broker, and two unit processes
(one per ring) running the releases' own code and reporting their retained status.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from keys.releases import ReleaseRepo, build_release
from keys.rollout import MqttStatuses, Ring, RolloutStopped, judge_ring, run_rollout
from scanner.cli import scanner as scanner_cli
from scanner.update.layout import Layout
from testbed.release_unit import ReleasedUnit, write_unit
from testbed.update_repo import StaticServer

ROOT = Path(__file__).resolve().parent.parent
CLOCK_BUG = b"""
_released_verify = verify


def verify(payload, store, now, policy, options):  # noqa: F811 - the patch replaces the released verify
    return _released_verify(payload, store, now + timedelta(days=3650), policy, options)
"""


def channel_version(repo: ReleaseRepo, name: str) -> str:
    """The release the channel `name` points at (it must have been published)."""
    pointer = repo.channel(name)
    assert pointer is not None, name
    version: str = pointer["version"]
    return version


def test_a_ring_is_judged_by_its_units_latest_status():
    ring = Ring("canary", ("cp/a", "cp/b", "cp/c", "cp/d"))
    statuses = {
        "cp/a": {"software": "2.0.0", "update": {"state": "idle", "failed": None}},
        "cp/b": {"software": "1.0.0", "update": {"state": "staged", "target": "2.0.0"}},
        "cp/c": {"software": "1.0.0", "update": {"state": "idle", "failed": "2.0.0",
                                                 "failure": "update_gate_failed"}},
        # an older failure of another release is not this release's failure
        "cp/d": {"software": "2.0.0", "update": {"state": "idle", "failed": "1.9.0", "failure": "update_refused"}},
    }
    report = judge_ring(ring, "2.0.0", statuses)
    assert report.updated == ["cp/a", "cp/d"] and report.waiting == ["cp/b"]
    assert report.failed == {"cp/c": "update_gate_failed"} and not report.done
    assert judge_ring(Ring("x", ("cp/a",)), "2.0.0", statuses).done
    assert judge_ring(Ring("x", ("cp/zz",)), "2.0.0", statuses).waiting == ["cp/zz"]  # never reported


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bad_release_stops_at_the_canary_ring_and_a_good_one_reaches_every_ring(tmp_path, ministry, mosquitto):
    pipeline = (ROOT / "scanner" / "pipeline.py").read_bytes()
    builds = tmp_path / "builds"
    archives = {v: build_release(ROOT, v, builds / f"{v}.tar.gz", patch=patch) for v, patch in (
        ("1.0.0", None), ("1.3.0", None), ("1.2.0", {"scanner/pipeline.py": pipeline + CLOCK_BUG}))}
    repo = ReleaseRepo.create(tmp_path / "repo", "test passphrase", kdf_iterations=1000)
    repo.add_release(archives["1.0.0"], "1.0.0", channel="canary")
    repo.promote("1.0.0", "stable")
    server = StaticServer(repo.path / "public")
    units: dict[str, ReleasedUnit] = {}
    statuses = MqttStatuses("127.0.0.1", mosquitto.port)
    try:
        for name, channel in (("unit-a", "canary"), ("unit-b", "stable")):
            config = write_unit(tmp_path / name, ministry=ministry, pinned_root=repo.pinned_root(),
                                metadata_url=server.metadata_url, targets_url=server.targets_url, people=2,
                                device=name, channel=channel, mqtt_port=mosquitto.port)
            result = CliRunner().invoke(scanner_cli, ["update", "provision", "--config", str(config)])
            assert result.exit_code == 0, result.output
            units[name] = ReleasedUnit(tmp_path / name / "opt", config, tmp_path / f"{name}.log")
            units[name].supervise()
        rings = [Ring("canary", ("ic7/unit-a",)), Ring("stable", ("ic7/unit-b",))]
        deadline = time.monotonic() + 60
        while not all(statuses().get(f"ic7/{u}", {}).get("software") == "1.0.0" for u in units):
            assert time.monotonic() < deadline, f"units did not report 1.0.0: {statuses()}"
            time.sleep(0.3)

        repo.add_release(archives["1.2.0"], "1.2.0", channel=None)  # published, on no ring yet
        with pytest.raises(RolloutStopped) as stopped:
            run_rollout(repo, "1.2.0", rings, statuses, ring_timeout_s=120, poll_s=0.5)
        assert stopped.value.report.channel == "canary"
        assert stopped.value.report.failed == {"ic7/unit-a": "update_gate_failed"}
        assert "ALARM" in str(stopped.value)
        assert channel_version(repo, "stable") == "1.0.0", "the second ring was promoted after a failure"
        assert Layout(tmp_path / "unit-a" / "opt").pointed("current") == "1.0.0"
        assert Layout(tmp_path / "unit-b" / "opt").installed() == ["1.0.0"]

        repo.add_release(archives["1.3.0"], "1.3.0", channel=None)  # the fixed release
        reports = run_rollout(repo, "1.3.0", rings, statuses, ring_timeout_s=120, poll_s=0.5)
        assert [r.updated for r in reports] == [["ic7/unit-a"], ["ic7/unit-b"]]
        for name in units:
            assert Layout(tmp_path / name / "opt").pointed("good") == "1.3.0"
    finally:
        for unit in units.values():
            unit.unsupervise()
            unit.stop()
        statuses.close()
        server.close()


def test_rollout_command_promotes_each_ring_and_raises_the_alarm_on_a_failed_unit(tmp_path, mosquitto, monkeypatch):
    """`chot keys release rollout` against retained statuses on a real broker (as units leave them)."""
    import json

    import paho.mqtt.client as mqtt

    from keys.cli import keys as keys_cli

    monkeypatch.setenv("CHOT_KEY_PASSPHRASE", "test passphrase")
    repo = ReleaseRepo.create(tmp_path / "repo", "test passphrase", kdf_iterations=1000)
    repo.add_release(build_release(ROOT, "1.0.0", tmp_path / "a.tgz", packages=("scanner", "common")), "1.0.0")
    repo.add_release(build_release(ROOT, "1.1.0", tmp_path / "b.tgz", packages=("scanner", "common")), "1.1.0",
                     channel=None)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()

    def report(device: str, software: str, update: dict) -> None:
        client.publish(f"chot/v1/ic7/{device}/status", json.dumps(
            {"state": "online", "software": software, "update": update}), qos=1, retain=True).wait_for_publish()

    report("a", "1.1.0", {"state": "idle", "failed": None})
    report("b", "1.0.0", {"state": "idle", "failed": "1.1.0", "failure": "update_gate_failed"})
    args = ["release", "rollout", str(repo.path), "--version", "1.1.0", "--ring", "canary=ic7/a",
            "--ring", "stable=ic7/b", "--mqtt", f"127.0.0.1:{mosquitto.port}", "--ring-timeout", "20"]
    result = CliRunner().invoke(keys_cli, args)
    assert result.exit_code == 1 and "ALARM" in result.output and "ic7/b (update_gate_failed)" in result.output
    assert channel_version(repo, "canary") == "1.1.0" and channel_version(repo, "stable") == "1.1.0"
    bad = CliRunner().invoke(keys_cli, [*args[:5], "--ring", "canary"])
    assert bad.exit_code == 2 and "CHANNEL=CP/DEV" in bad.output
    client.loop_stop()
    client.disconnect()
