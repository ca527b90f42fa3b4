"""common.typedconfig: typed config from TOML with readable errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from common.typedconfig import ConfigError, load_toml, parse, secret


@dataclass
class Inner:
    port: int = 1883
    tls: bool = False


@dataclass
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    ratio: float = 0.5
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    path: Path | None = None


def test_parses_nested_and_defaults() -> None:
    cfg = parse(Outer, {"name": "x", "inner": {"port": 8883}, "ratio": 2, "path": "/tmp/a"})
    assert cfg.inner.port == 8883 and cfg.inner.tls is False
    assert cfg.ratio == 2.0 and isinstance(cfg.ratio, float)
    assert cfg.path == Path("/tmp/a")


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({}, "name", "required"),
        ({"name": "x", "inner": {"prot": 1}}, "inner.prot", "unknown key"),
        ({"name": "x", "inner": {"port": "abc"}}, "inner.port", "integer"),
        ({"name": "x", "inner": {"tls": 1}}, "inner.tls", "true or false"),
        ({"name": "x", "mode": "c"}, "mode", "one of"),
        ({"name": "x", "tags": "a"}, "tags", "list"),
        ({"name": "x", "tags": ["a", 3]}, "tags[1]", "string"),
        ({"name": "x", "inner": 5}, "inner", "table"),
    ],
)
def test_errors_name_the_key(data: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(Outer, data)
    assert e.value.path == path
    assert words in e.value.message


def test_load_toml_reasons(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError):
        load_toml(binary)
    good = tmp_path / "good.toml"
    good.write_text('name = "Nội Bài"\n[inner]\nport = 1\n')
    assert parse(Outer, load_toml(good)).name == "Nội Bài"


def test_secret_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert secret("literal") == "literal"
    monkeypatch.setenv("CHOT_TEST_SECRET", "from-env")
    assert secret("literal", env="CHOT_TEST_SECRET") == "from-env"
    (tmp_path / "pw").write_text("from-cred\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert secret("literal", env="CHOT_TEST_SECRET", credential="pw") == "from-cred"
