"""MQTT topic names, all under one prefix (`chot/v1`).

A unit publishes `<prefix>/<checkpoint>/<device>/event` and `.../status` (retained) and reads
`.../ack`; the central publishes the trust bundle retained on `<prefix>/trust` and each
checkpoint's roster retained on `<prefix>/<checkpoint>/roster`. The unit's `mqtt.topic_prefix`
defaults to PREFIX, the only prefix the central serves.
"""

from __future__ import annotations

import re

PREFIX = "chot/v1"
EVENT, STATUS, ACK = "event", "status", "ack"


def unit(checkpoint: str, device: str, prefix: str = PREFIX) -> str:
    """The root of one unit's topics."""
    return f"{prefix}/{checkpoint}/{device}"


def event(checkpoint: str, device: str, prefix: str = PREFIX) -> str:
    """Where a unit publishes its events."""
    return f"{unit(checkpoint, device, prefix)}/{EVENT}"


def status(checkpoint: str, device: str, prefix: str = PREFIX) -> str:
    """Where a unit keeps its retained status (and its last will)."""
    return f"{unit(checkpoint, device, prefix)}/{STATUS}"


def ack(checkpoint: str, device: str, prefix: str = PREFIX) -> str:
    """Where one unit hears which of its events the central has stored."""
    return f"{unit(checkpoint, device, prefix)}/{ACK}"


def trust(prefix: str = PREFIX) -> str:
    """The retained signed trust bundle."""
    return f"{prefix}/trust"


def roster(checkpoint: str, prefix: str = PREFIX) -> str:
    """A checkpoint's retained signed officer roster."""
    return f"{prefix}/{checkpoint}/roster"


TRUST = trust()
ALL = f"{PREFIX}/#"
ALL_EVENTS = event("+", "+")
ALL_STATUS = status("+", "+")
ALL_ACKS = ack("+", "+")
ALL_ROSTERS = roster("+")
_UNIT_TOPIC = re.compile(rf"^{re.escape(PREFIX)}/([^/]+)/([^/]+)/({EVENT}|{STATUS})$")


def parse_unit_topic(topic: str) -> tuple[str, str, str] | None:
    """(checkpoint, device, "event" or "status") of a unit's publication, None for any other topic."""
    match = _UNIT_TOPIC.match(topic)
    return None if match is None else (match[1], match[2], match[3])
