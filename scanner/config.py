"""The edge unit's typed config: one TOML file, one dataclass per section.

Each field is documented where it is declared. `load_unit_config(path)` reads and checks a file;
`parse_unit_config(data)` does the same from a dict, so tests build configs without files.
Every problem is a `common.typedconfig.ConfigError` naming the key path.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.localnet import parse_address
from common.typedconfig import ConfigError, load_toml, parse, secret
from protocol import topics

Language = Literal["vi", "en"]
CameraBackend = Literal["picamera2", "opencv", "replay", "scripted"]


@dataclass
class UnitSection:
    """[unit]: who this unit is and how it judges."""

    device_id: str
    """Device id; also the MQTT username and part of every topic."""
    checkpoint: str
    """Checkpoint (or workplace) id this unit reports under."""
    policy: str = "vn-2021"
    """Name of the policy that turns a valid certificate into green/yellow/red."""
    language: Language = "vi"
    """Default language of the officer screen: "vi" or "en"."""

    def __post_init__(self) -> None:
        for name in ("device_id", "checkpoint"):
            value = getattr(self, name)
            if not value or any(c in value for c in "/+#") or value != value.strip():
                raise ValueError(f"{name} must be non-empty, without spaces at the ends and "
                                 f"without MQTT wildcards or '/', got {value!r}")


@dataclass
class CameraSection:
    """[camera]: where frames come from."""

    backend: CameraBackend = "picamera2"
    """"picamera2" (Pi camera), "opencv" (USB webcam, video file, RTSP), "replay" (folder of
    images or a video file) or "scripted" (phone-screen frames rendered from payloads)."""
    source: str = ""
    """opencv: device index ("0"), file or URL; replay: folder or video file; scripted: a text
    file with one payload per line, or a folder of *.txt files, one payload each."""
    width: int = 1280
    """Frame width in pixels (dense HC1 codes need 1280x720 or more)."""
    height: int = 720
    """Frame height in pixels."""
    fps: float = 15.0
    """Frames per second asked of the camera; replay/scripted sources are paced to it
    (0 = as fast as possible, for benchmarks)."""
    loop: bool = True
    """replay/scripted: start again at the end instead of stopping."""
    hold_frames: int = 20
    """scripted: frames each person holds the phone in view."""
    gap_frames: int = 10
    """scripted: empty frames between two people."""
    difficulty: Literal["easy", "medium", "hard"] = "easy"
    """scripted: how hard the rendered phone screens are to read (blur, tilt, glare)."""
    reconnect_seconds: float = 2.0
    """opencv: wait this long before reopening a source that failed."""

    def __post_init__(self) -> None:
        if not (64 <= self.width <= 4096 and 64 <= self.height <= 4096):
            raise ValueError(f"width and height must be between 64 and 4096, got {self.width}x{self.height}")
        if self.fps < 0 or self.fps > 120:
            raise ValueError(f"fps must be between 0 and 120, got {self.fps}")
        if self.hold_frames < 1 or self.gap_frames < 0:
            raise ValueError("hold_frames must be at least 1 and gap_frames not negative")
        if self.backend in ("replay", "scripted") and not self.source:
            raise ValueError(f"backend {self.backend!r} needs a source (folder or file)")


@dataclass
class DecodeSection:
    """[decode]: how often frames are decoded."""

    max_fps: float = 0.0
    """Decode at most this many frames per second (0 = every frame the camera gives); lowers
    CPU use on a busy Pi."""

    def __post_init__(self) -> None:
        if self.max_fps < 0:
            raise ValueError(f"max_fps must not be negative, got {self.max_fps}")


@dataclass
class DebounceSection:
    """[debounce]: when a read becomes a new scan."""

    gone_frames: int = 15
    """The code counts as gone after this many decoded frames without reading it."""
    gone_seconds: float = 1.0
    """...or after this many seconds without reading it, whichever comes first."""

    def __post_init__(self) -> None:
        if self.gone_frames < 1 or self.gone_seconds <= 0:
            raise ValueError("gone_frames must be at least 1 and gone_seconds above 0")


@dataclass
class MqttConfig:
    """[mqtt]: the link to the central broker (read by scanner.mqtt)."""

    host: str = "127.0.0.1"
    """Broker host name or address."""
    port: int = 1883
    """Broker TCP port (8883 is usual with TLS)."""
    brokers: list[str] = field(default_factory=list)
    """More broker nodes ("host" or "host:port", port defaulting to `port`) of a clustered
    broker: the unit moves to the next one when the one it is on is gone."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT version: "5" (Mosquitto, the embedded default) or "3.1.1" (the national NATS
    cluster, which refuses MQTT 5)."""
    username: str | None = None
    """MQTT username; defaults to the unit's device_id."""
    password: str | None = None
    """Literal password; prefer password_env or a systemd credential."""
    password_env: str = "CHOT_MQTT_PASSWORD"
    """Environment variable holding the password."""
    password_credential: str = "mqtt-password"
    """Name of the systemd credential (in $CREDENTIALS_DIRECTORY) holding the password."""
    tls: bool = False
    """Use TLS to the broker."""
    ca_file: Path | None = None
    """CA certificate (PEM) to check the broker with; system CAs when unset."""
    keepalive: int = 30
    """MQTT keepalive in seconds."""
    max_inflight: int = 10
    """Events published but not yet acknowledged, at most."""
    topic_prefix: str = topics.PREFIX
    """Prefix of every topic."""
    reconnect_max_s: float = 60.0
    """Longest wait between reconnection attempts (the wait doubles from 0.5 s, with jitter, so
    thousands of units do not all return at once after a central outage)."""
    central_ack_timeout_s: float = 60.0
    """Seconds an event handed to the broker may wait for the central's acknowledgement before
    it is sent again (it is also sent again after every reconnect)."""
    status_interval_s: float = 60.0
    """Seconds between status reports while nothing changes: the central's offline alarm
    (alarms.offline_after_s, 90 s by default) must be longer than this."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if not 1 <= self.reconnect_max_s <= 3600:
            raise ValueError(f"reconnect_max_s must be between 1 and 3600, got {self.reconnect_max_s}")
        if self.keepalive < 5 or self.max_inflight < 1:
            raise ValueError("keepalive must be at least 5 seconds and max_inflight at least 1")
        if not 1 <= self.status_interval_s <= 3600:
            raise ValueError(f"status_interval_s must be between 1 and 3600, got {self.status_interval_s}")
        if not 0.5 <= self.central_ack_timeout_s <= 86400:
            raise ValueError("central_ack_timeout_s must be between 0.5 and 86400 seconds")
        self.addresses()  # a bad broker address is a config error now, not at the first reconnect

    def addresses(self) -> list[tuple[str, int]]:
        """Every broker to try, `host:port` first, then `brokers` in order (duplicates dropped)."""
        found = [(self.host, self.port)]
        for text in self.brokers:
            address = parse_address(text, self.port)
            if address not in found:
                found.append(address)
        return found

    def resolved_password(self) -> str | None:
        """The password from the systemd credential, the environment, or the literal value."""
        return secret(self.password, self.password_env, self.password_credential)


@dataclass
class TrustSection:
    """[trust]: the pinned anchor and where signed trust bundles live."""

    anchor_file: Path
    """PEM public key of the ministry's trust-list key, pinned at provisioning."""
    cache_dir: Path
    """Where the last accepted bundle is kept."""
    bundle_file: Path | None = None
    """Optional bundle to offer at start (first boot, or a file copied by hand)."""
    usb_glob: str | None = None
    """Optional glob (e.g. "/media/*/chot-trust*.json") checked for bundles on USB sticks."""
    max_age_hours: float | None = None
    """Oldest trust bundle judged normally when the policy sets no limit; past it green and
    yellow are capped at yellow (None = no limit)."""

    def __post_init__(self) -> None:
        if self.max_age_hours is not None and self.max_age_hours <= 0:
            raise ValueError(f"max_age_hours must be above 0, got {self.max_age_hours}")


@dataclass
class StorageSection:
    """[storage]: the unit's own data."""

    data_dir: Path
    """Holds outbox.sqlite and the clock state; never personal data."""


@dataclass
class ScreenSection:
    """[screen]: the officer screen, a page served on loopback for the kiosk browser."""

    enabled: bool = True
    """Serve the officer screen."""
    host: str = "127.0.0.1"
    """Listen address; must be loopback, since the page shows names and dates of birth."""
    port: int = 8080
    """Listen port (0 = any free port)."""
    language: Language | None = None
    """Screen language; defaults to unit.language."""
    verdict_seconds: float = 4.0
    """How long a verdict (with the holder's name) stays on screen."""
    preview_fps: float = 2.0
    """Rate of the live camera preview while someone watches it."""

    def __post_init__(self) -> None:
        if not _is_loopback(self.host):
            raise ValueError(f"host must be a loopback address (the page shows personal data), got {self.host!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if not 0.5 <= self.verdict_seconds <= 60:
            raise ValueError(f"verdict_seconds must be between 0.5 and 60, got {self.verdict_seconds}")
        if not 0 < self.preview_fps <= 15:
            raise ValueError(f"preview_fps must be above 0 and at most 15, got {self.preview_fps}")


@dataclass
class GpioPins:
    """[gpio.pins]: BCM pin numbers."""

    green: int = 17
    """Green LED."""
    yellow: int = 27
    """Yellow LED."""
    red: int = 22
    """Red LED."""
    buzzer: int = 23
    """Active buzzer."""
    relay: int = 24
    """Gate relay, opened on green."""

    def __post_init__(self) -> None:
        pins = [self.green, self.yellow, self.red, self.buzzer, self.relay]
        if any(not 0 <= p <= 27 for p in pins):
            raise ValueError(f"pins must be BCM numbers 0..27, got {pins}")
        if len(set(pins)) != len(pins):
            raise ValueError(f"each pin must be used once, got {pins}")


@dataclass
class GpioButtons:
    """[gpio.buttons]: decision buttons for units without a touch screen (BCM pins, to ground)."""

    enabled: bool = False
    """Read the buttons."""
    let_through: int = 5
    """Let the person on screen through, for `let_through_reason`."""
    turn_back: int = 6
    """Turn the person on screen back, for `turn_back_reason`."""
    sign_out: int = 13
    """Sign the officer out."""
    let_through_reason: str = "paper_proof"
    """Reason code (from the policy's list) recorded by the let-through button."""
    turn_back_reason: str = "no_proof"
    """Reason code recorded by the turn-back button."""
    bounce_ms: int = 50
    """Contact bounce filter."""

    def __post_init__(self) -> None:
        pins = [self.let_through, self.turn_back, self.sign_out]
        if any(not 0 <= p <= 27 for p in pins) or len(set(pins)) != 3:
            raise ValueError(f"button pins must be three different BCM numbers 0..27, got {pins}")
        if not 1 <= self.bounce_ms <= 1000:
            raise ValueError("bounce_ms must be between 1 and 1000")


@dataclass
class GpioSection:
    """[gpio]: LEDs, buzzer and gate relay through gpiozero."""

    enabled: bool = False
    """Drive the GPIO outputs."""
    pins: GpioPins = field(default_factory=GpioPins)
    """Pin numbers."""
    relay_seconds: float = 3.0
    """How long the gate relay stays on after a green verdict."""
    relay_active_high: bool = True
    """False for relay boards that switch on a low level."""
    led_seconds: float = 3.0
    """How long the verdict LED stays lit."""
    buttons: GpioButtons = field(default_factory=GpioButtons)
    """Decision buttons."""

    def __post_init__(self) -> None:
        if not 0.1 <= self.relay_seconds <= 60 or not 0.1 <= self.led_seconds <= 60:
            raise ValueError("relay_seconds and led_seconds must be between 0.1 and 60")


@dataclass
class OfficersSection:
    """[officers]: officers signed in with a PIN record decisions after yellow and red verdicts."""

    enabled: bool = True
    """Take officer decisions (the policy must allow them, and a signed roster must be held)."""
    idle_signout_s: float = 300.0
    """Sign the officer out after this many seconds without an action."""
    decision_hold_s: float = 60.0
    """How long a yellow or red verdict stays on screen, open to a decision, while an officer is
    signed in (a new scan replaces it sooner)."""

    def __post_init__(self) -> None:
        if not 10 <= self.idle_signout_s <= 86400:
            raise ValueError("idle_signout_s must be between 10 and 86400")
        if not 1 <= self.decision_hold_s <= 600:
            raise ValueError("decision_hold_s must be between 1 and 600")


@dataclass
class ClockSection:
    """[clock]: how far the clock may look wrong before the screen warns."""

    max_skew_seconds: float = 300.0
    """How far the clock may lag the bundle's issue time or the last time seen before it is
    distrusted; while distrusted, green and yellow are capped at yellow ("check by hand")."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_skew_seconds <= 86400:
            raise ValueError(f"max_skew_seconds must be between 0 and 86400, got {self.max_skew_seconds}")


@dataclass
class UnitConfig:
    """The whole unit config file."""

    unit: UnitSection
    """[unit]"""
    trust: TrustSection
    """[trust]"""
    storage: StorageSection
    """[storage]"""
    camera: CameraSection = field(default_factory=CameraSection)
    """[camera]"""
    decode: DecodeSection = field(default_factory=DecodeSection)
    """[decode]"""
    debounce: DebounceSection = field(default_factory=DebounceSection)
    """[debounce]"""
    mqtt: MqttConfig | None = None
    """[mqtt]; no section = no reporting (a stand-alone unit)."""
    screen: ScreenSection = field(default_factory=ScreenSection)
    """[screen]"""
    gpio: GpioSection = field(default_factory=GpioSection)
    """[gpio]"""
    clock: ClockSection = field(default_factory=ClockSection)
    """[clock]"""
    officers: OfficersSection = field(default_factory=OfficersSection)
    """[officers]"""

    @property
    def screen_language(self) -> str:
        """The screen's language: its own setting, else the unit's."""
        return self.screen.language or self.unit.language

    @property
    def mqtt_username(self) -> str:
        """The MQTT username: as configured, else the device id."""
        if self.mqtt is not None and self.mqtt.username:
            return self.mqtt.username
        return self.unit.device_id


def parse_unit_config(data: dict[str, Any], base_dir: Path | None = None) -> UnitConfig:
    """Check a config dict and build a UnitConfig; relative paths resolve against base_dir."""
    config = parse(UnitConfig, data)
    if base_dir is not None:
        _resolve_paths(config, base_dir)
    return config


def load_unit_config(path: str | os.PathLike[str]) -> UnitConfig:
    """Read a unit config file; relative paths in it are relative to the file."""
    data = load_toml(path)
    return parse_unit_config(data, Path(path).resolve().parent)


def check_files(config: UnitConfig) -> list[ConfigError]:
    """Problems a valid-looking config still has on this machine (missing anchor, source...)."""
    problems: list[ConfigError] = []
    if not config.trust.anchor_file.is_file():
        problems.append(ConfigError("trust.anchor_file", f"file not found: {config.trust.anchor_file}"))
    if config.trust.bundle_file is not None and not config.trust.bundle_file.is_file():
        problems.append(ConfigError("trust.bundle_file", f"file not found: {config.trust.bundle_file}"))
    if config.mqtt is not None and config.mqtt.ca_file is not None and not config.mqtt.ca_file.is_file():
        problems.append(ConfigError("mqtt.ca_file", f"file not found: {config.mqtt.ca_file}"))
    if config.camera.backend in ("replay", "scripted") and not Path(config.camera.source).exists():
        problems.append(ConfigError("camera.source", f"not found: {config.camera.source}"))
    return problems


def _resolve_paths(config: UnitConfig, base: Path) -> None:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    config.trust.anchor_file = fix(config.trust.anchor_file)  # type: ignore[assignment]
    config.trust.cache_dir = fix(config.trust.cache_dir)  # type: ignore[assignment]
    config.trust.bundle_file = fix(config.trust.bundle_file)
    config.storage.data_dir = fix(config.storage.data_dir)  # type: ignore[assignment]
    if config.mqtt is not None:
        config.mqtt.ca_file = fix(config.mqtt.ca_file)
    cam = config.camera
    if cam.backend in ("replay", "scripted") and cam.source and not Path(cam.source).is_absolute():
        cam.source = str(base / cam.source)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
