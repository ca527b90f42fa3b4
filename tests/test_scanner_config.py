"""The unit's config: typed parsing, readable errors with key paths, and `chot scanner check-config`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chot.cli import main
from common.typedconfig import ConfigError
from scanner.config import MqttConfig, check_files, load_unit_config, parse_unit_config

MINIMAL = {
    "unit": {"device_id": "unit-7", "checkpoint": "ic7"},
    "trust": {"anchor_file": "anchor.pem", "cache_dir": "trust"},
    "storage": {"data_dir": "data"},
}

FULL_TOML = """
[unit]
device_id = "unit-7"
checkpoint = "ic7"
policy = "workplace"
language = "en"

[camera]
backend = "replay"
source = "frames"
fps = 10
loop = false

[debounce]
gone_frames = 5
gone_seconds = 0.5

[mqtt]
host = "127.0.0.1"
port = 8883
tls = true

[trust]
anchor_file = "anchor.pem"
cache_dir = "trust"

[storage]
data_dir = "data"

[screen]
port = 0
verdict_seconds = 2.5

[gpio]
enabled = true
pins = { green = 5, yellow = 6, red = 13, buzzer = 19, relay = 26 }
"""


def with_(section: str, **values: object) -> dict:
    data: dict[str, dict[str, object]] = {k: dict(v) for k, v in MINIMAL.items()}
    data.setdefault(section, {}).update(values)
    return data


def test_minimal_config_has_working_defaults(tmp_path: Path) -> None:
    config = parse_unit_config(MINIMAL, tmp_path)
    assert config.unit.policy == "vn-2021" and config.screen_language == "vi"
    assert config.camera.backend == "picamera2" and (config.camera.width, config.camera.height) == (1280, 720)
    assert config.mqtt is None and not config.gpio.enabled and config.screen.host == "127.0.0.1"
    assert config.trust.anchor_file == tmp_path / "anchor.pem"  # relative to the config file
    assert config.storage.data_dir == tmp_path / "data"


def test_full_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "unit.toml").write_text(FULL_TOML)
    config = load_unit_config(tmp_path / "unit.toml")
    assert config.camera.source == str(tmp_path / "frames") and config.camera.loop is False
    assert config.mqtt is not None and config.mqtt.port == 8883 and config.mqtt.tls
    assert config.mqtt_username == "unit-7"  # defaults to the device id
    assert config.gpio.pins.relay == 26 and config.screen_language == "en"
    assert config.debounce.gone_frames == 5


@pytest.mark.parametrize("section, values, path, words", [
    ("camera", {"backend": "webcam"}, "camera.backend", "must be one of"),
    ("camera", {"fps": "fast"}, "camera.fps", "expected a number"),
    ("camera", {"backend": "replay"}, "camera", "needs a source"),
    ("screen", {"host": "0.0.0.0"}, "screen", "loopback"),
    ("screen", {"colour": "red"}, "screen.colour", "unknown key"),
    ("unit", {"device_id": "a/b"}, "unit", "wildcards"),
    ("mqtt", {"port": 70000}, "mqtt", "between 1 and 65535"),
    ("gpio", {"pins": {"green": 5, "yellow": 5}}, "gpio.pins", "used once"),
    ("debounce", {"gone_frames": 0}, "debounce", "at least 1"),
])
def test_bad_values_name_their_key(section: str, values: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_unit_config(with_(section, **values))
    assert info.value.path == path
    assert words in info.value.message


def test_missing_required_section_is_named() -> None:
    data = {k: v for k, v in MINIMAL.items() if k != "trust"}
    with pytest.raises(ConfigError, match=r"^trust: is required"):
        parse_unit_config(data)


def test_password_comes_from_credential_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mqtt = MqttConfig(password="literal")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("CHOT_MQTT_PASSWORD", raising=False)
    assert mqtt.resolved_password() == "literal"
    monkeypatch.setenv("CHOT_MQTT_PASSWORD", "from-env")
    assert mqtt.resolved_password() == "from-env"
    (tmp_path / "mqtt-password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert mqtt.resolved_password() == "from-credential"


def test_check_files_reports_missing_files(tmp_path: Path) -> None:
    config = parse_unit_config(with_("camera", backend="scripted", source="people.txt"), tmp_path)
    problems = {p.path: p.message for p in check_files(config)}
    assert set(problems) == {"trust.anchor_file", "camera.source"}
    assert str(tmp_path / "anchor.pem") in problems["trust.anchor_file"]


def test_check_config_command_prints_key_path_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(FULL_TOML.replace("fps = 10", 'fps = "ten"'))
    result = CliRunner().invoke(main, ["scanner", "check-config", str(bad)])
    assert result.exit_code == 1
    assert "camera.fps: expected a number, got 'ten'" in result.output
    assert "Traceback" not in result.output


def test_check_config_command_on_broken_toml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[unit\n")
    result = CliRunner().invoke(main, ["scanner", "check-config", str(broken)])
    assert result.exit_code == 1 and "is not valid TOML" in result.output
    result = CliRunner().invoke(main, ["scanner", "check-config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1 and "config file not found" in result.output


def test_check_config_command_accepts_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "anchor.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    (tmp_path / "frames").mkdir()
    (tmp_path / "unit.toml").write_text(FULL_TOML)
    result = CliRunner().invoke(main, ["scanner", "check-config", str(tmp_path / "unit.toml")])
    assert result.exit_code == 0, result.output
    assert "ok (unit unit-7 at ic7, policy workplace, camera replay)" in result.output
