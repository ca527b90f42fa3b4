"""The update channel end to end with a real TUF repository made by the ministry tooling.

keys.releases publishes; scanner.update.channel (python-tuf's ngclient) checks and downloads over
a real HTTP server. Each attack of the TUF threat model we claim to stop is played by changing
the files the server gives out, and must be refused with its own reason.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from keys.releases import ReleaseError, ReleaseRepo, build_release
from scanner.update.channel import UpdateChannel
from scanner.update.errors import (
    BadSignature,
    MetadataExpired,
    MetadataRollback,
    NotNewer,
    TargetMismatch,
)
from testbed.update_repo import StaticServer

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.UTC


@pytest.fixture
def repo(tmp_path):
    repo = ReleaseRepo.create(tmp_path / "repo", "test passphrase", kdf_iterations=1000)
    server = StaticServer(repo.path / "public")
    repo.server = server  # type: ignore[attr-defined]  # the fixture's server rides on the repo
    yield repo
    server.close()


def small_release(tmp_path: Path, version: str) -> Path:
    """A real release archive of the tree (only the small packages a unit needs to start its updater)."""
    return build_release(ROOT, version, tmp_path / f"build-{version}.tar.gz", packages=("scanner", "common"))


def channel(repo, unit_dir: Path) -> UpdateChannel:
    return UpdateChannel(unit_dir / "tuf", repo.pinned_root(), repo.server.metadata_url, repo.server.targets_url)


def test_good_update_is_found_downloaded_and_matches_the_signed_hash(repo, tmp_path):
    artifact = small_release(tmp_path, "1.1.0")
    target = repo.add_release(artifact, "1.1.0")
    unit = channel(repo, tmp_path / "unit")
    offer = unit.check("1.0.0")
    assert offer is not None and (offer.version, offer.target) == ("1.1.0", target)
    path = unit.download(offer, tmp_path / "unit" / "staging")
    assert path.read_bytes() == artifact.read_bytes()
    assert unit.check("1.1.0") is None  # already running it: nothing to do
    # The metadata is what the tooling says it is: four roles, consistent snapshots, our keys.
    root = json.loads(repo.pinned_root())["signed"]
    assert set(root["roles"]) == {"root", "targets", "snapshot", "timestamp"} and root["consistent_snapshot"]
    assert {k["keytype"] for k in root["keys"].values()} == {"ecdsa", "ed25519"}


def test_publishing_an_older_or_equal_version_is_refused(repo, tmp_path):
    repo.add_release(small_release(tmp_path, "1.2.0"), "1.2.0")
    with pytest.raises(ReleaseError, match="already published"):
        repo.add_release(small_release(tmp_path, "1.3.0"), "1.2.0")
    with pytest.raises(ReleaseError, match="not newer than 1.2.0 on channel stable"):
        repo.add_release(small_release(tmp_path, "1.3.0"), "1.1.9")
    with pytest.raises(ReleaseError, match="not newer"):
        repo.promote("1.2.0", "stable")
    with pytest.raises(ReleaseError, match="dotted numbers"):
        repo.add_release(small_release(tmp_path, "1.3.0"), "1.3.0-beta")


def test_role_keys_reopen_with_the_passphrase_and_match_the_root(repo, tmp_path):
    reopened = ReleaseRepo.open(repo.path, "test passphrase")
    reopened.add_release(small_release(tmp_path, "2.0.0"), "2.0.0")
    assert channel(repo, tmp_path / "unit").check("1.0.0").version == "2.0.0"
    from keys.errors import WrongPassphrase
    with pytest.raises(WrongPassphrase):
        ReleaseRepo.open(repo.path, "not it")


def test_downgrade_offered_by_the_channel_is_refused(repo, tmp_path):
    repo.add_release(small_release(tmp_path, "1.1.0"), "1.1.0")
    with pytest.raises(NotNewer) as err:
        channel(repo, tmp_path / "unit").check("1.2.0")
    assert err.value.code == "update_not_newer" and err.value.message_vi


def test_rollback_to_older_metadata_is_refused(repo, tmp_path):
    """The server replays the timestamp the unit saw before a newer one: refused."""
    repo.add_release(small_release(tmp_path, "1.1.0"), "1.1.0")
    old = repo.metadata_dir / "timestamp.json"
    saved = old.read_bytes()
    unit = channel(repo, tmp_path / "unit")
    unit.check("1.0.0")
    repo.add_release(small_release(tmp_path, "1.2.0"), "1.2.0")
    assert unit.check("1.0.0").version == "1.2.0"
    old.write_bytes(saved)  # a compromised mirror serves yesterday's files
    with pytest.raises(MetadataRollback) as err:
        unit.check("1.0.0")
    assert err.value.code == "update_rollback"


def test_freeze_with_an_expired_timestamp_is_refused(repo, tmp_path):
    """A mirror that stops updating: the last timestamp it serves expired an hour ago."""
    past = dt.datetime.now(UTC) - dt.timedelta(days=2)
    repo.add_release(small_release(tmp_path, "1.1.0"), "1.1.0", now=past,
                     expiry={"timestamp": dt.timedelta(days=1)})
    with pytest.raises(MetadataExpired) as err:
        channel(repo, tmp_path / "unit").check("1.0.0")
    assert err.value.code == "update_expired"
    repo.refresh_timestamp()  # the ministry's cron re-signs it: the channel works again
    assert channel(repo, tmp_path / "unit").check("1.0.0").version == "1.1.0"


def test_mix_and_match_of_metadata_versions_is_refused(repo, tmp_path):
    """A targets file from another publication, under the snapshot that names a different one."""
    repo.add_release(small_release(tmp_path, "1.1.0"), "1.1.0")
    v2 = repo.targets().version
    repo.add_release(small_release(tmp_path, "1.2.0"), "1.2.0")
    v3 = repo.targets().version
    # Serve the older (validly signed) targets under the name the current snapshot points at.
    shutil.copy(repo.metadata_dir / f"{v2}.targets.json", repo.metadata_dir / f"{v3}.targets.json")
    with pytest.raises(MetadataRollback):
        channel(repo, tmp_path / "unit").check("1.0.0")


def test_metadata_signed_by_a_key_outside_the_pinned_root_is_refused(repo, tmp_path):
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata

    repo.add_release(small_release(tmp_path, "1.1.0"), "1.1.0")
    path = repo.metadata_dir / "timestamp.json"
    forged = Metadata.from_file(str(path))
    forged.signed.version += 1
    forged.sign(CryptoSigner.generate_ed25519())  # not the timestamp key
    forged.to_file(str(path))
    with pytest.raises(BadSignature) as err:
        channel(repo, tmp_path / "unit").check("1.0.0")
    assert err.value.code == "update_signature"


@pytest.mark.parametrize("change", ["same length", "longer", "shorter"])
def test_release_whose_hash_or_length_differs_is_discarded(repo, tmp_path, change):
    artifact = small_release(tmp_path, "1.1.0")
    repo.add_release(artifact, "1.1.0")
    served = next((repo.targets_dir).glob("*.chot-unit-1.1.0.tar.gz"))
    data = bytearray(served.read_bytes())
    if change == "same length":
        data[len(data) // 2] ^= 0xFF
    elif change == "longer":
        data += b"\0" * 100
    else:
        del data[-100:]
    served.write_bytes(bytes(data))
    unit = channel(repo, tmp_path / "unit")
    offer = unit.check("1.0.0")
    assert offer is not None
    with pytest.raises(TargetMismatch) as err:
        unit.download(offer, tmp_path / "unit" / "staging")
    assert err.value.code == "update_target_mismatch"
    assert list((tmp_path / "unit" / "staging").iterdir()) == []  # nothing half-trusted left behind
