"""The national broker's files: one config per NATS node, and the accounts file they include.

A NATS cluster (3 nodes, JetStream, MQTT 3.1.1 listener on each) stands where the embedded
profile has one Mosquitto. The units' ACL becomes per-user NATS permissions on subjects (an MQTT
topic `chot/v1/CP/dev/event` is the subject `chot.v1.CP.dev.event`). The accounts file is
regenerated from the device registry on every change and every node is told to reread it
(`nats-server --signal reload=<pid>`), which also cuts the connections of removed users.

Passwords are bcrypt hashes (the only hash NATS reads). The cost is low on purpose: every
password is a random 144-bit token, which no cost factor needs to protect, while a cluster node
checks hundreds of units' passwords at once when they all move to it after a node loss.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import string
from collections.abc import Iterable, Sequence
from pathlib import Path

from dashboard.broker.base import Broker, BrokerError, DeviceGrant, read_password_file, write_private
from dashboard.config import BrokerConfig, NatsNode
from protocol import topics

logger = logging.getLogger(__name__)

BCRYPT_COST = 6
ACCOUNT = "CHOT"
# Where nats-server delivers an MQTT client's QoS 1 subscriptions (a JetStream consumer's
# delivery subject `$MQTT.sub.<nuid>`): the one server subject an MQTT user must be allowed
# to subscribe to (NATS docs, MQTT configuration, "Special permissions").
MQTT_DELIVERY = "$MQTT.sub.>"
# What the ingest's JetStream consumer needs besides its data subjects, scoped to its own
# stream (dashboard/ingest/jetstream.py): stream info and creation, consumer creation, info and
# pulls, acks; replies come on its inbox.
EVENT_STREAM = "CHOT_EVENTS"
JS_INGEST = ["$JS.API.INFO", f"$JS.API.STREAM.*.{EVENT_STREAM}", f"$JS.API.CONSUMER.*.{EVENT_STREAM}.>",
             f"$JS.API.CONSUMER.*.*.{EVENT_STREAM}.>", f"$JS.ACK.{EVENT_STREAM}.>"]
INBOX = "_INBOX.>"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def hash_password(password: str) -> str:
    """A bcrypt hash nats-server accepts (`$2b$...`)."""
    import bcrypt  # national profile only: the embedded default does not need it

    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(BCRYPT_COST)).decode("ascii")


def subject(topic: str) -> str:
    """The NATS subject of an MQTT topic, as nats-server maps it ('/' -> '.', '.' -> '//')."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


def wildcard(topic_filter: str) -> str:
    """The NATS subject filter of an MQTT topic filter with single-level wildcards ('+' -> '*')."""
    return ".".join("*" if level == "+" else level.replace(".", "//") for level in topic_filter.split("/"))


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _user(name: str, hashed: str, publish: list[str], subscribe: list[str], kinds: list[str]) -> str:
    if not _SAFE.match(name) or '"' in hashed or "\n" in hashed:
        raise BrokerError(f"user {name!r} cannot be written into the NATS accounts file")
    return (f'      {{user: "{name}", password: "{hashed}",\n'
            f"       permissions: {{publish: {{allow: [{_quoted(publish)}]}},\n"
            f"                     subscribe: {{allow: [{_quoted(subscribe)}]}}}},\n"
            f"       allowed_connection_types: [{_quoted(kinds)}]}}")


def device_permissions(grant: DeviceGrant) -> tuple[list[str], list[str]]:
    """(publish, subscribe) subjects of one unit: what the Mosquitto ACL grants it, no more."""
    cp, dev = grant.checkpoint, grant.device
    return ([subject(topics.event(cp, dev)), subject(topics.status(cp, dev))],
            [subject(topics.ack(cp, dev)), subject(topics.TRUST), subject(topics.roster(cp)),
             MQTT_DELIVERY])


def ingest_permissions() -> tuple[list[str], list[str]]:
    """(publish, subscribe) of the ingest: reads events and status, writes acks.

    It may read them as an MQTT client or as a JetStream consumer of the event stream
    (`$JS.API` requests, replies on `_INBOX`), so both sets are granted.
    """
    return ([wildcard(topics.ALL_ACKS), *JS_INGEST],
            [wildcard(topics.ALL_EVENTS), wildcard(topics.ALL_STATUS), MQTT_DELIVERY, INBOX])


def dashboard_permissions() -> tuple[list[str], list[str]]:
    """(publish, subscribe) of the dashboard: the trust topic and the checkpoints' rosters."""
    rosters = wildcard(topics.ALL_ROSTERS)
    return [subject(topics.TRUST), rosters], [subject(topics.TRUST), rosters, MQTT_DELIVERY]


def render_accounts(ingest_users: str | Sequence[str], dashboard_user: str, devices: Iterable[DeviceGrant],
                    hashes: dict[str, str]) -> str:
    """The accounts file: one JetStream account holding every user with its permissions.

    Every ingest worker's account gets the ingest's permissions. Users without a password hash
    in `hashes` are left out (they cannot log in anyway).
    """
    services = [(name, ingest_permissions(), ["MQTT", "STANDARD"])
                for name in ([ingest_users] if isinstance(ingest_users, str) else ingest_users)]
    services.append((dashboard_user, dashboard_permissions(), ["MQTT"]))
    users = []
    for name, (pub, sub), kinds in services:
        if name in hashes:
            users.append(_user(name, hashes[name], pub, sub, kinds))
    for grant in sorted(devices, key=lambda g: g.device):
        if grant.device in hashes:
            pub, sub = device_permissions(grant)
            users.append(_user(grant.device, hashes[grant.device], pub, sub, ["MQTT"]))
    body = ",\n".join(users)
    return ("# Generated by chot dashboard from the device registry: do not edit by hand.\n"
            f"accounts {{\n  {ACCOUNT}: {{\n    jetstream: enabled\n    users: [\n{body}\n    ]\n  }}\n}}\n")


def _template_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise BrokerError(f"cannot read the NATS node template {path}: {e.strerror}") from None


def node_dir(cfg: BrokerConfig, node: NatsNode) -> Path:
    """Where one node keeps its config, pid, log and JetStream store."""
    assert cfg.nats_dir is not None
    return cfg.nats_dir / node.name


def render_node_config(cfg: BrokerConfig, node: NatsNode) -> str:
    """One node's config rendered from the shipped template."""
    routes = _quoted(f"nats-route://{n.host}:{n.cluster_port}" for n in cfg.nodes if n.name != node.name)
    here = node_dir(cfg, node)
    try:
        return string.Template(_template_text(cfg.nats_template)).substitute(
            server_name=node.name, pid_file=here / "nats.pid", log_file=here / "nats.log",
            client_host=node.host, client_port=node.client_port, cluster_name=cfg.cluster_name,
            cluster_host=node.host, cluster_port=node.cluster_port, routes=routes,
            store_dir=here / "jetstream", max_file_store=cfg.max_file_store, mqtt_host=node.host,
            mqtt_port=node.mqtt_port, replicas=min(3, len(cfg.nodes)),
            # nats-server reads an include relative to the including file, never as an absolute path.
            users_file=os.path.relpath(cfg.users_file, here),
            monitor_line=f'http: "127.0.0.1:{node.monitor_port}"' if node.monitor_port else "",
        )
    except (KeyError, ValueError) as e:
        raise BrokerError(f"NATS template {cfg.nats_template} has an unknown or bad placeholder: {e}") from None


def write_node_configs(cfg: BrokerConfig) -> list[Path]:
    """Render every node's config into `<nats_dir>/<node>/nats.conf`; returns their paths."""
    paths = []
    for node in cfg.nodes:
        here = node_dir(cfg, node)
        try:
            (here / "jetstream").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BrokerError(f"cannot create {here}: {e.strerror}") from None
        path = here / "nats.conf"
        write_private(path, render_node_config(cfg, node), mode=0o644)
        paths.append(path)
    return paths


def reload_nodes(cfg: BrokerConfig) -> int:
    """Tell every running node on this machine to reread its config; returns how many were told.

    This is what `nats-server --signal reload=<pid>` does (SIGHUP). A node that is down reads
    the new file when it starts.
    """
    told = 0
    for node in cfg.nodes:
        pid_file = node_dir(cfg, node) / "nats.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            raise BrokerError(f"pid file {pid_file} does not hold a process id") from None
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            continue
        except PermissionError:
            raise BrokerError(f"not allowed to signal NATS node {node.name} (pid {pid}); run as its user") from None
        told += 1
    if told == 0:
        logger.warning("no NATS node running here: the accounts file takes effect when they start")
    return told


class NatsBroker(Broker):
    """The national cluster: one config per node, bcrypt password file, the accounts file."""

    @property
    def password_file(self) -> Path:
        assert self.cfg.nats_password_file is not None
        return self.cfg.nats_password_file

    def hash_password(self, password: str) -> str:
        return hash_password(password)

    def write_config(self) -> list[Path]:
        return write_node_configs(self.cfg)

    def write_grants(self, ingest_users: Sequence[str], dashboard_user: str, grants: Iterable[DeviceGrant]) -> None:
        # The accounts file carries the hashes too: it is rendered from the password file.
        assert self.cfg.users_file is not None
        hashes = read_password_file(self.password_file)
        write_private(self.cfg.users_file, render_accounts(ingest_users, dashboard_user, grants, hashes))

    def reload(self) -> bool:
        return reload_nodes(self.cfg) > 0
