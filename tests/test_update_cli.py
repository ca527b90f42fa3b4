"""`chot keys release ...` (the ministry's side) and `chot scanner update ...` (the unit's) with real files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from keys.cli import keys as keys_cli
from scanner.cli import scanner as scanner_cli
from testbed.update_repo import StaticServer

ROOT = Path(__file__).resolve().parent.parent


def test_operator_publishes_promotes_and_a_unit_is_provisioned_and_staged(tmp_path, monkeypatch):
    monkeypatch.setenv("CHOT_KEY_PASSPHRASE", "ministry release passphrase")
    run = CliRunner().invoke
    repo = tmp_path / "repo"
    assert run(keys_cli, ["release", "init", str(repo)]).exit_code == 0
    for version in ("1.0.0", "1.1.0"):
        out = tmp_path / f"chot-{version}.tar.gz"
        result = run(keys_cli, ["release", "build", "--source", str(ROOT), "--version", version, str(out)])
        assert result.exit_code == 0, result.output
    result = run(keys_cli, ["release", "publish", str(repo), str(tmp_path / "chot-1.0.0.tar.gz"),
                            "--version", "1.0.0", "--channel", "canary"])
    assert result.exit_code == 0, result.output
    assert run(keys_cli, ["release", "promote", str(repo), "--version", "1.0.0", "--channel", "stable"]).exit_code == 0
    refused = run(keys_cli, ["release", "promote", str(repo), "--version", "1.0.0", "--channel", "stable"])
    assert refused.exit_code == 1 and "not newer" in refused.output
    listing = json.loads(run(keys_cli, ["release", "list", str(repo)]).output)
    assert listing["channels"]["stable"]["version"] == "1.0.0" and len(listing["releases"]) == 1
    assert run(keys_cli, ["release", "timestamp", str(repo), "--hours", "6"]).exit_code == 0

    server = StaticServer(repo / "public")
    try:
        (tmp_path / "unit.toml").write_text(f"""
[unit]
device_id = "unit-9"
checkpoint = "cp1"
[trust]
anchor_file = "anchor.pem"
cache_dir = "trust"
[storage]
data_dir = "data"
[update]
root = "sw"
root_file = "{repo}/public/metadata/1.root.json"
metadata_url = "{server.metadata_url}"
targets_url = "{server.targets_url}"
channel = "canary"
""")
        config = str(tmp_path / "unit.toml")
        result = run(scanner_cli, ["update", "provision", "--config", config])
        assert result.exit_code == 0 and "installed 1.0.0" in result.output, result.output
        assert run(scanner_cli, ["update", "check", "--config", config]).output.startswith("up to date: 1.0.0")
        run(keys_cli, ["release", "publish", str(repo), str(tmp_path / "chot-1.1.0.tar.gz"), "--version", "1.1.0",
                       "--channel", "canary"])
        result = run(scanner_cli, ["update", "check", "--config", config])
        assert result.exit_code == 0 and "staged 1.1.0" in result.output, result.output
        status = json.loads(run(scanner_cli, ["update", "status", "--config", config]).output)
        assert (status["current"], status["phase"], status["target"]) == ("1.0.0", "staged", "1.1.0")
        assert (tmp_path / "sw" / "releases" / "1.1.0" / "app" / "verifier" / "__init__.py").is_file()
        assert (tmp_path / "sw" / "check-now").exists()  # wakes the running unit's updater
    finally:
        server.close()


def test_update_section_checks_its_values_and_hours_window():
    import pytest

    from common.typedconfig import ConfigError, parse
    from scanner.update.config import UpdateSection

    base = {"root": "sw", "root_file": "root.json", "metadata_url": "https://c/m/", "targets_url": "https://c/t/"}
    night = parse(UpdateSection, {**base, "hours": "22-05"})
    assert [h for h in range(24) if night.in_hours(h)] == [0, 1, 2, 3, 4, 22, 23]
    assert parse(UpdateSection, {**base, "hours": "09-17"}).in_hours(16)
    assert not parse(UpdateSection, {**base, "hours": "09-17"}).in_hours(17)
    assert all(parse(UpdateSection, base).in_hours(h) for h in range(24))
    for bad, words in (({"hours": "9-17"}, "hours"), ({"metadata_url": "ftp://x/"}, "http"),
                       ({"gate_s": 0}, "gate_s"), ({"max_starts": 0}, "max_starts"),
                       ({"selftest_expect": "blue"}, "selftest_expect"), ({"surprise": 1}, "surprise")):
        with pytest.raises(ConfigError, match=words):
            parse(UpdateSection, {**base, **bad})


def test_the_central_accepts_a_status_with_the_update_part_and_refuses_a_malformed_one():
    import pytest

    from dashboard.ingest import Rejected, parse_status

    status = {"state": "online", "software": "1.0.0", "ts": "2026-12-08T04:00:00Z",
              "update": {"state": "idle", "target": None, "failed": "1.2.0", "failure": "update_gate_failed"}}
    assert parse_status(json.dumps(status).encode()).software == "1.0.0"
    for update in ({"state": "idle", "payload": "x"}, {"state": 5}, ["idle"], {"failure": "x" * 65}):
        with pytest.raises(Rejected, match="update"):
            parse_status(json.dumps({**status, "update": update}).encode())
