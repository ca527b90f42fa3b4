"""Key and certificate files: private keys PEM-encrypted with a passphrase, owner-only from birth."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from keys.ca import PrivateKey
from keys.errors import KeyFileError, KeyFileExists, KeysError, MissingPassphrase, WrongPassphrase

PASSPHRASE_ENV = "CHOT_KEY_PASSPHRASE"
# PBKDF2-HMAC-SHA256 rounds (OWASP 2023 advice); `cryptography`'s BestAvailableEncryption uses 2048.
KDF_ITERATIONS = 600_000
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def resolve_passphrase(given: str | None, *, env: Mapping[str, str] | None = None,
                       prompt: Callable[[], str] | None = None, env_var: str = PASSPHRASE_ENV) -> str:
    """The passphrase from the option, else the environment variable, else the prompt.

    :raises MissingPassphrase: when none of them yields a non-empty passphrase.
    """
    environ = os.environ if env is None else env
    for candidate in (given, environ.get(env_var)):
        if candidate:
            return candidate
    if prompt is not None:
        answer = prompt()
        if answer:
            return answer
    raise MissingPassphrase(env_var)


def write_private_key(path: str | os.PathLike[str], key: PrivateKey, passphrase: str) -> Path:
    """Write `key` as encrypted PKCS#8 PEM to a new file created with mode 0600.

    :raises KeyFileExists: rather than overwrite a key.
    """
    if not passphrase:
        raise KeysError("refusing to write a private key with an empty passphrase")
    target = Path(path)
    pem = encrypt_pkcs8(key, passphrase)
    try:
        # The mode is given at creation, so the key is never readable by others, not even briefly.
        fd = os.open(target, _NEW_FILE_FLAGS, 0o600)
    except FileExistsError:
        raise KeyFileExists(target) from None
    except OSError as err:
        raise KeyFileError(target, f"cannot create: {err.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return target


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _seq(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def encrypt_pkcs8(key: PrivateKey, passphrase: str, iterations: int = KDF_ITERATIONS) -> bytes:
    """PEM of an EncryptedPrivateKeyInfo (RFC 5958): PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC.

    Written by hand only to choose the PBKDF2 rounds; any PKCS#8 reader (OpenSSL, `cryptography`)
    decrypts it.
    """
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    aes_key = hashlib.pbkdf2_hmac("sha256", passphrase.encode("utf-8"), salt, iterations, dklen=32)
    padder = sym_padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    integer = iterations.to_bytes((iterations.bit_length() + 8) // 8, "big")  # + 8: keep it positive
    pbkdf2 = _seq(_oid("1.2.840.113549.1.5.12"),
                  _seq(_der(0x04, salt), _der(0x02, integer), _seq(_oid("1.2.840.113549.2.9"), b"\x05\x00")))
    aes = _seq(_oid("2.16.840.1.101.3.4.1.42"), _der(0x04, iv))
    info = _seq(_seq(_oid("1.2.840.113549.1.5.13"), _seq(pbkdf2, aes)), _der(0x04, encrypted))
    body = base64.encodebytes(info).decode("ascii").replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END ENCRYPTED PRIVATE KEY-----\n").encode("ascii")


def read_private_key(path: str | os.PathLike[str], passphrase: str) -> PrivateKey:
    """Load an encrypted ECDSA or RSA private key file (the ministry's certificate keys).

    :raises WrongPassphrase: when the passphrase does not decrypt it.
    :raises KeyFileError: when it is missing, readable by others, unencrypted or not such a key.
    """
    key = read_any_private_key(path, passphrase)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise KeyFileError(Path(path), "not an ECDSA or RSA private key")
    return key


def read_any_private_key(path: str | os.PathLike[str], passphrase: str) -> PrivateKeyTypes:
    """Load an encrypted private key file of any algorithm (TUF role keys are Ed25519).

    :raises WrongPassphrase: when the passphrase does not decrypt it.
    :raises KeyFileError: when it is missing, readable by others, unencrypted or not a key.
    """
    source = Path(path)
    try:
        mode = source.stat().st_mode
        data = source.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(source, "no such key file") from None
    except OSError as err:
        raise KeyFileError(source, f"cannot read: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(source, f"permissions {stat.S_IMODE(mode):04o} are too open; run chmod 600 on it")
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise KeyFileError(source, "not an encrypted PEM private key")
    try:
        key = serialization.load_pem_private_key(data, passphrase.encode("utf-8"))
    except ValueError:
        raise WrongPassphrase(source) from None
    except (TypeError, UnsupportedAlgorithm):
        raise KeyFileError(source, "not a usable private key") from None
    return key


def write_certificate(path: str | os.PathLike[str], cert: x509.Certificate) -> Path:
    """Write a certificate as PEM (public, so world-readable), replacing the file atomically."""
    target = Path(path)
    write_public_file(target, cert.public_bytes(serialization.Encoding.PEM))
    return target


def write_public_file(path: Path, data: bytes) -> None:
    """Write public data through a temporary file and a rename, so readers never see half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def read_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Load a PEM certificate file.

    :raises KeyFileError: when it is missing or not a PEM certificate.
    """
    source = Path(path)
    try:
        return x509.load_pem_x509_certificate(source.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(source, "no such certificate file") from None
    except ValueError:
        raise KeyFileError(source, "not a PEM certificate") from None
