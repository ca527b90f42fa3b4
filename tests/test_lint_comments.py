"""Every `# noqa` and `# type: ignore` left in the code names its codes and says why.

ruff (RUF100) and mypy (warn_unused_ignores) already fail on one that silences nothing; this
test holds the other half of the rule: a silenced finding carries its reason beside it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "node_modules", "__pycache__"}

# A noqa comment names its codes then a reason after " - " or "  # "; one without codes silences
# every rule on its line: refused.
NOQA = re.compile(r"#\s*noqa\b(?P<codes>:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)?(?P<rest>.*)$")
# A type-ignore comment names its error codes in brackets, then "  # " and a reason.
IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<codes>\[[a-z0-9, -]+\])?(?P<rest>.*)$")
REASON = re.compile(r"^\s*(?:-|#|—|–)\s*\S")


def python_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts))


def problems(text: str) -> list[str]:
    """What is wrong with each silencing comment in `text` (line number: problem)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in (("noqa", NOQA), ("type: ignore", IGNORE)):
            match = pattern.search(line)
            if match is None:
                continue
            if not match.group("codes"):
                found.append(f"{number}: a {kind} without codes")
            elif not REASON.match(match.group("rest")):
                found.append(f"{number}: a {kind} without a reason")
    return found


def test_the_check_finds_what_it_looks_for() -> None:
    assert problems("x = 1  # noqa\n") == ["1: a noqa without codes"]
    assert problems("import os  # noqa: F401\n") == ["1: a noqa without a reason"]
    assert problems("y = f()  # type: ignore[misc]\n") == ["1: a type: ignore without a reason"]
    assert problems("y = f()  # type: ignore\n") == ["1: a type: ignore without codes"]
    assert problems("import os  # noqa: F401 - re-exported\ny = f()  # type: ignore[misc]  # stub lacks it\n") == []


def test_each_silenced_finding_says_why() -> None:
    here = Path(__file__).resolve()
    found = [f"{path.relative_to(ROOT)}:{problem}" for path in python_files() if path != here  # it quotes them
             for problem in problems(path.read_text(encoding="utf-8"))]
    assert found == []
