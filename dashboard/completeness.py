"""How complete a count is: which units in scope may still hold verdicts for a period.

A unit delivers its verdicts from its own outbox, so the central can only know a count is whole
when every unit in scope has said (online, outbox empty) that it has nothing left to send.
From the registry (`Device.state`, `backlog`, `last_seen`, `status_at`, `complete_at`) this
module tells, for a period [since, until), up to when the count is complete, for how many
units, and which units still owe verdicts (offline since when, with how many waiting).
A period is final only once it has ended and no unit can still hold verdicts from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dashboard.store import Device


@dataclass(frozen=True)
class UnitLag:
    """A unit that may still hold verdicts of the period."""

    device: str
    checkpoint: str
    state: str  # "offline" | "sending" (online, outbox not empty) | "never_seen" | "quiet"
    since: datetime | None  # its last contact with the central
    delivered_to: datetime | None  # its verdicts are all here up to this time (None: not known)
    pending: int | None  # verdicts waiting in its outbox at its last status (None: never said)


@dataclass(frozen=True)
class Completeness:
    """The completeness of one count: `units` in scope, `complete_units` with nothing owed."""

    since: datetime
    until: datetime
    at: datetime  # when this was assessed
    units: int
    complete_units: int
    complete_to: datetime  # the complete units' verdicts are here up to this time (the period's end or now)
    all_complete_to: datetime  # every unit's verdicts, lagging ones included, are here up to this time
    final: bool
    lagging: tuple[UnitLag, ...]
    in_flight: int = 0  # units counted complete whose latest verdicts are on their way (see `assess`)

    @property
    def pending(self) -> int:
        """Verdicts known to wait in the lagging units' outboxes."""
        return sum(u.pending or 0 for u in self.lagging)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def assess(devices: Iterable[Device], since: datetime, until: datetime, now: datetime,
           fresh_s: float = 300.0, interval_s: float = 60.0) -> Completeness:
    """Completeness of counts over [since, until) for `devices`, as known at `now`.

    A unit is caught up when its latest status says online with an empty outbox and it was heard
    from within `fresh_s` (a unit that died without its will reaching the broker is not); its
    verdicts are then here up to `now`. A unit online and heard from within `fresh_s` whose
    outbox was last empty no longer than `interval_s` (its reporting interval) ago is *in
    flight*: a verdict or two on their way is normal running, not a lag, so it counts as complete
    (its verdicts are here up to that last empty outbox, which bounds `complete_to`). Any other
    unit's verdicts are here only up to the last time it said its outbox was empty
    (`complete_at`) and it is named as lagging.
    """
    end = min(until, now)
    lagging: list[UnitLag] = []
    units = 0
    in_flight = 0
    complete_to = end
    all_complete_to = end
    for d in devices:
        if until <= d.created_at <= now:
            continue  # registered after the period: it cannot hold verdicts of it
        units += 1
        contact = max((t for t in (d.last_seen, d.status_at) if t is not None), default=None)
        fresh = contact is not None and (now - contact).total_seconds() <= fresh_s
        caught_up = d.state == "online" and d.backlog == 0 and fresh
        delivered_to = now if caught_up else d.complete_at
        if delivered_to is not None and delivered_to >= end:
            continue
        if (d.state == "online" and fresh and delivered_to is not None
                and (now - delivered_to).total_seconds() <= interval_s):
            in_flight += 1
            complete_to = min(complete_to, max(delivered_to, since))
            all_complete_to = min(all_complete_to, max(delivered_to, since))
            continue
        # Without a report of an empty outbox nothing of the period is known to be all here.
        all_complete_to = min(all_complete_to, max(delivered_to or since, since))
        if contact is None:
            state = "never_seen"
        elif d.state == "offline":
            state = "offline"
        elif d.state == "online" and fresh:
            state = "sending"
        else:
            state = "quiet"
        lagging.append(UnitLag(d.id, d.checkpoint, state, contact, delivered_to, d.backlog))
    final = until <= now and not lagging and not in_flight
    return Completeness(since, until, now, units, units - len(lagging), complete_to, all_complete_to, final,
                        tuple(lagging), in_flight)


def as_dict(c: Completeness) -> dict[str, Any]:
    """JSON-ready form (UTC ISO times) for the API and exports."""
    return {
        "final": c.final,
        "complete_to": _iso(c.complete_to),
        "all_units_complete_to": _iso(c.all_complete_to),
        "units": c.units,
        "complete_units": c.complete_units,
        "pending": c.pending,
        "in_flight": c.in_flight,
        "assessed_at": _iso(c.at),
        "lagging": [
            {"device": u.device, "checkpoint": u.checkpoint, "state": u.state, "since": _iso(u.since),
             "delivered_to": _iso(u.delivered_to), "pending": u.pending}
            for u in c.lagging
        ],
    }
