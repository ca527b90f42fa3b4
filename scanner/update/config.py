"""[update]: where the unit's releases live, where it fetches new ones, and how a new one is judged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HOURS = re.compile(r"^([01]\d|2[0-3])-([01]\d|2[0-4])$")


@dataclass
class UpdateSection:
    """[update]; no section = this unit is updated by hand only."""

    root: Path
    """The release root: releases/<version>/, the `current` and `good` symlinks, the state file."""
    root_file: Path
    """The ministry's TUF root metadata pinned at provisioning (1.root.json of the repository)."""
    metadata_url: str
    """Base URL of the TUF metadata (e.g. https://central/updates/metadata/)."""
    targets_url: str
    """Base URL of the release files (e.g. https://central/updates/targets/)."""
    channel: str = "stable"
    """Which channel pointer to follow (the ministry may publish "canary" ahead of "stable")."""
    check_every_s: float = 3600.0
    """Seconds between checks of the channel; 0 = only when told (CLI or dashboard)."""
    hours: str = ""
    """Local hours in which the unit may switch releases, "HH-HH" (e.g. "22-05"); empty = any time."""
    idle_s: float = 3.0
    """No code seen, no verdict on screen and no decision pending for this long = between people."""
    gate_s: float = 60.0
    """Seconds a new release has after its start to pass the health gate, else it is switched back."""
    max_starts: int = 3
    """Starts a new release may need (crashes, watchdog kills) before the guard switches back."""
    selftest_file: Path | None = None
    """A known certificate (HC1 text) the new release must verify as `selftest_expect` to pass its gate."""
    selftest_expect: str = "green"
    """The verdict colour the self-test certificate must get."""

    def __post_init__(self) -> None:
        if not (self.metadata_url.startswith(("http://", "https://"))
                and self.targets_url.startswith(("http://", "https://"))):
            raise ValueError("metadata_url and targets_url must be http:// or https:// URLs")
        if self.hours and not _HOURS.match(self.hours):
            raise ValueError(f"hours must look like \"22-05\" (from-to, local hours), got {self.hours!r}")
        if not 1 <= self.gate_s <= 3600:
            raise ValueError(f"gate_s must be between 1 and 3600 seconds, got {self.gate_s}")
        if not 1 <= self.max_starts <= 20:
            raise ValueError(f"max_starts must be between 1 and 20, got {self.max_starts}")
        if self.selftest_expect not in ("green", "yellow", "red"):
            raise ValueError("selftest_expect must be green, yellow or red")

    def in_hours(self, hour: int) -> bool:
        """May the unit switch at this local hour?"""
        if not self.hours:
            return True
        start, end = (int(x) for x in self.hours.split("-"))
        return start <= hour < end if start <= end else (hour >= start or hour < end)

    def resolve(self, base: Path) -> None:
        """Make relative paths relative to the config file."""
        for name in ("root", "root_file", "selftest_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_absolute():
                setattr(self, name, base / value)
