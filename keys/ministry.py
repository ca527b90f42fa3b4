"""A ministry directory on disk: CSCA, DSCs, the trust-list key, the anchor, bundle and revocation state.

Layout (private keys encrypted with one passphrase, mode 0600; the directory itself 0700):
    csca.key.pem  csca.cert.pem  trust-list.key.pem  anchor.pem
    dsc/<name>.key.pem  dsc/<name>.cert.pem
    bundles.json  (versions published so far)  revocations.json  (revoked hashes, no identifiers)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from keys import ca, keystore
from keys.errors import KeysError, MinistryDirError

logger = logging.getLogger(__name__)

SPLIT_DSCS = {"vaccination": ("v",), "test": ("t",), "recovery": ("r",)}
SINGLE_DSC = {"general": ca.ALL_TYPES}
_DSC_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Signer:
    """A document signer ready to issue: its name, key and certificate."""

    name: str
    key: ca.PrivateKey
    certificate: x509.Certificate

    @property
    def kid(self) -> bytes:
        """The DCC key identifier of this DSC."""
        return ca.kid_of(self.certificate)

    @property
    def types(self) -> list[str]:
        """The certificate types this DSC may sign."""
        return ca.dsc_types(self.certificate)


class MinistryDir:
    """Paths and operations on one ministry directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.csca_key = self.root / "csca.key.pem"
        self.csca_cert = self.root / "csca.cert.pem"
        self.trust_list_key = self.root / "trust-list.key.pem"
        self.anchor = self.root / "anchor.pem"
        self.dsc_dir = self.root / "dsc"
        self.bundles = self.root / "bundles.json"
        self.revocations = self.root / "revocations.json"

    def require(self) -> None:
        """Check the directory was initialised.

        :raises MinistryDirError: naming what is missing.
        """
        for path in (self.csca_cert, self.csca_key, self.trust_list_key):
            if not path.exists():
                raise MinistryDirError(f"{self.root} is not an initialised ministry directory "
                                       f"({path.name} is missing; run `chot keys init-ministry {self.root}`)")

    def dsc_key(self, name: str) -> Path:
        """Path of a DSC's private key."""
        return self.dsc_dir / f"{name}.key.pem"

    def dsc_cert(self, name: str) -> Path:
        """Path of a DSC's certificate."""
        return self.dsc_dir / f"{name}.cert.pem"

    def dsc_names(self) -> list[str]:
        """Names of the DSCs in this directory, sorted."""
        if not self.dsc_dir.is_dir():
            return []
        return sorted(p.name[: -len(".cert.pem")] for p in self.dsc_dir.glob("*.cert.pem"))

    def dsc_certificates(self) -> list[x509.Certificate]:
        """Every DSC certificate in this directory (for the trust bundle)."""
        return [keystore.read_certificate(self.dsc_cert(name)) for name in self.dsc_names()]

    def signer(self, passphrase: str, kind: str, name: str | None = None,
               now: dt.datetime | None = None) -> Signer:
        """Load a DSC that may sign `kind` (v/t/r) and is valid at `now`: the named one or the first that fits.

        :raises MinistryDirError: when no DSC fits.
        """
        self.require()
        if name:
            _check_dsc_name(name)
            if not self.dsc_cert(name).exists():
                raise MinistryDirError(f"no DSC named {name!r} (have: {', '.join(self.dsc_names()) or 'none'})")
        moment = now or dt.datetime.now(dt.timezone.utc)
        names = [name] if name else self.dsc_names()
        for candidate in names:
            cert = keystore.read_certificate(self.dsc_cert(candidate))
            fits = kind in ca.dsc_types(cert)
            current = cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc
            if fits and current:
                return Signer(candidate, keystore.read_private_key(self.dsc_key(candidate), passphrase), cert)
            if name:
                why = "is not allowed to sign this type" if not fits else "is not valid now"
                raise MinistryDirError(f"DSC {name!r} {why}")
        raise MinistryDirError(f"no valid DSC in {self.dsc_dir} may sign certificates of type {kind!r}; "
                               f"add one with `chot keys add-dsc`")

    def trust_list_signing_key(self, passphrase: str) -> ec.EllipticCurvePrivateKey:
        """Load the key that signs trust bundles (always P-256: units check ES256 only)."""
        self.require()
        key = keystore.read_private_key(self.trust_list_key, passphrase)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise MinistryDirError(f"{self.trust_list_key} is not an elliptic-curve key")
        return key

    def read_state(self, path: Path, default: dict[str, Any]) -> dict[str, Any]:
        """Read one of the JSON state files, or `default` when it does not exist yet."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as err:
            raise MinistryDirError(f"{path} is unreadable: {err}") from None
        if not isinstance(data, dict):
            raise MinistryDirError(f"{path} does not hold a JSON object")
        return data

    def write_state(self, path: Path, data: dict[str, Any]) -> None:
        """Write a JSON state file atomically."""
        keystore.write_public_file(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _check_dsc_name(name: str) -> None:
    if not name or not set(name) <= _DSC_NAME_CHARS:
        raise KeysError(f"DSC name {name!r} must use only a-z, 0-9, '-' and '_'")


def add_dsc(ministry: MinistryDir, passphrase: str, name: str, types: tuple[str, ...] | list[str], *,
            alg: str = "ES256", days: int = 730, now: dt.datetime | None = None) -> Signer:
    """Make a new DSC under the ministry's CSCA, write its encrypted key and certificate."""
    _check_dsc_name(name)
    ministry.require()
    if ministry.dsc_cert(name).exists() or ministry.dsc_key(name).exists():
        raise MinistryDirError(f"a DSC named {name!r} already exists in {ministry.dsc_dir}")
    csca_key = keystore.read_private_key(ministry.csca_key, passphrase)
    csca_cert = keystore.read_certificate(ministry.csca_cert)
    key = ca.generate_key(alg)
    cert = ca.make_dsc(csca_cert, csca_key, key.public_key(), types=types, common_name=f"DSC {name}",
                       not_before=now, days=days)
    ministry.dsc_dir.mkdir(mode=0o700, exist_ok=True)
    keystore.write_private_key(ministry.dsc_key(name), key, passphrase)
    keystore.write_certificate(ministry.dsc_cert(name), cert)
    signer = Signer(name, key, cert)
    logger.info("added DSC %s kid=%s types=%s", name, signer.kid.hex(), "".join(signer.types))
    return signer


def init_ministry(root: str | os.PathLike[str], passphrase: str, *, alg: str = "ES256", split: bool = True,
                  country: str = ca.COUNTRY, now: dt.datetime | None = None) -> MinistryDir:
    """Create a ministry: CSCA, DSCs (one per type, or one general), trust-list key and anchor.

    :raises MinistryDirError: when the directory already holds a ministry.
    """
    ministry = MinistryDir(root)
    if ministry.csca_key.exists() or ministry.csca_cert.exists():
        raise MinistryDirError(f"{ministry.root} already holds a ministry; refusing to overwrite it")
    try:
        ministry.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise MinistryDirError(f"cannot create {ministry.root}: {err.strerror}") from None
    csca_key = ca.generate_key(alg)
    csca_cert = ca.make_csca(csca_key, country=country, common_name=f"CSCA {country}", not_before=now)
    keystore.write_private_key(ministry.csca_key, csca_key, passphrase)
    keystore.write_certificate(ministry.csca_cert, csca_cert)
    trust_key = ca.generate_trust_list_key()
    keystore.write_private_key(ministry.trust_list_key, trust_key, passphrase)
    keystore.write_public_file(ministry.anchor, ca.anchor_pem(trust_key))
    for name, types in (SPLIT_DSCS if split else SINGLE_DSC).items():
        add_dsc(ministry, passphrase, name, types, alg=alg, now=now)
    logger.info("initialised ministry in %s (anchor signer id %s)", ministry.root,
                ca.signer_id(trust_key.public_key()).hex())
    return ministry
