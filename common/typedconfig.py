"""Typed configuration from TOML: dataclasses in, readable errors out.

Each package declares its config as (nested) dataclasses and calls `parse(cls, data)`.
Unknown keys are refused and every error names the key path, so `check-config` can print
`mqtt.port: expected an integer, got "abc"` instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """A config file or value is wrong; `path` is the dotted key path ("" for the file itself)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file into a dict, turning every I/O or syntax problem into a ConfigError."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except PermissionError:
        raise ConfigError("", f"config file not readable: {path}") from None
    except IsADirectoryError:
        raise ConfigError("", f"config path is a directory: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"{path} is not UTF-8 text") from None


def parse(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a dict, checking types and refusing unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a table, got {_show(data)}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where}{unknown[0]}", f"unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key_path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(key_path, "is required")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(path, str(e)) from None
    return obj


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                errors.append(e.message)
        raise ConfigError(path, "; or ".join(errors))
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(path, f"must be one of {', '.join(repr(a) for a in args)}, got {_show(value)}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {_show(value)}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table, got {_show(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected an integer, got {_show(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(path, f"expected a number, got {_show(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"expected a string, got {_show(value)}")
    if tp is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise ConfigError(path, f"expected a path string, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def secret(value: str | None, env: str | None = None, credential: str | None = None) -> str | None:
    """Resolve a secret: systemd credential file, then environment variable, then the literal value.

    Keeps passwords out of config files on units: systemd's LoadCredential= puts them in
    $CREDENTIALS_DIRECTORY, readable only by the service.
    """
    if credential:
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            p = Path(cred_dir) / credential
            if p.is_file():
                return p.read_text(encoding="utf-8").strip()
    if env and os.environ.get(env):
        return os.environ[env]
    return value
