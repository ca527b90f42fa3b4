"""The unit's health snapshot: the online payload of its retained status topic."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import __version__

logger = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
# Fields that change every second; a status is only "changed" when something else differs.
VOLATILE_FIELDS = ("ts", "uptime_s", "trust_age_s", "temperature_c", "fps")


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """CPU temperature in degrees Celsius from the kernel's thermal zone, or None if absent."""
    try:
        millidegrees = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return round(millidegrees / 1000.0, 1)


def collect(
    *,
    now: datetime,
    started_monotonic: float,
    trust_version: int | None = None,
    trust_issued_at: datetime | None = None,
    backlog: int = 0,
    clock: str = "ok",
    fps: float | None = None,
    software: str = __version__,
    thermal_path: Path = THERMAL_ZONE,
    pins: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the status dict (`state` online) as documented for `chot/v1/<cp>/<dev>/status`."""
    trust_age = None
    if trust_issued_at is not None:
        trust_age = max(0, int((now - trust_issued_at).total_seconds()))
    status: dict[str, Any] = {
        "state": "online",
        "software": software,
        "trust_version": trust_version,
        "trust_age_s": trust_age,
        "backlog": int(backlog),
        "clock": clock,
        "fps": None if fps is None else round(float(fps), 1),
        "temperature_c": cpu_temperature(thermal_path),
        "uptime_s": int(time.monotonic() - started_monotonic),
        "ts": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if pins is not None:  # wrong PINs and lock-outs at the officer desk (scanner.officers.OfficerDesk.pin_report)
        status["pins"] = pins
    return status


def stable_part(status: dict[str, Any]) -> dict[str, Any]:
    """The status without its ever-changing fields, to tell a real change from time passing."""
    return {k: v for k, v in status.items() if k not in VOLATILE_FIELDS}
