"""A unit's retained status: `{state, software, trust_version, trust_age_s, backlog, clock, fps,
temperature_c, uptime_s, ts, broker}` while online, `{"state": "offline"}` as its last will."""

from __future__ import annotations

import json
import re
from typing import Any

from protocol.message import Rejected, json_object

FIELDS = frozenset({"state", "software", "trust_version", "trust_age_s", "backlog", "clock",
                    "fps", "temperature_c", "uptime_s", "ts", "broker"})
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


def parse_status(payload: bytes) -> dict[str, Any]:
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
    clock = data.get("clock")
    if clock is not None and clock not in CLOCK_STATES:
        raise Rejected("bad_field", f"status clock must be one of {', '.join(CLOCK_STATES)}")
    return dict(
        state=state, software=software, trust_version=_number(data, "trust_version", int),
        trust_age_s=_number(data, "trust_age_s", float), backlog=_number(data, "backlog", int),
        clock=clock, fps=_number(data, "fps", float), temperature_c=_number(data, "temperature_c", float),
        uptime_s=_number(data, "uptime_s", float), broker=node,
    )
