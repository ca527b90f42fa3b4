"""The layers of docs/architecture.md, read from the source: which package may import which.

Every `import` and `from ... import` in each package (module level or inside a function, since
a lazy import is still a dependency) is parsed with `ast`; relative imports are resolved to
their package. The rules:
- `common` (typed config, version, loopback helpers) imports no part of chot;
- `verifier` (the pure core) imports only `common`;
- `protocol` (the unit-central contract) imports only `verifier` and `common`;
- `keys` (the ministry side) imports only `verifier` and `common`;
- `scanner` and `dashboard` import `protocol`, `verifier` and `common`, not each other, not `keys`,
  not `chot`;
- nothing but `chot` itself imports the `chot` command package (tests and benches may).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("common", "verifier", "protocol", "keys", "scanner", "dashboard", "chot")

ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "verifier": {"common"},
    "protocol": {"verifier", "common"},
    "keys": {"verifier", "common"},
    "scanner": {"protocol", "verifier", "common"},
    "dashboard": {"protocol", "verifier", "common"},
    "chot": {"common", "verifier", "protocol", "keys", "scanner", "dashboard"},
}


def imported_parts(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level chot part) for each import in the file that names one of PARTS."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in PARTS:
                    found.append((node.lineno, top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own package
                found.append((node.lineno, package))
            elif node.module:
                top = node.module.split(".")[0]
                if top in PARTS:
                    found.append((node.lineno, top))
    return found


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, part in imported_parts(path, package):
            if part not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {part}")
    return bad


@pytest.mark.parametrize("package", PARTS)
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    assert violations(package) == []


def test_the_rule_reader_sees_imports_of_every_form(tmp_path: Path) -> None:
    """The reader must catch lazy, aliased and dotted imports, or the rules above prove nothing."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import scanner.decode as d\n"
        "from chot.config import x\n"
        "from . import sibling\n"
        "def f():\n"
        "    from dashboard import store\n"
        "    import keys\n",
        encoding="utf-8",
    )
    assert sorted(imported_parts(sample, "verifier")) == [
        (2, "scanner"), (3, "chot"), (4, "verifier"), (6, "dashboard"), (7, "keys"),
    ]


def test_a_forbidden_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant an edge import in a copy of the core and see the layer check name it."""
    core = tmp_path / "verifier"
    core.mkdir()
    (core / "ok.py").write_text("from verifier.base45 import b45decode\nimport common\n", encoding="utf-8")
    (core / "bad.py").write_text("def read():\n    from scanner.decode import read_image\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert violations("verifier") == ["verifier/bad.py:2 imports scanner"]
