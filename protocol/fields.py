"""The field rules of every message between unit and central: one pattern per kind of value.

Identifiers appear in topics and URLs (short, no spaces, no MQTT wildcards); reasons and policy
names are machine codes, which also keeps free text (a name typed by mistake) off the wire.
"""

from __future__ import annotations

import re
from typing import Any

from verifier.decisions import OUTCOMES  # the policy's decision outcomes: let_through, turned_back
from verifier.verdict import RESULTS  # the verdict colours: green, yellow, red

__all__ = ["COUNTED", "DECISION_KINDS", "FOLLOWED", "ID", "NAME", "OFFICER_ID", "OUTCOMES", "REASON", "RESULTS",
           "is_seq"]

# Officer decisions are events too, counted beside the verdicts: "decision" after a scan,
# "manual" for a manual check without one.
DECISION_KINDS: tuple[str, ...] = ("decision", "manual")
COUNTED: tuple[str, ...] = (*RESULTS, *DECISION_KINDS)
FOLLOWED: tuple[str, ...] = ("yellow", "red")  # the verdicts a decision may follow
# A device or checkpoint id.
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# An officer's staff id.
OFFICER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# A reason code (a verdict's, an error's or a decision's): snake_case.
REASON = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
# A policy name.
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_SEQ = 2**63 - 1


def is_seq(value: Any) -> bool:
    """A unit's event sequence number: a whole number from 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SEQ
