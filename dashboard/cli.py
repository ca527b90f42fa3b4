"""`chot dashboard ...`: thin commands over the central service's library calls."""

from __future__ import annotations

import logging
import os
import signal
import threading
from functools import wraps
from pathlib import Path
from typing import Any

import click

from common.typedconfig import ConfigError
from dashboard.config import DashboardConfig, load_config
from protocol import topics

logger = logging.getLogger(__name__)

NEW_USER_PASSWORD_ENV = "CHOT_NEW_USER_PASSWORD"
NEW_OFFICER_PIN_ENV = "CHOT_NEW_OFFICER_PIN"


def _config(ctx: click.Context) -> DashboardConfig:
    return ctx.obj["config"]  # type: ignore[no-any-return]


def _store(ctx: click.Context) -> Any:
    from dashboard.store import StoreError, open_store  # noqa: PLC0415 - keeps --help fast

    cfg = _config(ctx)
    try:
        return open_store(cfg.store_target(), pool_size=cfg.store.pool_size)
    except StoreError as e:
        raise click.ClickException(str(e)) from None


def _store_name(cfg: DashboardConfig) -> str:
    """The store as a person may read it: a path, or the URL without its password."""
    from dashboard.store import is_postgres_url  # noqa: PLC0415

    target = cfg.store_target()
    if is_postgres_url(target):
        from dashboard.store.postgres import redact_url  # noqa: PLC0415

        return redact_url(target)
    return target


def _fail_readably(func: Any) -> Any:
    """Turn the library's readable errors into click errors instead of tracebacks."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from dashboard.broker import BrokerError  # noqa: PLC0415
        from dashboard.officers import OfficerError  # noqa: PLC0415
        from dashboard.scope import ScopeError  # noqa: PLC0415
        from dashboard.store import StoreError  # noqa: PLC0415
        from dashboard.trust import TrustPublishError  # noqa: PLC0415

        try:
            return func(*args, **kwargs)
        except (BrokerError, OfficerError, ScopeError, StoreError, TrustPublishError) as e:
            raise click.ClickException(str(e)) from None

    return wrapper


@click.group()
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), envvar="CHOT_DASHBOARD_CONFIG",
              help="Central config TOML (default: $CHOT_DASHBOARD_CONFIG, else built-in defaults).")
@click.pass_context
def dashboard(ctx: click.Context, config_path: str | None) -> None:
    """The central service: broker accounts, device registry, ingest, web dashboard, trust publishing."""
    try:
        ctx.obj = {"config": load_config(config_path)}
    except ConfigError as e:
        raise click.ClickException(f"config {config_path or '(defaults)'}: {e}") from None


@dashboard.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Check the config file and print the resolved paths (secrets are not shown)."""
    cfg = _config(ctx)
    click.echo(f"store: {_store_name(cfg)}")
    click.echo(f"broker config: {cfg.broker.mosquitto_conf}")
    click.echo(f"mqtt: {cfg.mqtt.host}:{cfg.mqtt.port} tls={cfg.mqtt.tls}")
    for name, account in (("ingest", cfg.mqtt.ingest), ("dashboard", cfg.mqtt.dashboard)):
        state = "set" if account.resolved_password() else "MISSING"
        click.echo(f"{name} account: {account.username} (password {state})")


@dashboard.command()
@click.pass_context
@_fail_readably
def init(ctx: click.Context) -> None:
    """Create the store and write the broker's config, service accounts and ACL."""
    from dashboard.devices import init_broker  # noqa: PLC0415

    cfg = _config(ctx)
    store = _store(ctx)
    try:
        made = init_broker(store, cfg)
    finally:
        store.close()
    click.echo(f"store ready: {_store_name(cfg)}")
    click.echo(f"broker config written: {cfg.broker.mosquitto_conf} (start: mosquitto -c {cfg.broker.mosquitto_conf})")
    for name, password in made.items():
        account = getattr(cfg.mqtt, name)
        click.echo(f"generated {name} password (shown once; store it as ${account.password_env} or the "
                   f"{account.password_credential} credential): {password}")
    from dashboard.officers import load_or_create_key  # noqa: PLC0415

    load_or_create_key(cfg)
    click.echo(f"roster key: {cfg.officers.key_file} (give `chot dashboard roster-key` to the ministry for the "
               "trust bundle)")


@dashboard.command("roster-key")
@click.pass_context
@_fail_readably
def roster_key(ctx: click.Context) -> None:
    """Print the public roster key (PEM) for the ministry's trust bundle (`chot keys bundle --roster-key`)."""
    from dashboard.officers import public_pem  # noqa: PLC0415

    click.echo(public_pem(_config(ctx)), nl=False)


@dashboard.command("add-officer")
@click.argument("checkpoint")
@click.argument("officer_id")
@click.option("--name", required=True, help="The officer's name as shown on the unit (staff data).")
@click.option("--role", type=click.Choice(["police", "health", "supervisor", "staff"]), default="police",
              show_default=True, help="Role.")
@click.option("--no-publish", is_flag=True, help="Do not publish the roster now (several changes at once).")
@click.pass_context
@_fail_readably
def add_officer(ctx: click.Context, checkpoint: str, officer_id: str, name: str, role: str, no_publish: bool) -> None:
    """Add an officer (or give them a new PIN) and publish the checkpoint's roster.

    The PIN is read from $CHOT_NEW_OFFICER_PIN, else a random 6-digit PIN is made and shown once.
    """
    from dashboard import officers  # noqa: PLC0415

    pin = os.environ.get(NEW_OFFICER_PIN_ENV)
    shown = pin is None
    pin = pin or officers.new_pin()
    store = _store(ctx)
    try:
        officers.add_officer(store, _config(ctx), checkpoint, officer_id, name, role, pin, publish=not no_publish)
    finally:
        store.close()
    click.echo(f"officer {officer_id} at {checkpoint} saved" + ("" if no_publish else "; roster published"))
    if shown:
        click.echo(f"PIN (shown once): {pin}")


@dashboard.command("remove-officer")
@click.argument("checkpoint")
@click.argument("officer_id")
@click.pass_context
@_fail_readably
def remove_officer(ctx: click.Context, checkpoint: str, officer_id: str) -> None:
    """Revoke an officer at a checkpoint and publish the roster without them."""
    from dashboard import officers  # noqa: PLC0415

    store = _store(ctx)
    try:
        known = officers.remove_officer(store, _config(ctx), checkpoint, officer_id)
    finally:
        store.close()
    if not known:
        raise click.ClickException(f"officer {officer_id!r} is not registered at {checkpoint!r}")
    click.echo(f"officer {officer_id} at {checkpoint} revoked; roster published")


@dashboard.command("publish-rosters")
@click.argument("checkpoints", nargs=-1)
@click.pass_context
@_fail_readably
def publish_rosters(ctx: click.Context, checkpoints: tuple[str, ...]) -> None:
    """Publish fresh signed rosters (new version and expiry) for these checkpoints, or all with officers.

    Run it daily (a timer): a unit that hears no roster before the old one expires stops taking sign-ins.
    """
    from dashboard import officers  # noqa: PLC0415

    store = _store(ctx)
    try:
        records = officers.publish_all(store, _config(ctx), list(checkpoints) or None)
    finally:
        store.close()
    for record in records:
        click.echo(f"roster version {record.version} for {record.checkpoint} published")


@dashboard.command("add-device")
@click.argument("device_id")
@click.option("--checkpoint", required=True, help="Checkpoint id (used in MQTT topics).")
@click.option("--district", help="District code (needed the first time a checkpoint is named).")
@click.option("--province", help="Province code (needed the first time a checkpoint is named).")
@click.option("--name", "checkpoint_name", help="Checkpoint display name.")
@click.option("--policy", help="Checkpoint policy name (e.g. vn-2021).")
@click.pass_context
@_fail_readably
def add_device(ctx: click.Context, device_id: str, checkpoint: str, district: str | None, province: str | None,
               checkpoint_name: str | None, policy: str | None) -> None:
    """Register a unit, create its broker login (password shown once) and reload the broker."""
    from dashboard import devices  # noqa: PLC0415

    if (district is None) != (province is None):
        raise click.UsageError("give both --district and --province, or neither")
    store = _store(ctx)
    try:
        creds = devices.add_device(store, _config(ctx), device_id, checkpoint, district, province,
                                   checkpoint_name, policy)
    finally:
        store.close()
    click.echo(f"device {creds.device} registered at {creds.checkpoint}")
    click.echo(f"mqtt username: {creds.device}")
    click.echo(f"mqtt password (shown once): {creds.password}")
    click.echo(f"publishes under: {creds.topic_prefix()}/")


@dashboard.command("remove-device")
@click.argument("device_id")
@click.pass_context
@_fail_readably
def remove_device(ctx: click.Context, device_id: str) -> None:
    """Revoke a unit: delete its login and ACL entry and reload the broker (its counts stay)."""
    from dashboard import devices  # noqa: PLC0415

    store = _store(ctx)
    try:
        known = devices.remove_device(store, _config(ctx), device_id)
    finally:
        store.close()
    if not known:
        raise click.ClickException(f"device {device_id!r} is not registered")
    click.echo(f"device {device_id} revoked")


@dashboard.command("rotate-password")
@click.argument("device_id")
@click.pass_context
@_fail_readably
def rotate_password(ctx: click.Context, device_id: str) -> None:
    """Give a unit a new broker password (shown once); the old one stops working at once."""
    from dashboard import devices  # noqa: PLC0415

    store = _store(ctx)
    try:
        creds = devices.rotate_password(store, _config(ctx), device_id)
    finally:
        store.close()
    click.echo(f"device {creds.device} has a new password")
    click.echo(f"mqtt password (shown once): {creds.password}")


@dashboard.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "province_admin", "supervisor", "viewer"]), required=True,
              help="Account role (province_admin: manages accounts and units of its --scope province:<code>).")
@click.option("--scope", "scopes", multiple=True,
              help="Visible area: province:<code>, district:<code>, checkpoint:<id> or all (repeatable).")
@click.option("--language", type=click.Choice(["vi", "en"]), default="vi", show_default=True, help="UI language.")
@click.pass_context
@_fail_readably
def create_user(ctx: click.Context, username: str, role: str, scopes: tuple[str, ...], language: str) -> None:
    """Create a dashboard account; password from $CHOT_NEW_USER_PASSWORD or a prompt."""
    from dashboard.scope import Scope  # noqa: PLC0415
    from dashboard.web.auth import MIN_PASSWORD_LENGTH, hash_password  # noqa: PLC0415

    scope = Scope.parse(scopes)
    if role != "admin" and scope.is_empty:
        raise click.UsageError("a supervisor or viewer needs at least one --scope")
    if role == "province_admin" and (scope.everything or scope.districts or scope.checkpoints):
        raise click.UsageError("a province admin's --scope must be whole provinces (province:<code>)")
    password = os.environ.get(NEW_USER_PASSWORD_ENV) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    store = _store(ctx)
    try:
        user = store.create_user(username, hash_password(password), role, scope, language)
    finally:
        store.close()
    click.echo(f"user {user.username} created ({user.role}; {', '.join(user.scope.entries()) or 'no area'})")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@dashboard.command()
@click.option("--worker", type=click.IntRange(min=1), default=1, show_default=True,
              help="Which of the ingest.workers processes this is (each has its own broker account).")
@click.pass_context
@_fail_readably
def ingest(ctx: click.Context, worker: int) -> None:
    """Run the MQTT ingest (or one of several workers) until SIGTERM/SIGINT."""
    from dashboard.ingest import run_ingest  # noqa: PLC0415

    workers = _config(ctx).ingest.workers
    if worker > workers:
        raise click.UsageError(f"--worker {worker} is above ingest.workers ({workers})")
    store = _store(ctx)
    try:
        stats = run_ingest(store, _config(ctx), _stop_on_signals(), worker=worker)
    finally:
        store.close()
    click.echo(f"ingest stopped: {stats.stored} stored, {stats.duplicates} duplicates, "
               f"{stats.rejected_total} rejected")


@dashboard.command()
@click.option("--host", help="Listen address (default: web.host from the config).")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port (default: web.port from the config).")
@click.option("--dev", is_flag=True, help="Flask's development server instead (debugging only).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, dev: bool) -> None:
    """Run the web dashboard (waitress) until SIGTERM/SIGINT."""
    from dashboard.serve import DashboardServer, ServeError  # noqa: PLC0415
    from dashboard.web import create_app  # noqa: PLC0415

    cfg = _config(ctx)
    _store(ctx).close()  # an unreachable or unusable store stops the start with its reason
    app = create_app(cfg)
    if dev:
        app.run(host=host or cfg.web.host, port=cfg.web.port if port is None else port, threaded=True,
                use_reloader=False)
        return
    try:
        server = DashboardServer(app, cfg.web, host, port)
    except ServeError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"dashboard on {server.url} ({cfg.web.threads} page threads, up to {cfg.web.max_streams} live streams)")
    stats = server.serve_until(_stop_on_signals())
    click.echo(f"dashboard stopped: {stats.pages} requests, {stats.streams} live streams "
               f"({stats.streams_refused} refused, {stats.streams_open} closed at the stop)")


@dashboard.command()
@click.option("--keep-days", type=click.IntRange(min=1), default=90, show_default=True,
              help="Keep single events received in this many days; older ones go (counts stay).")
@click.pass_context
@_fail_readably
def prune(ctx: click.Context, keep_days: int) -> None:
    """Delete old single events to bound the store's size; per-minute counts are kept."""
    from datetime import datetime, timedelta, timezone  # noqa: PLC0415

    store = _store(ctx)
    try:
        deleted = store.prune_events(datetime.now(timezone.utc) - timedelta(days=keep_days))
    finally:
        store.close()
    click.echo(f"{deleted} events older than {keep_days} days deleted; counts unchanged")


@dashboard.command("migrate-store")
@click.option("--to", "to_url", help="postgresql:// URL of a new, empty database (default: store.url).")
@click.option("--from", "from_path", type=click.Path(exists=True, dir_okay=False),
              help="SQLite store to copy (default: the config's database path).")
@click.pass_context
@_fail_readably
def migrate_store(ctx: click.Context, to_url: str | None, from_path: str | None) -> None:
    """Copy a SQLite store into PostgreSQL, then check every table's rows and digest match.

    Stop the ingest and the web app first (or accept that what they write meanwhile stays behind);
    afterwards set store.url and start them on PostgreSQL.
    """
    from dashboard.store import SqliteStore, is_postgres_url  # noqa: PLC0415
    from dashboard.store.postgres import PostgresStore  # noqa: PLC0415
    from dashboard.store.transfer import migrate_store as move  # noqa: PLC0415

    cfg = _config(ctx)
    url = to_url or cfg.store.resolved_url()
    if not url or not is_postgres_url(url):
        raise click.UsageError("give --to postgresql://... (or set store.url)")
    source_path = from_path or str(cfg.database)
    if not Path(source_path).is_file():
        raise click.ClickException(f"no SQLite store at {source_path} to copy (give --from)")
    source = SqliteStore(source_path)
    try:
        target = PostgresStore(url, pool_size=2)
        try:
            click.echo(f"copying {source.path} to {target.location}")
            checks = move(source, target, progress=lambda table, n: click.echo(f"  {table}: {n} rows"))
        finally:
            target.close()
    finally:
        source.close()
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'DIFF'} {check.table}: {check.source_rows} -> {check.target_rows} rows,"
                   f" digest {check.source_digest[:16]}{'' if check.ok else ' != ' + check.target_digest[:16]}")
    if not all(check.ok for check in checks):
        raise click.ClickException("the copy does not match the source: do not switch to it")
    click.echo(f"store copied and checked: {sum(c.target_rows for c in checks)} rows in {len(checks)} tables match;"
               " set store.url to use it")


@dashboard.command("publish-trust")
@click.argument("bundle", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--republish", is_flag=True, help="Publish the newest accepted bundle again instead.")
@click.pass_context
@_fail_readably
def publish_trust(ctx: click.Context, bundle: Path | None, republish: bool) -> None:
    """Check a signed trust bundle (anchor, newer version), publish it retained, keep it."""
    from dashboard import trust  # noqa: PLC0415

    if (bundle is None) == (not republish):
        raise click.UsageError("give a BUNDLE file or --republish")
    store = _store(ctx)
    try:
        if republish:
            record = trust.republish_latest(store, _config(ctx))
        else:
            assert bundle is not None
            record = trust.accept_bundle(store, _config(ctx), bundle.read_bytes(), uploaded_by="cli")
    finally:
        store.close()
    click.echo(f"trust bundle version {record.version} published on {topics.TRUST}")
