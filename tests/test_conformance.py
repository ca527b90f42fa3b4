"""Every dgc-testdata case in tests/data/dcc agrees with the verifier, known upstream faults aside."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from chot.conformance import KNOWN_FAULTS, STEPS, parse_clock, run_directory
from chot.verify_cli import conformance

DATA = Path(__file__).parent / "data" / "dcc"


@pytest.fixture(scope="module")
def results():
    return run_directory(DATA)


def test_every_case_runs(results):
    assert len(results) == 468
    assert not [r.name for r in results if r.error]
    assert sum(len(r.steps) for r in results) > 3500


def test_every_case_agrees_except_known_faults(results):
    disagreeing = {f"{r.country}/{r.name}": r.disagreements for r in results if not r.passed}
    assert disagreeing == {}


def test_each_known_fault_still_occurs(results):
    """A fault list entry that matches nothing would hide a future regression: keep it true."""
    seen = {(r.country, step) for r in results for step in r.known}
    for country, _pattern, step in KNOWN_FAULTS:
        assert (country, step) in seen, f"known fault {country} {step} no longer occurs"


@pytest.mark.parametrize("step", ["VERIFY", "EXPIRATIONCHECK", "KEYUSAGE", "SCHEMAVALIDATION", "DECODE"])
def test_negative_expectations_are_exercised(results, step):
    """Each important step has cases expected to fail, and they do fail (not just agree by luck)."""
    failing = [r for r in results if step in r.steps and r.steps[step][0] is False and step not in r.known]
    assert failing and all(r.steps[step][1] is False for r in failing)


@pytest.mark.parametrize("text, iso", [
    ("2021-05-28T10:32:13Z", "2021-05-28T10:32:13+00:00"),
    ("2021-05-28T10:32:13.123456789+02:00", "2021-05-28T10:32:13.123456+02:00"),
    ("2021-05-28T10:32:13+0200", "2021-05-28T10:32:13+02:00"),
    ("2021-05-28T10:32:13", "2021-05-28T10:32:13+00:00"),
    ("2021-05-28T10:32", "2021-05-28T10:32:00+00:00"),
])
def test_validation_clock_formats(text, iso):
    assert parse_clock(text).isoformat() == iso


def test_cli_on_the_shipped_cases():
    result = CliRunner().invoke(conformance, [str(DATA)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "468 passed, 0 failed"
    assert lines[0].split()[0] == "country" and len(lines[0].split()) == len(STEPS) + 1
    assert any(line.startswith("NL ") for line in lines)
    assert "Known upstream data faults" in result.output and "IS 3 KEYUSAGE" in result.output


def test_cli_on_another_folder_reports_disagreements(tmp_path):
    """Any folder of that layout works; a wrong expectation is reported with its reason."""
    for country in ("AE", "common"):
        shutil.copytree(DATA / country, tmp_path / "XX" / country)
    case = tmp_path / "XX" / "AE" / "2DCode" / "raw" / "vaccine.json"
    data = json.loads(case.read_text())
    data["EXPECTEDRESULTS"]["EXPECTEDVERIFY"] = not data["EXPECTEDRESULTS"]["EXPECTEDVERIFY"]
    case.write_text(json.dumps(data))
    (tmp_path / "XX" / "AE" / "broken.json").write_text("{not json")
    result = CliRunner().invoke(conformance, [str(tmp_path / "XX")])
    assert result.exit_code == 1
    assert re.search(r"AE vaccine VERIFY: expected (True|False), got (True|False) - ", result.output), result.output
    assert "unreadable" in result.output
    assert result.output.strip().splitlines()[-1] == f"{len(list((tmp_path / 'XX').rglob('*.json'))) - 2} passed, 2 failed"
    summary = json.loads(CliRunner().invoke(conformance, [str(tmp_path / "XX"), "--json"]).output)
    assert summary["failed"] == 2 and {d["step"] for d in summary["disagreements"]} == {"VERIFY", None}


def test_cli_on_a_single_country_folder():
    summary = json.loads(CliRunner().invoke(conformance, [str(DATA / "PT"), "--json"]).output)
    assert list(summary["table"]) == ["PT"] and summary["cases"] == 10 and summary["failed"] == 0
