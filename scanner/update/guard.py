"""`python -m scanner.update.guard ROOT`: run before every start of the unit service (ExecStartPre).

Finishes or undoes what a killed updater left under ROOT and counts the starts of a release on
trial, switching back to the last good release once it has used them up. It runs from the
*good* release's tree (PYTHONPATH=ROOT/good/app), so a broken new release cannot break it, and
it always exits 0: the unit must start, on whichever release `current` now names.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scanner.update.layout import Layout


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m scanner.update.guard ROOT", file=sys.stderr)
        return 2
    layout = Layout(Path(argv[0]))
    try:
        state = layout.recover()
    except Exception as e:  # noqa: BLE001 - never keep the unit from starting
        print(f"update guard: {type(e).__name__}: {e}", file=sys.stderr)
        return 0
    failure = state.last_failure or {}
    print(f"update guard: current={layout.pointed('current')} good={layout.pointed('good')} "
          f"phase={state.phase} starts={state.starts} last_failure={failure.get('code')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
