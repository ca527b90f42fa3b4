"""Errors of the ministry tooling: one class per reason, each with a message a custodian can act on."""

from __future__ import annotations


class KeysError(Exception):
    """Base of every error the ministry tooling raises."""


class KeyFileError(KeysError):
    """A key or certificate file is missing, unreadable or not what it should be."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class KeyFileExists(KeyFileError):
    """Refusing to overwrite an existing key file."""

    def __init__(self, path: object) -> None:
        super().__init__(path, "already exists; refusing to overwrite a key file")


class WrongPassphrase(KeyFileError):
    """The passphrase does not decrypt the key file."""

    def __init__(self, path: object) -> None:
        super().__init__(path, "wrong passphrase (the key file could not be decrypted)")


class MissingPassphrase(KeysError):
    """No passphrase was given by option, environment or prompt."""

    def __init__(self, env_var: str) -> None:
        self.env_var = env_var
        super().__init__(f"a passphrase is needed: pass --passphrase, set {env_var}, or run interactively")


class InvalidPerson(KeysError):
    """A person record (JSON) lacks a field or has a malformed one."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"invalid person record: {problem}")


class InvalidCertificateRequest(KeysError):
    """Values for a DCC entry are out of range or unknown (dose numbers, product, dates)."""


class InvalidDscTypes(KeysError):
    """A DSC was asked for certificate types other than v, t and r."""

    def __init__(self, types: object) -> None:
        super().__init__(f"DSC types must be a non-empty selection of v, t, r; got {types!r}")


class UnsupportedAlgorithm(KeysError):
    """The key type cannot sign HC1 certificates (only ECDSA P-256 and RSA are supported)."""


class BundleVersionError(KeysError):
    """A trust bundle version does not increase over the last one published."""

    def __init__(self, version: int, last: int) -> None:
        self.version = version
        self.last = last
        super().__init__(f"bundle version {version} must be greater than the last published version {last}")


class MinistryDirError(KeysError):
    """The ministry directory is missing, incomplete or already initialised."""


class HC1DecodeError(KeysError):
    """An HC1 string given to the tooling (for revocation) cannot be decoded."""
