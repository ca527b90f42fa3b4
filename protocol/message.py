"""What every parser of a unit's message shares: the refusal, the size cap, JSON objects, times."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

MAX_PAYLOAD = 2048


class Rejected(Exception):
    """A message that cannot be stored; `reason` is a short code, the message says why (never a value)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def parse_time(value: Any) -> datetime:
    """An ISO 8601 timestamp with a zone (as units send `ts`) as aware UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise Rejected("bad_ts", "ts must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected("bad_ts", "ts is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise Rejected("bad_ts", "ts has no timezone")
    return parsed.astimezone(timezone.utc)


def json_object(payload: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object of a payload holding only `allowed` keys, else Rejected."""
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Rejected("bad_json", "payload is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Rejected("bad_json", "payload is not a JSON object")
    unknown = set(data) - allowed
    if unknown:
        # Field names only: the values may be exactly what must not be logged.
        raise Rejected("unknown_field", f"unknown fields {sorted(unknown)[:5]}")
    return data
