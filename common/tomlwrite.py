"""Write the small nested config dicts that the demo, benches and tests hand to `chot` as TOML.

Only what those configs hold: strings, numbers, booleans, lists, nested tables and (as inline
tables) tables inside lists, such as the national profile's broker nodes.
`tomllib` reads; the standard library has no writer, and these files are too simple to need one.
"""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v), ensure_ascii=False)


def dumps(data: dict[str, Any]) -> str:
    """TOML text for `data`: scalars of a table first, then its sub-tables as `[a.b]` sections."""
    lines: list[str] = []

    def table(prefix: str, d: dict[str, Any]) -> None:
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict))
        lines.append("")
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines)
