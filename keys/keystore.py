"""Key and certificate files: private keys PEM-encrypted with a passphrase, owner-only from birth."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from keys.ca import PrivateKey
from keys.errors import KeyFileError, KeyFileExists, KeysError, MissingPassphrase, WrongPassphrase

PASSPHRASE_ENV = "CHOT_KEY_PASSPHRASE"
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
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase.encode("utf-8")))
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


def read_private_key(path: str | os.PathLike[str], passphrase: str) -> PrivateKey:
    """Load an encrypted private key file.

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
    return key  # type: ignore[return-value]


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
