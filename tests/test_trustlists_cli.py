"""`chot verify --trust-list/--value-sets/--rules` and `chot keys bundle --trust-list`, end to end."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from chot.cli import main
from keys import ca
from verifier.bundle import parse_bundle
from verifier.policy import builtin_policy
from verifier.verify import verify

UTC = dt.UTC
ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "verifier/data/snapshots/covpass-2023-12-11"
DE_LIST, DE_KEY = SNAPSHOT / "dsc-list.json", SNAPSHOT / "dsc-list-signing-key.pem"
ES_VACCINATION = json.loads((ROOT / "tests/data/dcc/ES/2DCode/raw/203.json").read_text())["PREFIX"]
WHEN = "2022-01-15T10:00:00"
WHEN_AT = dt.datetime(2022, 1, 15, 10, tzinfo=UTC)


def _chot(*args: str):
    return CliRunner().invoke(main, list(args), env={"CHOT_KEY_PASSPHRASE": "hunter2"}, catch_exceptions=False)


def test_verify_a_real_certificate_with_the_real_list() -> None:
    result = _chot("verify", ES_VACCINATION, "--trust-list", str(DE_LIST), "--trust-list-key", str(DE_KEY),
                   "--now", WHEN + "Z", "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output.strip().splitlines()[-1])
    assert (verdict["result"], verdict["kid"], verdict["issuer"]) == ("green", "tCM87WnaaQE=", "ES")


def test_verify_refuses_a_list_signed_by_another_key(tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = _chot("verify", ES_VACCINATION, "--trust-list", str(DE_LIST), "--trust-list-key", str(other),
                   "--now", WHEN + "Z")
    assert result.exit_code == 3 and "trust_list_signature" in result.output
    no_key = _chot("verify", ES_VACCINATION, "--trust-list", str(DE_LIST), "--now", WHEN + "Z")
    assert no_key.exit_code == 3 and "--trust-list-key" in no_key.output


def test_verify_with_value_sets_and_a_countrys_rules() -> None:
    args = ["verify", ES_VACCINATION, "--trust-list", str(DE_LIST), "--trust-list-key", str(DE_KEY),
            "--now", "2022-05-01T10:00:00Z", "--value-sets", str(SNAPSHOT / "eu-value-sets.json"),
            "--rules", str(SNAPSHOT / "eu-rules.json")]
    assert _chot(*args).exit_code == 3  # --rules needs --country
    result = _chot(*args, "--country", "LT", "--json")
    verdict = json.loads(result.output.strip().splitlines()[-1])
    assert verdict["policy"] == "eu-rules-LT" and verdict["reason"].startswith("eu_")
    bad = _chot("verify", ES_VACCINATION, "--trust-list", str(DE_LIST), "--trust-list-key", str(DE_KEY),
                "--value-sets", str(SNAPSHOT / "eu-rules.json"), "--now", WHEN + "Z")
    assert bad.exit_code == 3


def _made_list(tmp_path: Path, when: str) -> tuple[Path, Path]:
    key = ca.generate_key()
    csca_key = ca.generate_key()
    csca = ca.make_csca(csca_key, country="FR", not_before=WHEN_AT - dt.timedelta(days=30))
    dsc = ca.make_dsc(csca, csca_key, ca.generate_key().public_key(), not_before=WHEN_AT - dt.timedelta(days=3))
    der = dsc.public_bytes(Encoding.DER)
    body = json.dumps({"certificates": [{"certificateType": "DSC", "country": "FR",
                                         "kid": base64.b64encode(hashlib.sha256(der).digest()[:8]).decode(),
                                         "rawData": base64.b64encode(der).decode(), "signature": "",
                                         "thumbprint": hashlib.sha256(der).hexdigest(), "timestamp": when}]}).encode()
    r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA256())))
    path, pem = tmp_path / f"list-{when[:10]}.json", tmp_path / f"key-{when[:10]}.pem"
    path.write_bytes(base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")) + b"\n" + body)
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, pem


@pytest.fixture
def ministry_dir(tmp_path: Path) -> Path:
    from keys.ministry import init_ministry

    root = tmp_path / "ministry"
    init_ministry(root, "hunter2", now=WHEN_AT - dt.timedelta(days=1))
    return root


def test_the_ministry_re_signs_what_it_accepted_and_refuses_a_rollback(ministry_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    done = _chot("keys", "bundle", "--ministry", str(ministry_dir), "--version", "1", "--out", str(out),
                 "--now", WHEN, "--trust-list", str(DE_LIST), "--trust-list-key", str(DE_KEY),
                 "--value-sets", str(SNAPSHOT / "eu-value-sets.json"))
    assert done.exit_code == 0, done.output
    assert "de-dsc-list of 2023-11-28: 829 signers taken" in done.output and "  VN: 1 taken" in done.output
    bundle = parse_bundle(out.read_bytes(), (ministry_dir / "anchor.pem").read_bytes())
    store = bundle.trust_store()
    assert len(store) >= 829 and len(store.value_sets["test-manf"]) == 299
    # the unit trusts only the ministry key, and verifies the real Spanish certificate with it
    assert verify(ES_VACCINATION, store, WHEN_AT, builtin_policy("vn-2021")).result == "green"
    # the same list again is fine; an older list of the same format is a rollback, refused whole
    again = _chot("keys", "bundle", "--ministry", str(ministry_dir), "--version", "2", "--out", str(out),
                  "--now", WHEN, "--trust-list", str(DE_LIST), "--trust-list-key", str(DE_KEY))
    assert again.exit_code == 0, again.output
    older, key = _made_list(tmp_path, "2022-01-10T00:00:00+00:00")
    refused = _chot("keys", "bundle", "--ministry", str(ministry_dir), "--version", "3", "--out",
                    str(tmp_path / "b3.json"), "--now", WHEN, "--trust-list", str(older), "--trust-list-key", str(key))
    assert refused.exit_code != 0 and "trust_list_rollback" in refused.output
    assert not (tmp_path / "b3.json").exists()
    wrong = _chot("keys", "bundle", "--ministry", str(ministry_dir), "--version", "3", "--out",
                  str(tmp_path / "b3.json"), "--now", WHEN, "--trust-list", str(DE_LIST), "--trust-list-key", str(key))
    assert wrong.exit_code != 0 and "trust_list_signature" in wrong.output
