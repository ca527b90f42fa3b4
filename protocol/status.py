"""A unit's retained status: `{state, software, trust_version, trust_age_s, backlog, clock, fps,
temperature_c, uptime_s, ts, broker, update, pins}` while online, `{"state": "offline"}` as its last will.

`update` (units with signed software updates): `{state, target, failed, failure}`, short strings
or null: the update phase, the release being installed, the last release that failed here and why.

`pins` (a unit with an officer desk): `{wrong_hour, wrong_total, lockouts, locked, officers}`,
wrong officer PINs and lock-outs, counts and roster staff ids only, never a PIN.
"""

from __future__ import annotations

import json
import re
from typing import Any

from protocol.fields import OFFICER_ID
from protocol.message import Rejected, json_object

FIELDS = frozenset({"state", "software", "trust_version", "trust_age_s", "backlog", "clock",
                    "fps", "temperature_c", "uptime_s", "ts", "broker", "update", "pins"})
UPDATE_FIELDS = frozenset({"state", "target", "failed", "failure"})
PIN_FIELDS = frozenset({"wrong_hour", "wrong_total", "lockouts", "locked", "officers"})
PIN_IDS_MAX = 10
STATES = ("online", "offline")
CLOCK_STATES = ("ok", "behind_bundle", "behind_last_seen")
OFFLINE = json.dumps({"state": "offline"}).encode()
_NODE = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,100}$")


def _number(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise Rejected("bad_field", f"status {name} must be a number")
    return kind(value)


def parse_status(payload: bytes | bytearray) -> dict[str, Any]:
    """A status payload (online health, or the offline last will) checked, as record fields."""
    data = json_object(payload, FIELDS)
    state = data.get("state")
    if state not in STATES:
        raise Rejected("bad_field", "status state must be online or offline")
    software = data.get("software")
    if software is not None and (not isinstance(software, str) or len(software) > 64):
        raise Rejected("bad_field", "status software must be a short string")
    node = data.get("broker")  # which node of a clustered broker the unit is on
    if node is not None and (not isinstance(node, str) or not _NODE.match(node)):
        raise Rejected("bad_field", "status broker must be a host:port")
    update = data.get("update")
    if update is not None and (not isinstance(update, dict) or set(update) - UPDATE_FIELDS or any(
            v is not None and (not isinstance(v, str) or len(v) > 64) for v in update.values())):
        raise Rejected("bad_field", "status update must hold short state, target, failed and failure strings")
    clock = data.get("clock")
    if clock is not None and clock not in CLOCK_STATES:
        raise Rejected("bad_field", f"status clock must be one of {', '.join(CLOCK_STATES)}")
    return dict(
        state=state, software=software, trust_version=_number(data, "trust_version", int),
        trust_age_s=_number(data, "trust_age_s", float), backlog=_number(data, "backlog", int),
        clock=clock, fps=_number(data, "fps", float), temperature_c=_number(data, "temperature_c", float),
        uptime_s=_number(data, "uptime_s", float), broker=node, **_pins(data.get("pins")),
    )


def _pins(value: Any) -> dict[str, Any]:
    """The status's `pins` (wrong PINs and lock-outs at the unit) as record fields: counts and
    staff ids only; anything else in it refuses the status."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not set(value) <= PIN_FIELDS:
        raise Rejected("bad_field", f"status pins must be an object of {', '.join(sorted(PIN_FIELDS))}")
    counts = {}
    for name in ("wrong_hour", "wrong_total", "lockouts"):
        n = _number(value, name, int)
        if n is not None and not 0 <= n <= 10**9:
            raise Rejected("bad_field", f"status pins.{name} must be a count")
        counts[name] = n
    locked = value.get("locked")
    if locked is not None and not isinstance(locked, bool):
        raise Rejected("bad_field", "status pins.locked must be true or false")
    ids = value.get("officers", [])
    if (not isinstance(ids, list) or len(ids) > PIN_IDS_MAX
            or not all(isinstance(i, str) and OFFICER_ID.match(i) for i in ids)):
        raise Rejected("bad_field", f"status pins.officers must list at most {PIN_IDS_MAX} staff ids")
    return {"pin_wrong_hour": counts["wrong_hour"], "pin_wrong_total": counts["wrong_total"],
            "pin_lockouts": counts["lockouts"], "pin_locked": locked, "pin_officers": ",".join(ids) if ids else None}
