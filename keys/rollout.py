"""Staged rollout: a release goes ring by ring (canary, a province, everyone), stopping at the first failure.

A ring is a TUF channel plus the units that follow it (`[update] channel` in their config).
Promoting a ring re-signs the channel pointer with the targets key (`ReleaseRepo.promote`), so the
"instruction" a unit acts on is itself TUF-signed. The units' retained status topics
(`chot/v1/<checkpoint>/<device>/status`: `software` and `update`) say how each one fared; a
ring whose units report the release as failed (rolled back, refused) stops the rollout with an
alarm before the next ring is promoted. Units switch only inside their own update hours.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keys.releases import ReleaseError, ReleaseRepo

logger = logging.getLogger(__name__)
STATUS_TOPIC = "chot/v1/+/+/status"


@dataclass(frozen=True)
class Ring:
    """A channel and its units ("checkpoint/device")."""

    channel: str
    units: tuple[str, ...]


@dataclass
class RingReport:
    """Where each unit of a ring stands with one release."""

    channel: str
    version: str
    updated: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """unit -> failure code (update_gate_failed, update_refused, ...)."""

    @property
    def done(self) -> bool:
        return not self.waiting and not self.failed


class RolloutStopped(ReleaseError):
    """The rollout stopped before the next ring: units failed the release, or did not take it in time."""

    def __init__(self, report: RingReport, why: str) -> None:
        self.report = report
        failed = ", ".join(f"{u} ({c})" for u, c in sorted(report.failed.items()))
        super().__init__(f"ALARM: rollout of {report.version} stopped at ring {report.channel}: {why}"
                         + (f"; failed: {failed}" if failed else "")
                         + (f"; still waiting: {', '.join(report.waiting)}" if report.waiting else ""))


def judge_ring(ring: Ring, version: str, statuses: dict[str, dict[str, Any]]) -> RingReport:
    """Sort a ring's units by their latest status: updated, still waiting, or failed with this release."""
    report = RingReport(ring.channel, version)
    for unit in ring.units:
        status = statuses.get(unit) or {}
        update = status.get("update") or {}
        if update.get("failed") == version and status.get("software") != version:
            report.failed[unit] = str(update.get("failure") or "update_failed")
        elif status.get("software") == version and update.get("state") in ("idle", None):
            report.updated.append(unit)
        else:
            report.waiting.append(unit)
    return report


def run_rollout(repo: ReleaseRepo, version: str, rings: Sequence[Ring],
                statuses: Callable[[], dict[str, dict[str, Any]]], *, ring_timeout_s: float = 3600.0,
                poll_s: float = 5.0, on_report: Callable[[RingReport], None] | None = None) -> list[RingReport]:
    """Promote each ring in turn and wait for all its units; raise RolloutStopped at the first failure."""
    reports: list[RingReport] = []
    for ring in rings:
        pointer = repo.channel(ring.channel)
        if pointer is None or pointer["version"] != version:
            repo.promote(version, ring.channel)
            logger.info("rollout %s: ring %s promoted (%d units)", version, ring.channel, len(ring.units))
        deadline = time.monotonic() + ring_timeout_s
        while True:
            report = judge_ring(ring, version, statuses())
            if on_report is not None:
                on_report(report)
            if report.failed:
                logger.error("rollout %s stopped at ring %s: %s", version, ring.channel, report.failed)
                raise RolloutStopped(report, "units rolled back or refused the release")
            if report.done:
                break
            if time.monotonic() >= deadline:
                raise RolloutStopped(report, f"not every unit took the release within {ring_timeout_s:g} s")
            time.sleep(poll_s)
        reports.append(report)
    return reports


class MqttStatuses:
    """The latest retained status of every unit, kept from a subscription to chot/v1/+/+/status."""

    def __init__(self, host: str, port: int, *, username: str | None = None, password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
        if username:
            self._client.username_pw_set(username, password)
        self._client.on_connect = lambda c, _u, _f, rc, _p: c.subscribe(STATUS_TOPIC, qos=1)
        self._client.on_message = self._on_message
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        parts = message.topic.split("/")
        try:
            data = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(data, dict):
            with self._lock:
                self._latest[f"{parts[2]}/{parts[3]}"] = data

    def __call__(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._latest)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
