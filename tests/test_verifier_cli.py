"""`chot verify`: payload, stdin or QR image in; verdict out; exit code 0/1/2/3 for green/yellow/red/error."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from chot.cli import main
from keys import qr

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
NOW_TEXT = "2021-10-01T08:00:00Z"


@pytest.fixture(scope="module")
def files(ministry, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    bundle = folder / "bundle.json"
    bundle.write_bytes(ministry.bundle(version=2))
    anchor = folder / "anchor.pem"
    anchor.write_bytes(ministry.anchor_pem)
    dsc = folder / "dsc.der"
    dsc.write_bytes(ministry.general.certificate.public_bytes(Encoding.DER))
    dsc_pem = folder / "dsc.pem"
    dsc_pem.write_bytes(ministry.general.certificate.public_bytes(Encoding.PEM))
    return {"bundle": bundle, "anchor": anchor, "dsc": dsc, "dsc_pem": dsc_pem, "dir": folder}


@pytest.fixture(scope="module")
def certificates(ministry):
    day = dt.timedelta(days=1)
    return {
        "green": ministry.issue_vaccination(doses=[(2, 2, (NOW - 30 * day).date(), "pfizer")], now=NOW),
        "yellow": ministry.issue_vaccination(doses=[(1, 2, (NOW - 30 * day).date(), "astrazeneca")], now=NOW),
        "red": ministry.issue_vaccination(doses=[(2, 2, (NOW - 30 * day).date(), "pfizer")], now=NOW,
                                          signer=ministry.rogue, kid=ministry.general.kid),
    }


def run(*args, stdin=None):
    return CliRunner().invoke(main, ["verify", *args], input=stdin)


@pytest.mark.parametrize("colour, code", [("green", 0), ("yellow", 1), ("red", 2)])
def test_exit_code_says_the_colour(files, certificates, colour, code):
    result = run(certificates[colour].hc1, "--bundle", str(files["bundle"]), "--anchor", str(files["anchor"]),
                 "--now", NOW_TEXT)
    assert result.exit_code == code, result.output
    assert result.output.startswith(colour.upper())


def test_json_output_and_dsc_option(files, certificates):
    result = run(certificates["green"].hc1, "--dsc", str(files["dsc"]), "--now", NOW_TEXT, "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["result"] == "green" and verdict["reason"] == "complete_series"
    assert verdict["holder"]["family_name"] == certificates["green"].person.family_name
    assert verdict["cert_type"] == "v" and verdict["detail"]["dn"] == 2


def test_payload_from_stdin_and_from_a_text_file(files, certificates):
    result = run("--dsc", str(files["dsc_pem"]), "--now", NOW_TEXT, stdin=certificates["yellow"].hc1 + "\n")
    assert result.exit_code == 1, result.output
    text_file = files["dir"] / "payload.txt"
    text_file.write_text(certificates["green"].hc1)
    assert run(str(text_file), "--dsc", str(files["dsc"]), "--now", NOW_TEXT).exit_code == 0


def test_payload_from_a_qr_image(files, certificates):
    image = qr.write_png(certificates["green"].hc1, files["dir"] / "green.png")
    result = run(str(image), "--bundle", str(files["bundle"]), "--anchor", str(files["anchor"]), "--now", NOW_TEXT)
    assert result.exit_code == 0, result.output
    assert "GREEN" in result.output and certificates["green"].person.dob in result.output


def test_policy_option(files, certificates):
    args = ["--dsc", str(files["dsc"]), "--now", NOW_TEXT]
    assert run(certificates["yellow"].hc1, *args, "--policy", "workplace").exit_code == 2
    assert run(certificates["yellow"].hc1, *args, "--policy", "eu-validity").exit_code == 0


@pytest.mark.parametrize("args, words", [
    ([], "give the trust list"),
    (["--bundle", "BUNDLE"], "--anchor"),
    (["--dsc", "DSC", "--now", "yesterday"], "ISO 8601"),
    (["--dsc", "DSC", "--policy", "no-such-policy"], "policy"),
    (["--dsc", "DSC", "--skew", "-5"], "skew"),
    (["--dsc", "/no/such/file"], "does not exist"),
])
def test_errors_exit_3_with_a_reason(files, certificates, args, words):
    args = [str(files["bundle"]) if a == "BUNDLE" else str(files["dsc"]) if a == "DSC" else a for a in args]
    result = run(certificates["green"].hc1, *args)
    assert result.exit_code == 3, result.output
    assert words in result.output


def test_wrong_anchor_is_an_error(files, certificates, tmp_path):
    from keys import ca

    other = tmp_path / "other.pem"
    other.write_bytes(ca.anchor_pem(ca.generate_trust_list_key()))
    result = run(certificates["green"].hc1, "--bundle", str(files["bundle"]), "--anchor", str(other))
    assert result.exit_code == 3 and "trust bundle refused" in result.output


def test_garbage_payload_is_red_not_an_error(files):
    result = run("hello", "--dsc", str(files["dsc"]))
    assert result.exit_code == 2 and "prefix" in result.output
