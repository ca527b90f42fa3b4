"""The unit's side of the update channel: python-tuf's ngclient against the ministry's repository.

The unit is provisioned with the repository's root metadata (`update.root_file`), handed to the
Updater as its bootstrap on every check; the metadata it has trusted since lives in
`<root>/tuf/` so an older timestamp, snapshot or targets is refused (rollback), an expired one is
refused (freeze), files of different versions do not combine (mix-and-match) and a release whose
length or hash differs from the signed one is discarded. Only then does the unit compare the
release's version with its own (no downgrade).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.update.errors import (
    BadRelease,
    BadSignature,
    MetadataExpired,
    MetadataRollback,
    NotNewer,
    TargetMismatch,
    UpdateError,
    UpdateRefused,
    UpdateUnavailable,
)
from scanner.update.layout import hold_point, version_key

if TYPE_CHECKING:
    from tuf.ngclient import Updater

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Offer:
    """A newer release the channel names, checked against the signed metadata."""

    version: str
    target: str
    length: int


def _translate(error: Exception) -> UpdateError:
    """python-tuf's exceptions -> our reasons (stable codes for the status topic)."""
    from tuf.api import exceptions as tuf_errors

    detail = f"{type(error).__name__}: {error}"
    if isinstance(error, tuf_errors.ExpiredMetadataError):
        return MetadataExpired(detail)
    if isinstance(error, tuf_errors.BadVersionNumberError):
        return MetadataRollback(detail)
    if isinstance(error, tuf_errors.UnsignedMetadataError):
        return BadSignature(detail)
    if isinstance(error, (tuf_errors.LengthOrHashMismatchError, tuf_errors.DownloadLengthMismatchError)):
        return TargetMismatch(detail)
    if isinstance(error, tuf_errors.RepositoryError):
        return UpdateRefused(detail)
    if isinstance(error, (tuf_errors.DownloadError, OSError)):
        return UpdateUnavailable(detail)
    return UpdateRefused(detail)


class UpdateChannel:
    """One check of a channel: refresh the metadata, read the channel pointer, fetch a release."""

    def __init__(self, tuf_dir: Path, pinned_root: bytes, metadata_url: str, targets_url: str,
                 channel: str = "stable") -> None:
        self.tuf_dir = tuf_dir
        self.pinned_root = pinned_root
        self.metadata_url = metadata_url
        self.targets_url = targets_url
        self.channel = channel

    def _updater(self) -> Updater:
        from tuf.ngclient import Updater

        (self.tuf_dir / "metadata").mkdir(parents=True, exist_ok=True)
        (self.tuf_dir / "cache").mkdir(parents=True, exist_ok=True)
        # The pinned root is the anchor every time; newer roots the repository rotated to are
        # followed from tuf/metadata/root_history by the Updater itself.
        return Updater(str(self.tuf_dir / "metadata"), self.metadata_url, str(self.tuf_dir / "cache"),
                       self.targets_url, bootstrap=self.pinned_root)

    def check(self, running: str | None) -> Offer | None:
        """The channel's release if it is newer than `running`; None if it is the same.

        :raises UpdateError: refused metadata, an unreachable server, or an older release (NotNewer).
        """
        try:
            updater = self._updater()
            updater.refresh()
            pointer_info = updater.get_targetinfo(f"channels/{self.channel}.json")
            if pointer_info is None:
                return None
            path = updater.find_cached_target(pointer_info) or updater.download_target(pointer_info)
            pointer = json.loads(Path(path).read_bytes())
            version, target = str(pointer["version"]), str(pointer["target"])
            info = updater.get_targetinfo(target)
        except UpdateError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise BadRelease(f"channel pointer unreadable: {e}") from None
        except Exception as e:  # noqa: BLE001 - python-tuf raises its own tree, urllib3's and OSError
            raise _translate(e) from None
        if info is None:
            raise UpdateRefused(f"channel {self.channel} names {target}, which the targets role does not list")
        if (info.custom or {}).get("version") != version:
            raise UpdateRefused(f"{target} is signed as version {(info.custom or {}).get('version')}, "
                                f"the channel says {version}")
        if running is not None and version_key(version) <= version_key(running):
            if version == running:
                return None
            raise NotNewer(f"channel {self.channel} offers {version}, the unit runs {running}")
        return Offer(version, target, info.length)

    def download(self, offer: Offer, staging: Path) -> Path:
        """Fetch the release into `staging` and verify its length and hashes against the signed targets."""
        staging.mkdir(parents=True, exist_ok=True)
        part = staging / f"{Path(offer.target).name}.part"
        try:
            updater = self._updater()
            info = updater.get_targetinfo(offer.target)
            if info is None:
                raise UpdateRefused(f"{offer.target} is no longer listed")
            updater.download_target(info, str(part))
        except UpdateError:
            part.unlink(missing_ok=True)
            raise
        except Exception as e:  # noqa: BLE001 - as in check(): every failure becomes a reason
            part.unlink(missing_ok=True)
            raise _translate(e) from None
        hold_point(staging.parent, "download")
        final = staging / Path(offer.target).name
        part.replace(final)
        return final
