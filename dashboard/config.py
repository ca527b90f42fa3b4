"""The central service's configuration: typed dataclasses parsed from TOML.

Secrets (web secret key, MQTT passwords) never need to sit in the file: each one is looked up
as a systemd credential, then an environment variable, then the literal value.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.localnet import parse_address
from common.typedconfig import ConfigError, load_toml, parse, secret

DEFAULT_DATA_DIR = Path("/var/lib/chot-dashboard")
SHIPPED_BROKER_TEMPLATE = Path(__file__).resolve().parent.parent / "firmware-config" / "mosquitto" / "mosquitto.conf"
SHIPPED_NATS_TEMPLATE = Path(__file__).resolve().parent.parent / "firmware-config" / "nats" / "nats-node.conf"


@dataclass
class WebConfig:
    """The Flask app's listener and session signing key."""

    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str | None = None
    """Literal key; prefer `secret_key_env` or the systemd credential."""
    secret_key_env: str = "CHOT_DASHBOARD_SECRET_KEY"
    secret_key_credential: str = "dashboard-secret-key"
    cookie_secure: bool = False
    """Send the session cookie over HTTPS only: set true behind the TLS reverse proxy."""
    metrics_token: str | None = None
    """Bearer token for /metrics; prefer the `dashboard-metrics-token` credential."""
    threads: int = 8
    """Threads answering pages and API calls (live streams get threads of their own)."""
    max_streams: int = 100
    """Live streams open at once; each holds a thread, one more is told to retry later."""
    shutdown_timeout_s: float = 10.0
    """On SIGTERM, how long requests in flight get to finish before connections close."""
    trusted_proxies: int = 0
    """Reverse proxies in front (1 behind nginx): X-Forwarded-For/-Proto of that many hops are
    believed; 0 ignores them."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"web.port must be 1-65535, got {self.port}")
        if not 1 <= self.threads <= 256:
            raise ValueError(f"web.threads must be 1-256, got {self.threads}")
        if not 1 <= self.max_streams <= 4096:
            raise ValueError(f"web.max_streams must be 1-4096, got {self.max_streams}")
        if not 0 < self.shutdown_timeout_s <= 300:
            raise ValueError(f"web.shutdown_timeout_s must be above 0 and at most 300, got {self.shutdown_timeout_s}")
        if not 0 <= self.trusted_proxies <= 5:
            raise ValueError(f"web.trusted_proxies must be 0-5, got {self.trusted_proxies}")

    def resolved_secret_key(self) -> str | None:
        """The session key from credential, environment or file."""
        return secret(self.secret_key, self.secret_key_env, self.secret_key_credential)


@dataclass
class MqttAccount:
    """One central MQTT account (ingest or dashboard)."""

    username: str
    password: str | None = None
    password_env: str | None = None
    password_credential: str | None = None

    def resolved_password(self) -> str | None:
        """The account's password from credential, environment or file."""
        return secret(self.password, self.password_env, self.password_credential)


def _ingest_account() -> MqttAccount:
    return MqttAccount("chot-ingest", None, "CHOT_INGEST_MQTT_PASSWORD", "ingest-mqtt-password")


def _dashboard_account() -> MqttAccount:
    return MqttAccount("chot-dashboard", None, "CHOT_DASHBOARD_MQTT_PASSWORD", "dashboard-mqtt-password")


@dataclass
class MqttConfig:
    """Where the ingest and the trust publisher connect."""

    host: str = "127.0.0.1"
    port: int = 1883
    brokers: list[str] = field(default_factory=list)
    """More broker nodes of the national cluster ("host" or "host:port"): tried in turn after
    host:port when the node in use is gone."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT version: "5" for Mosquitto, "3.1.1" for the NATS cluster (NATS refuses MQTT 5)."""
    nats_urls: list[str] = field(default_factory=list)
    """NATS client URLs of the cluster (nats://host:port): the ingest then reads events as a
    JetStream durable consumer shared by every worker instead of an MQTT session."""
    tls: bool = False
    ca_file: Path | None = None
    """CA that signed the broker's certificate (TLS only); None uses the system store."""
    ingest: MqttAccount = field(default_factory=_ingest_account)
    dashboard: MqttAccount = field(default_factory=_dashboard_account)
    client_id: str = "chot-ingest"
    """The ingest's client id (the shipped broker uses the username instead, use_username_as_clientid)."""
    session_expiry_s: int = 7 * 86400
    """How long the broker keeps queued events while the ingest is down."""
    keepalive_s: int = 30

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"mqtt.port must be 1-65535, got {self.port}")
        self.addresses()

    def addresses(self) -> list[tuple[str, int]]:
        """Every broker address to try, host:port first, then `brokers` (duplicates dropped)."""
        found = [(self.host, self.port)]
        for text in self.brokers:
            address = parse_address(text, self.port)
            if address not in found:
                found.append(address)
        return found


@dataclass
class NatsNode:
    """One node of the national NATS cluster."""

    name: str
    mqtt_port: int
    client_port: int
    cluster_port: int
    host: str = "127.0.0.1"
    monitor_port: int | None = None
    """HTTP monitoring (/healthz, /jsz, /connz) on loopback; None = off."""

    def __post_init__(self) -> None:
        for port in (self.mqtt_port, self.client_port, self.cluster_port):
            if not 0 < port < 65536:
                raise ValueError(f"node {self.name}: ports must be 1-65535, got {port}")


@dataclass
class BrokerConfig:
    """The central Mosquitto's files (rendered by `chot dashboard init`) and listeners."""

    mosquitto_conf: Path | None = None
    password_file: Path | None = None
    acl_file: Path | None = None
    pid_file: Path | None = None
    persistence_dir: Path | None = None
    log_file: Path | None = None
    template: Path = SHIPPED_BROKER_TEMPLATE
    user: str = "mosquitto"
    """Mosquitto drops root privileges to this user."""
    listen_host: str = "127.0.0.1"
    listen_port: int = 1883
    tls_port: int | None = None
    """A TLS listener for units on other machines (8883); None for loopback-only."""
    tls_host: str = "0.0.0.0"
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_cafile: Path | None = None
    kind: Literal["mosquitto", "nats"] = "mosquitto"
    """"mosquitto": one broker (embedded default); "nats": the national cluster of `nodes`."""
    nodes: list[NatsNode] = field(default_factory=list)
    """The NATS cluster's nodes (kind = "nats"), three for the national profile."""
    nats_dir: Path | None = None
    """Each node's folder <nats_dir>/<name> (config, pid, log, JetStream store)."""
    users_file: Path | None = None
    """The NATS accounts file every node includes (rewritten from the device registry)."""
    nats_password_file: Path | None = None
    """user:bcrypt-hash lines the accounts file is rendered from."""
    nats_template: Path = SHIPPED_NATS_TEMPLATE
    cluster_name: str = "chot"
    max_file_store: str = "10GB"

    def __post_init__(self) -> None:
        if self.tls_port is not None and not (self.tls_certfile and self.tls_keyfile):
            raise ValueError("broker.tls_port needs broker.tls_certfile and broker.tls_keyfile")
        if self.kind == "nats" and not self.nodes:
            raise ValueError('broker.kind = "nats" needs [[broker.nodes]]')
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("broker.nodes names must differ")


# A unit reports its status every 60 s (scanner/mqtt.py) and the broker sends its last will
# 1.5 keepalives (45 s by default) after its link dies: 90 s without a word is one missed
# report and a margin, soon enough for a supervisor to act on a checkpoint that went dark.
DEFAULT_OFFLINE_AFTER_S = 90


@dataclass
class AlarmsConfig:
    """When the dashboard raises an alarm for a unit."""

    offline_after_s: int = DEFAULT_OFFLINE_AFTER_S
    """Seconds without a word from a unit (event or status) before it is flagged offline."""
    unit_report_interval_s: float = 60.0
    """The units' reporting interval (their `mqtt.status_interval_s`): a unit online whose
    outbox was last empty within this long is "in flight", normal running, not a lagging unit."""
    trust_stale_after_h: float = 48.0
    clock: bool = True
    """Alarm when a unit reports its clock is behind its bundle or its last record."""
    let_through_above_area: float = 0.3
    """Alarm when a checkpoint's or an officer's share of let-throughs among their decisions
    (today) is more than this far above their province's (0.3 = 30 percentage points)."""
    let_through_min_decisions: int = 10
    """...counting only checkpoints and officers with at least this many decisions."""

    def __post_init__(self) -> None:
        if not 1 <= self.unit_report_interval_s <= 3600:
            raise ValueError("unit_report_interval_s must be between 1 and 3600")
        if not 0 < self.let_through_above_area < 1:
            raise ValueError("let_through_above_area must be between 0 and 1")
        if self.let_through_min_decisions < 1:
            raise ValueError("let_through_min_decisions must be at least 1")


@dataclass
class OfficersConfig:
    """Officer rosters: signed by the dashboard's roster key, published per checkpoint."""

    key_file: Path | None = None
    """Roster signing key (PEM, 0600); defaults to <data_dir>/roster-key.pem, made by `init`.
    Its public half must be listed in the trust bundle (`chot keys bundle --roster-key`)."""
    roster_days: float = 7.0
    """How long a roster is valid: a unit that hears no newer one stops taking sign-ins then
    (a stolen or unplugged unit). Republish sooner (`publish-rosters`, e.g. daily)."""

    def __post_init__(self) -> None:
        if not 0.04 <= self.roster_days <= 90:
            raise ValueError("roster_days must be between 0.04 (an hour) and 90")


@dataclass
class IngestConfig:
    """Batching of the ingest: bigger batches, fewer fsyncs; bounded wait keeps the live view live."""

    batch_max: int = 500
    batch_wait_s: float = 0.02
    device_refresh_s: float = 5.0
    """How often the registry cache is reread (new devices are also looked up on first sight)."""
    workers: int = 1
    """Ingest processes sharing the events (`chot dashboard ingest --worker K`, K = 1..workers).
    Above 1 they take events from one MQTT shared subscription, so each event reaches one of them
    and a stopped worker's share goes to the others; the store must be PostgreSQL."""
    share_group: str = "chot-ingest"
    """The shared subscription's group name (`$share/<group>/chot/v1/+/+/event`)."""
    shared_session_expiry_s: int = 0
    """Session expiry of a worker (workers > 1): 0 lets the broker forget a stopped worker at
    once, so no events wait in its queue; units resend what no worker acknowledged."""

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 64:
            raise ValueError(f"ingest.workers must be 1-64, got {self.workers}")
        if not self.share_group or any(c in self.share_group for c in "/+#"):
            raise ValueError("ingest.share_group must be a name without '/', '+' or '#'")
        if self.shared_session_expiry_s < 0:
            raise ValueError("ingest.shared_session_expiry_s must not be negative")

    def worker_username(self, base: str, worker: int) -> str:
        """The MQTT account of ingest worker `worker` (the broker uses it as the client id, so
        each worker needs its own): worker 1 is `base`, worker K is `base-K`."""
        if not 1 <= worker <= self.workers:
            raise ValueError(f"worker must be 1-{self.workers} (ingest.workers), got {worker}")
        return base if worker == 1 else f"{base}-{worker}"


@dataclass
class StoreConfig:
    """Where the central keeps its data when it is not the embedded SQLite file."""

    url: str | None = None
    """postgresql://user:password@host:port/database (several ingest workers and web processes);
    None keeps SQLite at `database`. Prefer `url_env` or the credential: the URL holds a password."""
    url_env: str = "CHOT_STORE_URL"
    url_credential: str = "store-url"
    pool_size: int = 10
    """Connections each process keeps open at most (PostgreSQL only)."""

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("store.url must be a postgresql:// URL (leave it out for SQLite)")
        if not 1 <= self.pool_size <= 100:
            raise ValueError(f"store.pool_size must be 1-100, got {self.pool_size}")

    def resolved_url(self) -> str | None:
        """The PostgreSQL URL from credential, environment or file, or None for SQLite."""
        return secret(self.url, self.url_env, self.url_credential)


@dataclass
class DashboardConfig:
    """The whole central service's configuration."""

    data_dir: Path = DEFAULT_DATA_DIR
    database: str | None = None
    """SQLite file path; defaults to <data_dir>/chot.db (unused when `store.url` is set)."""
    store: StoreConfig = field(default_factory=StoreConfig)
    timezone: str = "Asia/Ho_Chi_Minh"
    anchor_file: Path | None = None
    """The ministry trust-list public key (PEM) that uploaded bundles must be signed by."""
    web: WebConfig = field(default_factory=WebConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    officers: OfficersConfig = field(default_factory=OfficersConfig)

    def __post_init__(self) -> None:
        d = Path(self.data_dir)
        self.data_dir = d
        self.officers.key_file = Path(self.officers.key_file or d / "roster-key.pem")
        if self.database is None:
            self.database = str(d / "chot.db")
        b = self.broker
        b.mosquitto_conf = b.mosquitto_conf or d / "mosquitto" / "mosquitto.conf"
        b.password_file = b.password_file or d / "mosquitto" / "passwd"
        b.acl_file = b.acl_file or d / "mosquitto" / "acl"
        b.pid_file = b.pid_file or d / "mosquitto" / "mosquitto.pid"
        b.persistence_dir = b.persistence_dir or d / "mosquitto" / "data"
        b.log_file = b.log_file or d / "mosquitto" / "mosquitto.log"
        b.nats_dir = b.nats_dir or d / "nats"
        b.users_file = b.users_file or d / "nats" / "accounts.conf"
        b.nats_password_file = b.nats_password_file or d / "nats" / "passwd"
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA zone") from None


    def store_target(self) -> str:
        """What `open_store` opens: the PostgreSQL URL if one is configured, else the SQLite path."""
        return self.store.resolved_url() or str(self.database)


def parse_config(data: dict[str, Any]) -> DashboardConfig:
    """Build the config from a dict (tests build it this way)."""
    return parse(DashboardConfig, data)


def load_config(path: str | os.PathLike[str] | None = None) -> DashboardConfig:
    """Read the config file (`$CHOT_DASHBOARD_CONFIG` if no path); no file means all defaults."""
    path = path or os.environ.get("CHOT_DASHBOARD_CONFIG")
    if path is None:
        return parse_config({})
    return parse_config(load_toml(path))


__all__ = ["AlarmsConfig", "BrokerConfig", "ConfigError", "DashboardConfig", "IngestConfig",
           "MqttAccount", "MqttConfig", "NatsNode", "StoreConfig", "WebConfig", "load_config", "parse_config"]
