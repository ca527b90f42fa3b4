"""`chot keys` end to end with click's CliRunner: ministry, issuing, bulk, QR, bundle, revocation."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import stat
from pathlib import Path

import cv2
import pytest
import zxingcpp
from click.testing import CliRunner

from chot.cli import main
from keys import dcc
from keys.cli import keys as keys_group
from verifier import verify
from verifier.bundle import parse_bundle
from verifier.policy import builtin_policy

NOW = dt.datetime(2021, 10, 1, 12, 0, tzinfo=dt.timezone.utc)
NOW_ARG = "2021-10-01T12:00:00"
PERSON = {"fn": "Phạm", "gn": "Thị Thu Hằng", "dob": "1979-05-30"}


def run(*args: str, passphrase: str = "hunter2", ok: bool = True):
    result = CliRunner().invoke(main, ["keys", *args], env={"CHOT_KEY_PASSPHRASE": passphrase},
                                catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def ministry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Certificates start a day before NOW so --now can be used throughout.
    root = tmp_path_factory.mktemp("ministry-template") / "ministry"
    from keys.ministry import init_ministry

    init_ministry(root, "hunter2", now=NOW - dt.timedelta(days=1))
    return root


@pytest.fixture
def ministry_dir(ministry_template: Path, tmp_path: Path) -> Path:
    # A copy per test (modes kept): a test may add signers or revoke without touching another's.
    # Making one costs seconds (every key encrypted with 600,000 PBKDF2 rounds).
    return Path(shutil.copytree(ministry_template, tmp_path / "ministry"))


def _trust(ministry_dir: Path, version: int, tmp_path: Path):
    out = tmp_path / f"bundle-{version}.json"
    run("bundle", "--ministry", str(ministry_dir), "--version", str(version), "--out", str(out), "--now", NOW_ARG)
    return parse_bundle(out.read_bytes(), (ministry_dir / "anchor.pem").read_bytes()).trust_store()


def test_every_command_has_help() -> None:
    runner = CliRunner()
    assert keys_group.help
    for name, command in keys_group.commands.items():
        assert command.help, name
        result = runner.invoke(main, ["keys", name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, name
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.name}"


def test_init_ministry_makes_protected_keys_and_refuses_a_second_time(tmp_path: Path) -> None:
    root = tmp_path / "m"
    result = run("init-ministry", str(root))
    assert result.output.count("DSC kid=") == 3 and "anchor for units" in result.output
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    keys = sorted(root.rglob("*.key.pem"))
    assert len(keys) == 5 and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert all("ENCRYPTED" in k.read_text() for k in keys)
    again = run("init-ministry", str(root), ok=False)
    assert again.exit_code == 1 and "already holds a ministry" in again.output
    single = run("init-ministry", str(tmp_path / "one"), "--single-dsc", "--alg", "PS256")
    assert single.output.count("DSC kid=") == 1 and "types=v,t,r" in single.output
    # An RSA ministry issues PS256 certificates that verify through its own bundle.
    (tmp_path / "p.json").write_text(json.dumps(PERSON), encoding="utf-8")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    text = run("issue", "--ministry", str(tmp_path / "one"), "--person", str(tmp_path / "p.json"), "--kind", "test",
               "--out", "-").output.strip()
    run("bundle", "--ministry", str(tmp_path / "one"), "--version", "1", "--out", str(tmp_path / "b.json"))
    store = parse_bundle((tmp_path / "b.json").read_bytes(), (tmp_path / "one" / "anchor.pem").read_bytes())
    verdict = verify(text, store.trust_store(), now, builtin_policy("workplace"))
    assert (verdict.result, verdict.reason) == ("green", "negative_test")


def test_issue_then_verify_each_kind(ministry_dir: Path, tmp_path: Path) -> None:
    person = tmp_path / "person.json"
    person.write_text(json.dumps(PERSON, ensure_ascii=False), encoding="utf-8")
    common = ["--ministry", str(ministry_dir), "--person", str(person), "--now", NOW_ARG]
    cases = {
        "full.txt": (["--kind", "vaccination", "--dose", "2/2", "--vaccine", "astrazeneca", "--date", "2021-09-01"],
                     "green"),
        "partial.txt": (["--kind", "vaccination", "--dose", "1/2", "--date", "2021-09-01"], "yellow"),
        "test.txt": (["--kind", "test", "--sampled-at", "2021-10-01T06:00:00Z"], "yellow"),
        "positive.txt": (["--kind", "test", "--result", "positive"], "red"),
        "recovery.txt": (["--kind", "recovery", "--date", "2021-08-15"], "green"),
    }
    for name, (args, _) in cases.items():
        result = run("issue", *common, *args, "--out", str(tmp_path / name), "--qr", str(tmp_path / f"{name}.png"))
        assert "Phạm" not in result.output and "PHAM" not in result.output
    store = _trust(ministry_dir, 1, tmp_path)
    policy = builtin_policy("vn-2021")
    for name, (_, colour) in cases.items():
        text = (tmp_path / name).read_text().strip()
        verdict = verify(text, store, NOW, policy)
        assert verdict.result == colour, (name, verdict.reason)
        assert verdict.holder.family_name == "Phạm" and verdict.holder.given_name_t == "THI<THU<HANG"
        image = cv2.imread(str(tmp_path / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        assert [r.text for r in zxingcpp.read_barcodes(image)] == [text]


def test_issue_errors_are_readable(ministry_dir: Path, tmp_path: Path) -> None:
    person = tmp_path / "person.json"
    person.write_text(json.dumps(PERSON), encoding="utf-8")
    common = ["issue", "--ministry", str(ministry_dir), "--person", str(person), "--out", str(tmp_path / "x.txt"),
              "--now", NOW_ARG]
    wrong = run(*common, "--kind", "vaccination", passphrase="nope", ok=False)
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.output
    usage = run(*common, "--kind", "test", "--dsc", "vaccination", ok=False)
    assert usage.exit_code == 1 and "not allowed to sign" in usage.output
    unknown = run(*common, "--kind", "test", "--dsc", "nosuch", ok=False)
    assert unknown.exit_code == 1 and "no DSC named 'nosuch' (have: recovery, test, vaccination)" in unknown.output
    dose = run(*common, "--kind", "vaccination", "--dose", "two", ok=False)
    assert dose.exit_code == 2 and "N/M" in dose.output
    (tmp_path / "bad.json").write_text('{"fn": "Lê"}')
    bad = run("issue", "--ministry", str(ministry_dir), "--person", str(tmp_path / "bad.json"), "--kind", "test",
              "--out", "-", ok=False)
    assert bad.exit_code == 1 and "dob is required" in bad.output
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    binary = run("issue", "--ministry", str(ministry_dir), "--person", str(tmp_path / "binary.json"), "--kind",
                 "test", "--out", "-", ok=False)
    assert binary.exit_code == 1 and "not utf-8 text" in binary.output
    nowhere = run("issue", "--ministry", str(ministry_dir), "--person", str(person), "--kind", "test", "--now",
                  NOW_ARG, "--out", str(tmp_path / "no" / "such" / "dir.txt"), ok=False)
    assert nowhere.exit_code == 1 and "No such file or directory" in nowhere.output
    expired = run("issue", "--ministry", str(ministry_dir), "--person", str(person), "--kind", "test",
                  "--now", "2030-01-01", "--out", "-", ok=False)
    assert expired.exit_code == 1 and "no valid DSC" in expired.output
    missing = run("bundle", "--ministry", str(tmp_path / "none"), "--version", "1", "--out", str(tmp_path / "b"),
                  ok=False)
    assert missing.exit_code == 1 and "not an initialised ministry" in missing.output
    assert not (tmp_path / "x.txt").exists()


def test_issue_bulk_writes_files_and_a_manifest_without_names(ministry_dir: Path, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "bulk"
    result = CliRunner().invoke(main, ["-vv", "keys", "issue-bulk", "--ministry", str(ministry_dir), "--count", "12",
                                       "--seed", "42", "--out", str(out), "--now", NOW_ARG],
                                env={"CHOT_KEY_PASSPHRASE": "hunter2"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 12 and len(manifest["certificates"]) == 12
    assert {c["kind"] for c in manifest["certificates"]} <= {"v", "t", "r"}
    assert len({c["kind"] for c in manifest["certificates"]}) >= 2
    store = _trust(ministry_dir, 1, tmp_path)
    for entry in manifest["certificates"]:
        text = (out / entry["text_file"]).read_text().strip()
        assert verify(text, store, NOW, builtin_policy("eu-validity")).result == "green"
        assert (out / entry["png_file"]).stat().st_size > 0
    from keys import hc1

    holders = [hc1.unpack((out / e["text_file"]).read_text()).dcc for e in manifest["certificates"]]
    said = (out / "manifest.json").read_text() + result.output + caplog.text
    for document in holders:
        for value in [*document["nam"].values(), document["dob"], dcc.uci_of(document)]:
            assert value not in said
    assert "issued 12 certificates" in caplog.text  # logging did happen, just without personal data
    # The same seed gives the same people and certificates (signatures differ: ECDSA is randomised).
    again = CliRunner().invoke(main, ["keys", "issue-bulk", "--ministry", str(ministry_dir), "--count", "12",
                                      "--seed", "42", "--out", str(tmp_path / "bulk2"), "--now", NOW_ARG],
                               env={"CHOT_KEY_PASSPHRASE": "hunter2"})
    assert again.exit_code == 0
    assert [hc1.unpack(p.read_text()).dcc for p in sorted((tmp_path / "bulk2").glob("*.hc1.txt"))] == holders


def test_qr_command(tmp_path: Path, ministry) -> None:
    issued = ministry.issue_recovery(now=NOW)
    source = tmp_path / "cert.txt"
    source.write_text(issued.hc1 + "\n")
    run("qr", str(source), "--out", str(tmp_path / "cert.png"), "--scale", "3")
    image = cv2.imread(str(tmp_path / "cert.png"), cv2.IMREAD_GRAYSCALE)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [issued.hc1]
    source.write_text("not hc1")
    bad = run("qr", str(source), "--out", str(tmp_path / "x.png"), ok=False)
    assert bad.exit_code == 2 and "HC1:" in bad.output


def test_bundle_versions_and_revocation(ministry_dir: Path, tmp_path: Path) -> None:
    person = tmp_path / "person.json"
    person.write_text(json.dumps(PERSON), encoding="utf-8")
    cert = tmp_path / "cert.txt"
    run("issue", "--ministry", str(ministry_dir), "--person", str(person), "--kind", "vaccination",
        "--date", "2021-09-01", "--out", str(cert), "--now", NOW_ARG)
    text = cert.read_text().strip()
    policy = builtin_policy("vn-2021")
    assert verify(text, _trust(ministry_dir, 1, tmp_path), NOW, policy).result == "green"
    stale = run("bundle", "--ministry", str(ministry_dir), "--version", "1", "--out", str(tmp_path / "b.json"),
                ok=False)
    assert stale.exit_code == 1 and "must be greater than the last published version 1" in stale.output
    both = run("revoke", "--ministry", str(ministry_dir), "--hc1", str(cert), "--uci", "X", ok=False)
    assert both.exit_code == 2 and "exactly one" in both.output
    result = run("revoke", "--ministry", str(ministry_dir), "--hc1", str(cert))
    assert "3 new hashes" in result.output
    verdict = verify(text, _trust(ministry_dir, 2, tmp_path), NOW, policy)
    assert (verdict.result, verdict.reason) == ("red", "revoked")
    document = json.loads((tmp_path / "bundle-2.json").read_text())
    assert parse_bundle(json.dumps(document).encode(), (ministry_dir / "anchor.pem").read_text()).policies.keys() \
        >= {"vn-2021", "workplace", "eu-validity"}


def test_add_dsc(ministry_dir: Path) -> None:
    result = run("add-dsc", "--ministry", str(ministry_dir), "tests-2022", "--types", "test,r", "--days", "30")
    assert "types=t,r" in result.output
    assert stat.S_IMODE((ministry_dir / "dsc" / "tests-2022.key.pem").stat().st_mode) == 0o600
    dup = run("add-dsc", "--ministry", str(ministry_dir), "tests-2022", ok=False)
    assert dup.exit_code == 1 and "already exists" in dup.output
    bad = run("add-dsc", "--ministry", str(ministry_dir), "x", "--types", "q", ok=False)
    assert bad.exit_code == 2
    odd = run("add-dsc", "--ministry", str(ministry_dir), "../escape", ok=False)
    assert odd.exit_code == 1 and "a-z" in odd.output


def test_bundle_carries_value_sets_shipped_or_from_a_folder(ministry_dir: Path, tmp_path: Path) -> None:
    from verifier.valuesets import NAMES, shipped

    anchor = (ministry_dir / "anchor.pem").read_bytes()
    plain = tmp_path / "plain.json"
    run("bundle", "--ministry", str(ministry_dir), "--version", "1", "--out", str(plain), "--now", NOW_ARG)
    assert parse_bundle(plain.read_bytes(), anchor).value_sets == {}

    with_shipped = tmp_path / "shipped.json"
    done = run("bundle", "--ministry", str(ministry_dir), "--version", "2", "--out", str(with_shipped),
               "--now", NOW_ARG, "--value-sets", "shipped")
    assert "value sets" in done.output
    bundle = parse_bundle(with_shipped.read_bytes(), anchor)
    assert set(bundle.value_sets) == NAMES
    assert bundle.trust_store().value_sets.codes == shipped().codes

    folder = tmp_path / "valuesets"
    folder.mkdir()
    (folder / "test-manf.json").write_text(json.dumps(
        {"valueSetId": "covid-19-lab-test-manufacturer-and-name", "valueSetDate": "2026-12-01",
         "valueSetValues": {"3001": {"display": "New rapid test", "active": True}}}), encoding="utf-8")
    (folder / "notes.json").write_text("{}", encoding="utf-8")  # not a value set: left out, with a warning
    out = tmp_path / "folder.json"
    run("bundle", "--ministry", str(ministry_dir), "--version", "3", "--out", str(out), "--now", NOW_ARG,
        "--value-sets", str(folder))
    store = parse_bundle(out.read_bytes(), anchor).trust_store()
    assert store.value_sets["test-manf"] == frozenset({"3001"})
    assert store.value_sets["country-2-codes"] == shipped()["country-2-codes"]

    (folder / "test-manf.json").write_text(json.dumps({"valueSetValues": {}}), encoding="utf-8")
    refused = run("bundle", "--ministry", str(ministry_dir), "--version", "4", "--out", str(tmp_path / "x.json"),
                  "--now", NOW_ARG, "--value-sets", str(folder), ok=False)
    assert refused.exit_code != 0 and "test-manf" in refused.output and "no codes" in refused.output
    wrong = run("bundle", "--ministry", str(ministry_dir), "--version", "4", "--out", str(tmp_path / "x.json"),
                "--value-sets", str(tmp_path / "missing"), ok=False)
    assert wrong.exit_code == 2 and "--value-sets" in wrong.output
