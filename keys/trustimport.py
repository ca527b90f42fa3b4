"""The ministry's import of published trust lists into its own bundle, with rollback refused.

The ministry checks a published list against the key or anchor it pins (verifier.trustlists),
then re-signs the signers it accepted in its own bundle: units keep trusting only the ministry's
key. The time of each format's last accepted list is kept in the ministry folder
(`trust_imports.json`); a list older than that is refused (a replayed old list).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keys.ministry import MinistryDir
from verifier.trustlists import ImportedList, import_list

STATE_FILE = "trust_imports.json"


def _state_path(ministry: MinistryDir) -> Path:
    return ministry.root / STATE_FILE


def last_import(ministry: MinistryDir, fmt: str) -> dt.datetime | None:
    """The time of the last list of `fmt` this ministry accepted (None: never)."""
    state = ministry.read_state(_state_path(ministry), {})
    text = state.get(fmt)
    return dt.datetime.fromisoformat(text) if isinstance(text, str) else None


def check_list(ministry: MinistryDir, path: Path, now: dt.datetime, *, fmt: str | None = None,
               key: bytes | None = None, anchors: Sequence[bytes] = (),
               max_age: dt.timedelta | None = None) -> ImportedList:
    """Import a published list for the next bundle, refusing one older than the last accepted.

    :raises verifier.trustlists.TrustListError: why the list is refused whole.
    """
    from verifier.trustlists import detect_format

    fmt = fmt or detect_format(path)
    return import_list(path, now, fmt=fmt, key=key, anchors=anchors, last_import=last_import(ministry, fmt),
                       max_age=max_age)


def record(ministry: MinistryDir, imported: ImportedList) -> None:
    """Remember the list's time once the bundle carrying it is signed."""
    if imported.issued_at is None:
        return
    state: dict[str, Any] = ministry.read_state(_state_path(ministry), {})
    state[imported.format] = imported.issued_at.isoformat()
    ministry.write_state(_state_path(ministry), state)
