"""The unit's trust bundle keeper: accept only newer, correctly signed bundles, cache them safely.

Bundles arrive on the retained MQTT trust topic, from a file, or from a USB stick. Each is
checked against the anchor pinned at provisioning. An accepted bundle is written to the cache
atomically before the unit switches to it (one reference swap, so no frame is judged without
a trust list), and the two newest good copies are kept so a damaged file never strands a unit.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from common.atomicfile import write_atomic
from verifier.bundle import BundleError, TrustBundle, parse_bundle
from verifier.trust import TrustStore

logger = logging.getLogger(__name__)

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
KEEP = 2
_CACHED = re.compile(r"^bundle-(\d{1,12})\.json$")


class TrustSyncError(Exception):
    """The keeper cannot work at all (e.g. the pinned anchor is unreadable)."""


@dataclass(frozen=True)
class OfferResult:
    """What became of an offered bundle; `reason` is readable by an operator."""

    accepted: bool
    reason: str


class TrustKeeper:
    """Holds the current trust bundle; `offer` new ones, `add_listener` to hear of switches."""

    def __init__(self, cache_dir: str | os.PathLike[str], anchor_pem: bytes) -> None:
        self.cache_dir = Path(cache_dir)
        try:
            self.anchor = load_pem_public_key(anchor_pem)
        except (ValueError, TypeError) as e:
            raise TrustSyncError(f"pinned trust anchor is not a PEM public key: {e}") from None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[TrustBundle], None]] = []
        # The bundle and its ready-built TrustStore, swapped as one reference: no gap, no mix.
        self._active: tuple[TrustBundle, TrustStore] | None = None
        self.problems: list[str] = []
        """What was wrong with the cache at start (empty when all was well)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._load_cache()

    # -- reading ----------------------------------------------------------------------------
    @property
    def current(self) -> TrustBundle | None:
        """The bundle in use, or None before the first one arrives."""
        active = self._active
        return None if active is None else active[0]

    @property
    def store(self) -> TrustStore | None:
        """The current bundle's TrustStore, built once when the bundle was accepted."""
        active = self._active
        return None if active is None else active[1]

    def age(self, now: datetime) -> timedelta | None:
        """How old the current bundle is (from its issue time), or None without a bundle."""
        bundle = self.current
        return None if bundle is None else now - bundle.issued_at

    def too_old(self, now: datetime, max_trust_age_hours: float | None) -> bool:
        """True when there is no bundle or it is older than the policy allows (None = no limit)."""
        age = self.age(now)
        if age is None:
            return True
        return max_trust_age_hours is not None and age > timedelta(hours=max_trust_age_hours)

    def add_listener(self, fn: Callable[[TrustBundle], None]) -> None:
        """Call `fn(bundle)` after every switch to a new bundle."""
        self._listeners.append(fn)

    # -- offering ---------------------------------------------------------------------------
    def offer(self, data: bytes, source: str) -> OfferResult:
        """Check a bundle and switch to it if it is correctly signed and newer than the current one."""
        if len(data) > MAX_BUNDLE_BYTES:
            return self._refuse(source, f"bundle is {len(data)} bytes, more than {MAX_BUNDLE_BYTES}")
        with self._lock:
            current = self.current
            if current is not None and bytes(data) == current.raw:
                return OfferResult(False, f"already in use (version {current.version})")
            min_version = None if current is None else current.version + 1
            try:
                bundle = parse_bundle(bytes(data), self.anchor, min_version=min_version)
            except BundleError as e:
                return self._refuse(source, str(e))
            try:
                self._store(bundle)
            except OSError as e:
                return self._refuse(source, f"could not be saved to {self.cache_dir}: {e}")
            self._active = (bundle, bundle.trust_store())
        logger.info("trust bundle version %d from %s is now in use", bundle.version, source)
        self._notify(bundle)
        return OfferResult(True, f"accepted version {bundle.version}")

    def load_file(self, path: str | os.PathLike[str]) -> OfferResult:
        """Offer a bundle from a file (provisioning, a USB stick)."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BUNDLE_BYTES + 1)
        except OSError as e:
            return self._refuse(f"file {path}", f"cannot read it: {e.strerror or e}")
        return self.offer(data, f"file {path}")

    # -- cache ------------------------------------------------------------------------------
    def _cached_files(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.cache_dir.iterdir():
            m = _CACHED.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found, reverse=True)

    def _load_cache(self) -> None:
        for version, path in self._cached_files():
            try:
                bundle = parse_bundle(path.read_bytes(), self.anchor)
                if bundle.version != version:
                    raise ValueError(f"holds version {bundle.version}, not {version}")
            except (BundleError, ValueError, OSError) as e:
                problem = f"cached trust bundle {path.name} is unusable: {e}"
                self.problems.append(problem)
                logger.error("%s; kept as %s.corrupt", problem, path.name)
                os.replace(path, path.with_name(path.name + ".corrupt"))
                continue
            self._active = (bundle, bundle.trust_store())
            logger.info("trust bundle version %d loaded from the cache", version)
            return
        if not self.problems:
            logger.warning("no cached trust bundle in %s: waiting for one", self.cache_dir)

    def _store(self, bundle: TrustBundle) -> None:
        write_atomic(self.cache_dir / f"bundle-{bundle.version}.json", bundle.raw)
        for _, old in self._cached_files()[KEEP:]:
            old.unlink(missing_ok=True)

    # -- helpers ----------------------------------------------------------------------------
    def _notify(self, bundle: TrustBundle) -> None:
        for fn in list(self._listeners):
            try:
                fn(bundle)
            except Exception:
                logger.exception("trust bundle listener %r failed", fn)

    @staticmethod
    def _refuse(source: str, reason: str) -> OfferResult:
        logger.warning("trust bundle from %s refused: %s", source, reason)
        return OfferResult(False, reason)
