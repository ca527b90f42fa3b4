"""The central's end-to-end acknowledgement: `{"seqs": [[first, last], ...]}` on a unit's ack topic.

After each commit the ingest names every stored seq of each unit in the batch (duplicates
included); the unit keeps an event until then.
"""

from __future__ import annotations

import json

from protocol.fields import MAX_SEQ

RANGES_PER_MESSAGE = 500  # about 12 KB of JSON at most; units refuse acks over MAX_BYTES
MAX_BYTES = 65536


class AckError(ValueError):
    """A message on the ack topic that is not an acknowledgement; `reason` says what is wrong."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def encode_acks(seqs: list[int]) -> list[bytes]:
    """`{"seqs": [[first, last], ...]}` messages covering exactly `seqs` (consecutive ones merged)."""
    ranges: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return [json.dumps({"seqs": ranges[i:i + RANGES_PER_MESSAGE]}, separators=(",", ":")).encode()
            for i in range(0, len(ranges), RANGES_PER_MESSAGE)]


def parse_ack(payload: bytes) -> list[tuple[int, int]]:
    """The inclusive seq ranges of a central acknowledgement `{"seqs": [[first, last], ...]}`."""
    if len(payload) > MAX_BYTES:
        raise AckError(f"ack of {len(payload)} bytes exceeds {MAX_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise AckError("ack is not UTF-8 JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("seqs"), list):
        raise AckError('ack is not an object with a "seqs" list')
    ranges = []
    for span in data["seqs"]:
        if (not isinstance(span, list) or len(span) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in span)
                or not 1 <= span[0] <= span[1] <= MAX_SEQ):
            raise AckError("ack seqs must be [first, last] pairs of seqs with first <= last")
        ranges.append((span[0], span[1]))
    return ranges
