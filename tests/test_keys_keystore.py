"""Encrypted key files: created 0600 without a race, refuse wrong passphrases and loose permissions."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from keys import ca, keystore
from keys.errors import KeyFileError, KeyFileExists, KeysError, MissingPassphrase, WrongPassphrase


@pytest.fixture(scope="module")
def key() -> ca.PrivateKey:
    return ca.generate_key()


def _public(key: ca.PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_key_file_is_encrypted_0600_and_round_trips(tmp_path: Path, key: ca.PrivateKey) -> None:
    old = os.umask(0)  # even with a permissive umask the file must be owner-only
    try:
        path = keystore.write_private_key(tmp_path / "k.pem", key, "correct horse")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "ENCRYPTED PRIVATE KEY" in text and "BEGIN PRIVATE KEY" not in text
    with pytest.raises(TypeError):  # a passphrase is really needed to read it
        serialization.load_pem_private_key(path.read_bytes(), None)
    assert _public(keystore.read_private_key(path, "correct horse")) == _public(key)


def test_key_encryption_uses_many_pbkdf2_rounds_and_reads_with_openssl(tmp_path: Path, key: ca.PrivateKey) -> None:
    path = keystore.write_private_key(tmp_path / "k.pem", key, "pass phrase")
    der = base64.b64decode("".join(path.read_text().splitlines()[1:-1]))
    rounds = keystore.KDF_ITERATIONS.to_bytes(3, "big")
    assert keystore.KDF_ITERATIONS >= 600_000 and b"\x02\x03" + rounds in der
    if shutil.which("openssl"):
        shown = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", "pass:pass phrase", "-pubout"],
                               capture_output=True, timeout=30, check=True).stdout
        assert shown == key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def test_rsa_key_round_trips(tmp_path: Path) -> None:
    rsa_key = ca.generate_key("PS256")
    path = keystore.write_private_key(tmp_path / "rsa.pem", rsa_key, "pw")
    assert _public(keystore.read_private_key(path, "pw")) == _public(rsa_key)


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path, key: ca.PrivateKey) -> None:
    path = keystore.write_private_key(tmp_path / "k.pem", key, "right")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        keystore.read_private_key(path, "wrong")


def test_never_overwrites_and_refuses_empty_passphrase(tmp_path: Path, key: ca.PrivateKey) -> None:
    path = keystore.write_private_key(tmp_path / "k.pem", key, "pw")
    before = path.read_bytes()
    with pytest.raises(KeyFileExists, match="refusing to overwrite"):
        keystore.write_private_key(path, ca.generate_key(), "pw")
    assert path.read_bytes() == before
    with pytest.raises(KeysError, match="empty passphrase"):
        keystore.write_private_key(tmp_path / "other.pem", key, "")
    assert not (tmp_path / "other.pem").exists()


def test_does_not_follow_a_planted_symlink(tmp_path: Path, key: ca.PrivateKey) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "k.pem").symlink_to(victim)
    with pytest.raises(KeyFileError):
        keystore.write_private_key(tmp_path / "k.pem", key, "pw")
    assert victim.read_text() == "keep me"


def test_reading_refuses_loose_permissions_missing_and_plain_files(tmp_path: Path, key: ca.PrivateKey) -> None:
    path = keystore.write_private_key(tmp_path / "k.pem", key, "pw")
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="too open"):
        keystore.read_private_key(path, "pw")
    with pytest.raises(KeyFileError, match="no such key file"):
        keystore.read_private_key(tmp_path / "absent.pem", "pw")
    plain = tmp_path / "plain.pem"
    plain.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    plain.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an encrypted"):
        keystore.read_private_key(plain, "pw")


def test_passphrase_comes_from_option_then_env_then_prompt() -> None:
    env = {keystore.PASSPHRASE_ENV: "from-env"}
    assert keystore.resolve_passphrase("from-option", env=env, prompt=lambda: "from-prompt") == "from-option"
    assert keystore.resolve_passphrase(None, env=env, prompt=lambda: "from-prompt") == "from-env"
    assert keystore.resolve_passphrase(None, env={}, prompt=lambda: "from-prompt") == "from-prompt"
    with pytest.raises(MissingPassphrase, match=keystore.PASSPHRASE_ENV):
        keystore.resolve_passphrase(None, env={}, prompt=None)
    with pytest.raises(MissingPassphrase):
        keystore.resolve_passphrase("", env={keystore.PASSPHRASE_ENV: ""}, prompt=lambda: "")


def test_certificate_files(tmp_path: Path, key: ca.PrivateKey) -> None:
    cert = ca.make_csca(key)
    path = keystore.write_certificate(tmp_path / "c.pem", cert)
    assert keystore.read_certificate(path) == cert
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(KeyFileError, match="not a PEM certificate"):
        keystore.read_certificate(tmp_path / "junk.pem")
