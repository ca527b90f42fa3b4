"""What every broker backend shares: the `Broker` interface, password files, the MQTT client.

Each backend is a module named after its technology (`mosquitto.py`, the embedded default;
`nats.py`, the national cluster). Both keep `user:hash` password files, replaced atomically
under a lock, and both speak MQTT to the ingest and the dashboard (`mqtt_client`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from dashboard.config import BrokerConfig, MqttAccount, MqttConfig

logger = logging.getLogger(__name__)



class BrokerError(Exception):
    """The broker's files could not be written or the broker could not be reloaded."""


@dataclass(frozen=True)
class DeviceGrant:
    """What one unit may do: write under its checkpoint and id, read the trust topic."""

    device: str
    checkpoint: str


def new_password() -> str:
    """A random password for a unit or a service account (shown once, never stored in clear)."""
    return secrets.token_urlsafe(18)


class Broker(ABC):
    """One broker backend's files: config, password hashes, the units' grants, reloading.

    `dashboard.broker.make_broker(config)` picks the backend of `broker.kind`; nothing else
    asks which it is.
    """

    def __init__(self, cfg: BrokerConfig) -> None:
        self.cfg = cfg

    @property
    @abstractmethod
    def password_file(self) -> Path:
        """The `user:hash` lines the broker (or its accounts file) is built from."""

    @abstractmethod
    def hash_password(self, password: str) -> str:
        """A hash of `password` in the form this broker reads."""

    @abstractmethod
    def write_config(self) -> list[Path]:
        """Render the broker's own config files into place; returns their paths."""

    @abstractmethod
    def write_grants(self, ingest_users: Sequence[str], dashboard_user: str, grants: Iterable[DeviceGrant]) -> None:
        """Write what each account may read and write (an ACL, or an accounts file)."""

    @abstractmethod
    def reload(self) -> bool:
        """Make the running broker reread its files; False if none runs here."""

    def set_password(self, username: str, password: str) -> None:
        """Add or replace one account's password."""
        set_password(self.password_file, username, password, self.hash_password)

    def delete_password(self, username: str) -> bool:
        """Remove one account; False if it was not there."""
        return delete_password(self.password_file, username)


def read_password_file(path: Path) -> dict[str, str]:
    """username -> hash from an existing password file (empty if there is none)."""
    entries: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return entries
    except OSError as e:
        raise BrokerError(f"cannot read the password file {path}: {e.strerror}") from None
    for line in text.splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user and not line.startswith("#"):
            entries[user] = hashed
    return entries


def write_password_file(path: Path, entries: dict[str, str]) -> None:
    """Replace the password file with these username -> hash entries (mode 0600)."""
    write_private(path, "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items())))


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` atomically: a temporary file in the same folder, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise BrokerError(f"cannot write {path}: {e.strerror}") from None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of `path` between processes (CLI and web admin at once)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise BrokerError(f"cannot lock {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def set_password(path: Path, username: str, password: str, hasher: Callable[[str], str]) -> None:
    """Add or replace one account in the password file, hashed by the broker's `hasher`."""
    hashed = hasher(password)
    with _file_lock(path):
        entries = read_password_file(path)
        entries[username] = hashed
        write_password_file(path, entries)


def delete_password(path: Path, username: str) -> bool:
    """Remove one account from the password file; False if it was not there."""
    with _file_lock(path):
        entries = read_password_file(path)
        if entries.pop(username, None) is None:
            return False
        write_password_file(path, entries)
    return True


class _BufferedSocket:
    """A plain TCP socket whose reads come from one large recv() at a time.

    paho reads each packet in small pieces (a byte, the length, the rest): several system calls
    per message, the ingest's largest cost at thousands of events a second. paho asks
    `pending()` before waiting in select (as it does for TLS sockets), so buffered bytes are
    never left waiting.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._data):
            data = self._sock.recv(65536)  # BlockingIOError passes through, as paho expects
            if not data:
                return b""
            self._data, self._pos = data, 0
        out = self._data[self._pos:self._pos + bufsize]
        self._pos += len(out)
        return out

    def pending(self) -> int:
        return len(self._data) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _BufferedClient(mqtt.Client):
    """paho's client with buffered reads on plain TCP (TLS sockets buffer already)."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return sock if isinstance(sock, ssl.SSLSocket) else _BufferedSocket(sock)


def mqtt_client(cfg: MqttConfig, account: MqttAccount, client_id: str, *, manual_ack: bool = False,
                buffered: bool = False, persistent: bool = False) -> mqtt.Client:
    """A paho client logged in as a central account, with TLS if configured.

    MQTT 5 or 3.1.1 as `cfg.protocol` says; under 3.1.1 `persistent` asks for a kept session
    (clean_session false), which MQTT 5 asks for at connect time (clean_start, session expiry).
    """
    password = account.resolved_password()
    if not password:
        raise BrokerError(
            f"no MQTT password for {account.username}: set ${account.password_env} or the"
            f" {account.password_credential} credential"
        )
    client_class = _BufferedClient if buffered else mqtt.Client
    if cfg.protocol == "5":
        client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                              protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    else:
        client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                              protocol=mqtt.MQTTv311, manual_ack=manual_ack, clean_session=not persistent)
    client.username_pw_set(account.username, password)
    if cfg.tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect_first(client: mqtt.Client, cfg: MqttConfig, **v5: Any) -> tuple[str, int]:
    """Connect to the first broker address that answers (a cluster's nodes in turn).

    `v5` are MQTT 5 connect arguments (clean_start, properties), left out under 3.1.1. Raises
    BrokerError naming every address tried when none answers.
    """
    problems = []
    for host, port in cfg.addresses():
        try:
            client.connect(host, port, keepalive=cfg.keepalive_s, **(v5 if cfg.protocol == "5" else {}))
            return host, port
        except OSError as e:
            problems.append(f"{host}:{port}: {e}")
    raise BrokerError(f"cannot reach the broker: {'; '.join(problems)}")


def next_address(client: mqtt.Client, cfg: MqttConfig) -> str | None:
    """Point a closed client at the next broker address (call it on disconnect or a failed
    reconnect, before paho's loop reconnects); returns it, or None on a single broker."""
    addresses = cfg.addresses()
    if len(addresses) < 2:
        return None
    try:
        at = addresses.index((client.host, client.port))
    except ValueError:
        at = -1
    host, port = addresses[(at + 1) % len(addresses)]
    try:
        client.host, client.port = host, port
    except RuntimeError:  # still open: paho reconnects where it was
        return None
    return f"{host}:{port}"
