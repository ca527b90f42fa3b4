"""The ministry's software-update repository: TUF metadata (python-tuf) over releases of the unit.

A repository directory holds the role keys (encrypted PEM, one per role) and `public/`, the
static tree any HTTP server publishes:

    keys/root.pem  keys/targets.pem  keys/snapshot.pem  keys/timestamp.pem
    public/metadata/1.root.json  <n>.targets.json  <n>.snapshot.json  timestamp.json
    public/targets/<sha256>.chot-unit-<version>.tar.gz   (consistent snapshots: files never change)
    public/targets/channels/<sha256>.<channel>.json      {"version": ..., "target": ...}

Every change bumps targets, snapshot and timestamp together and writes them newest-last
(targets, then snapshot, then timestamp), so a unit reading mid-publish sees either the old
release or the new one. `refresh_timestamp` re-signs the timestamp alone: run it more often than
the timestamp's expiry or units treat the channel as frozen and refuse it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from common.atomicfile import write_atomic
from keys import keystore
from keys.errors import KeyFileError, KeysError

ROLES = ("root", "targets", "snapshot", "timestamp")
# Root is the offline anchor (a year); the timestamp is re-signed by cron (a day) so a frozen
# mirror is noticed within a day.
DEFAULT_EXPIRY: dict[str, dt.timedelta] = {
    "root": dt.timedelta(days=365), "targets": dt.timedelta(days=90),
    "snapshot": dt.timedelta(days=7), "timestamp": dt.timedelta(days=1)}
APP_PACKAGES = ("chot", "common", "keys", "protocol", "scanner", "verifier")
RELEASE_MANIFEST = "release.json"
_VERSION = re.compile(r"^\d{1,6}(\.\d{1,6}){1,3}$")
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_Bumped = TypeVar("_Bumped", Snapshot, Timestamp)


class ReleaseError(KeysError):
    """The release repository refuses an operation (bad version, channel or directory)."""


def parse_version(text: str) -> tuple[int, ...]:
    """'1.2.3' -> (1, 2, 3); dotted numbers only, so versions compare without surprises."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise ReleaseError(f"release version {text!r} must be dotted numbers such as 1.4.0")
    return tuple(int(p) for p in text.split("."))


def _utc(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)


def build_release(source: Path, version: str, out: Path, packages: Iterable[str] = APP_PACKAGES,
                  *, patch: Mapping[str, bytes] | None = None) -> Path:
    """Pack the unit's application tree as `out` (tar.gz): `release.json` + `app/<package>/...`.

    Reproducible (sorted names, fixed times, no caches). `patch` replaces or adds files by their
    path under app/ (how a test makes a deliberately broken release).
    """
    parse_version(version)
    files: dict[str, bytes] = {}
    for package in packages:
        root = source / package
        if not (root / "__init__.py").is_file():
            raise ReleaseError(f"{root}: not a Python package to release")
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                files[f"app/{path.relative_to(source).as_posix()}"] = path.read_bytes()
    for name, data in (patch or {}).items():
        files[f"app/{name}"] = data
    files[RELEASE_MANIFEST] = json.dumps({"version": version, "packages": list(packages)}).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return out


class ReleaseRepo:
    """An opened repository: its signers in memory, metadata read from `public/metadata`."""

    def __init__(self, path: Path, signers: Mapping[str, Signer]) -> None:
        self.path = path
        self.signers = dict(signers)

    @property
    def metadata_dir(self) -> Path:
        return self.path / "public" / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.path / "public" / "targets"

    # -- creating and opening ----------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, passphrase: str, *, now: dt.datetime | None = None,
               expiry: Mapping[str, dt.timedelta] | None = None,
               kdf_iterations: int = keystore.KDF_ITERATIONS) -> ReleaseRepo:
        """Make the four role keys (root ECDSA P-256, the online roles Ed25519) and version 1 of each role."""
        if (path / "public" / "metadata" / "1.root.json").exists():
            raise ReleaseError(f"{path}: a release repository is already there")
        if not passphrase:
            raise ReleaseError("refusing to write role keys with an empty passphrase")
        (path / "keys").mkdir(parents=True, exist_ok=True)
        signers: dict[str, Signer] = {}
        for role in ROLES:
            private: Any = ec.generate_private_key(ec.SECP256R1()) if role == "root" \
                else ed25519.Ed25519PrivateKey.generate()
            key_file = path / "keys" / f"{role}.pem"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(keystore.encrypt_pkcs8(private, passphrase, kdf_iterations))
            signers[role] = CryptoSigner(private)
        repo = cls(path, signers)
        now = _utc(now)
        expiry = {**DEFAULT_EXPIRY, **(expiry or {})}
        root = Root(expires=now + expiry["root"], consistent_snapshot=True)
        for role in ROLES:
            root.add_key(signers[role].public_key, role)
        repo.metadata_dir.mkdir(parents=True, exist_ok=True)
        repo.targets_dir.mkdir(parents=True, exist_ok=True)
        repo._write("1.root.json", repo._signed(root))
        repo._publish(Targets(expires=now + expiry["targets"]), now, expiry)
        return repo

    @classmethod
    def open(cls, path: Path, passphrase: str) -> ReleaseRepo:
        """Load the role keys; each must match the key root lists for its role."""
        root = cls(path, {}).root()
        signers: dict[str, Signer] = {}
        for role in ROLES:
            private = keystore.read_any_private_key(path / "keys" / f"{role}.pem", passphrase)
            signer = CryptoSigner(private)
            if signer.public_key.keyid not in root.roles[role].keyids:
                raise KeyFileError(path / "keys" / f"{role}.pem", f"is not the {role} key the root lists")
            signers[role] = signer
        return cls(path, signers)

    # -- reading -----------------------------------------------------------------------------
    def _latest(self, role: str) -> Metadata[Any]:
        if role == "timestamp":
            try:
                return Metadata.from_bytes((self.metadata_dir / "timestamp.json").read_bytes())
            except FileNotFoundError:
                raise ReleaseError(f"{self.metadata_dir}: no timestamp metadata") from None
        numbered = [p for p in self.metadata_dir.glob(f"*.{role}.json") if p.name.split(".")[0].isdigit()]
        if not numbered:
            raise ReleaseError(f"{self.metadata_dir}: no {role} metadata (not a release repository?)")
        return Metadata.from_bytes(max(numbered, key=lambda p: int(p.name.split(".")[0])).read_bytes())

    def root(self) -> Root:
        signed: Root = self._latest("root").signed
        return signed

    def targets(self) -> Targets:
        signed: Targets = self._latest("targets").signed
        return signed

    def pinned_root(self) -> bytes:
        """The root a unit is provisioned with (`update.root_file`)."""
        return (self.metadata_dir / "1.root.json").read_bytes()

    def channel(self, name: str = "stable") -> dict[str, Any] | None:
        """The channel's current release {version, target}, or None if none was published."""
        info = self.targets().targets.get(f"channels/{name}.json")
        if info is None:
            return None
        data: dict[str, Any] = json.loads(self._target_file(info).read_bytes())
        return data

    def releases(self) -> list[dict[str, Any]]:
        """Every release target: path, version, length, sha256."""
        return [{"target": path, "version": info.custom.get("version"), "length": info.length,
                 "sha256": info.hashes.get("sha256")}
                for path, info in sorted(self.targets().targets.items()) if not path.startswith("channels/")]

    # -- publishing --------------------------------------------------------------------------
    def add_release(self, artifact: Path, version: str, *, channel: str | None = "stable",
                    now: dt.datetime | None = None, expiry: Mapping[str, dt.timedelta] | None = None) -> str:
        """Publish `artifact` as `chot-unit-<version>.tar.gz` and point `channel` at it (None: no channel
        yet, for a staged rollout); returns its target path.

        :raises ReleaseError: the version is not newer than the channel's, or the channel name is bad.
        """
        parse_version(version)
        target_path = f"chot-unit-{version}.tar.gz"
        if target_path in self.targets().targets:
            raise ReleaseError(f"release {version} is already published (a release never changes; use a new version)")
        if channel is not None:
            self._check_channel_move(channel, version)
        now = _utc(now)
        expiry = {**DEFAULT_EXPIRY, **(expiry or {})}
        targets = self.targets()
        data = artifact.read_bytes()
        info = TargetFile.from_data(target_path, data, ["sha256"])
        info.unrecognized_fields["custom"] = {"version": version}
        targets.targets[target_path] = self._store_target(info, data)
        if channel is not None:
            self._point_channel(targets, channel, version)
        targets.version += 1
        targets.expires = now + expiry["targets"]
        self._publish(targets, now, expiry)
        return target_path

    def promote(self, version: str, channel: str, *, now: dt.datetime | None = None,
                expiry: Mapping[str, dt.timedelta] | None = None) -> None:
        """Point `channel` (a ring: canary, a province, stable) at an already published release.

        :raises ReleaseError: no such release, or it is not newer than the channel's.
        """
        targets = self.targets()
        if f"chot-unit-{version}.tar.gz" not in targets.targets:
            raise ReleaseError(f"release {version} is not published; publish it first")
        self._check_channel_move(channel, version)
        now = _utc(now)
        expiry = {**DEFAULT_EXPIRY, **(expiry or {})}
        self._point_channel(targets, channel, version)
        targets.version += 1
        targets.expires = now + expiry["targets"]
        self._publish(targets, now, expiry)

    def _check_channel_move(self, channel: str, version: str) -> None:
        if not _CHANNEL.match(channel):
            raise ReleaseError(f"channel {channel!r}: use lower-case letters, digits and '-'")
        current = self.channel(channel)
        if current is not None and parse_version(version) <= parse_version(current["version"]):
            raise ReleaseError(f"release {version} is not newer than {current['version']} on channel {channel}")

    def _point_channel(self, targets: Targets, channel: str, version: str) -> None:
        pointer = json.dumps({"version": version, "target": f"chot-unit-{version}.tar.gz"}, sort_keys=True).encode()
        info = TargetFile.from_data(f"channels/{channel}.json", pointer, ["sha256"])
        targets.targets[info.path] = self._store_target(info, pointer)

    def refresh_timestamp(self, *, now: dt.datetime | None = None,
                          expiry: dt.timedelta | None = None) -> int:
        """Re-sign the timestamp (same snapshot, next version, new expiry); returns its version."""
        now = _utc(now)
        timestamp: Timestamp = self._latest("timestamp").signed
        timestamp.version += 1
        timestamp.expires = now + (expiry or DEFAULT_EXPIRY["timestamp"])
        self._write("timestamp.json", self._signed(timestamp))
        return timestamp.version

    def _publish(self, targets: Targets, now: dt.datetime, expiry: Mapping[str, dt.timedelta]) -> None:
        """Write targets, then a snapshot naming it, then a timestamp naming that (readers never mix)."""
        targets_bytes = self._signed(targets)
        self._write(f"{targets.version}.targets.json", targets_bytes)
        snapshot = self._next_of("snapshot", Snapshot)
        snapshot.meta["targets.json"] = MetaFile(targets.version)
        snapshot.expires = now + expiry["snapshot"]
        snapshot_bytes = self._signed(snapshot)
        self._write(f"{snapshot.version}.snapshot.json", snapshot_bytes)
        timestamp = self._next_of("timestamp", Timestamp)
        # Length and hash of the snapshot too: a unit refuses any other file under that version.
        timestamp.snapshot_meta = MetaFile.from_data(snapshot.version, snapshot_bytes, ["sha256"])
        timestamp.expires = now + expiry["timestamp"]
        self._write("timestamp.json", self._signed(timestamp))

    def _next_of(self, role: str, blank: type[_Bumped]) -> _Bumped:
        """The latest `role` metadata with its version bumped; a new one (version 1) when there is none."""
        try:
            signed: _Bumped = self._latest(role).signed
        except ReleaseError:
            return blank()
        signed.version += 1
        return signed

    def _signed(self, signed: Any) -> bytes:
        metadata = Metadata(signed)
        metadata.sign(self.signers[signed.type])
        return metadata.to_bytes(JSONSerializer(compact=False))

    def _store_target(self, info: TargetFile, data: bytes) -> TargetFile:
        directory, _, name = info.path.rpartition("/")
        where = self.targets_dir / directory if directory else self.targets_dir
        where.mkdir(parents=True, exist_ok=True)
        write_atomic(where / f"{info.hashes['sha256']}.{name}", data, sync_dir=False)
        return info

    def _target_file(self, info: TargetFile) -> Path:
        directory, _, name = info.path.rpartition("/")
        return (self.targets_dir / directory) / f"{info.hashes['sha256']}.{name}"

    def _write(self, name: str, data: bytes) -> None:
        # A web server never serves half a file (the folder's fsync is left out, as before).
        write_atomic(self.metadata_dir / name, data, sync_dir=False)

