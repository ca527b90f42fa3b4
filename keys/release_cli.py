"""`chot keys release ...`: the ministry publishes software releases of the unit through TUF metadata."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from keys import keystore

_PASS = click.option("--passphrase", default=None, help=f"Role keys' passphrase (else ${keystore.PASSPHRASE_ENV}, "
                     "else a prompt).")


def _passphrase(given: str | None, confirm: bool = False) -> str:
    import sys

    def ask() -> str:
        return str(click.prompt("Role keys passphrase", hide_input=True, confirmation_prompt=confirm))

    return keystore.resolve_passphrase(given, prompt=ask if sys.stdin.isatty() else None)


@click.group()
def release() -> None:
    """Signed software releases for the units (TUF repository: root, targets, snapshot, timestamp)."""


@release.command("init")
@click.argument("repo_dir", type=click.Path(path_type=Path))
@_PASS
def init(repo_dir: Path, passphrase: str | None) -> None:
    """Create REPO_DIR: four role keys and the first metadata; serve REPO_DIR/public over HTTP(S)."""
    from keys.releases import ReleaseRepo

    repo = ReleaseRepo.create(repo_dir, _passphrase(passphrase, confirm=True))
    click.echo(f"release repository at {repo_dir}; give units {repo.metadata_dir / '1.root.json'} "
               "as update.root_file and keep REPO_DIR/keys offline")


@release.command("build")
@click.option("--source", type=click.Path(path_type=Path, file_okay=False), default=Path("."), show_default=True,
              help="The chot source tree to pack.")
@click.option("--version", "version", required=True, help="Release version, dotted numbers (1.4.0).")
@click.argument("out", type=click.Path(path_type=Path))
def build(source: Path, version: str, out: Path) -> None:
    """Pack the unit's application (chot, common, keys, protocol, scanner, verifier) as a release archive OUT."""
    from keys.releases import build_release

    build_release(source, version, out)
    click.echo(f"{out}: release {version}")


@release.command("publish")
@click.argument("repo_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--version", "version", required=True, help="The archive's release version.")
@click.option("--channel", default="stable", show_default=True,
              help="Channel to point at the release; 'none' publishes it on no channel (then `rollout`).")
@_PASS
def publish(repo_dir: Path, archive: Path, version: str, channel: str, passphrase: str | None) -> None:
    """Add ARCHIVE as a release and point CHANNEL at it (targets, snapshot and timestamp re-signed)."""
    from keys.releases import ReleaseRepo

    repo = ReleaseRepo.open(repo_dir, _passphrase(passphrase))
    target = repo.add_release(archive, version, channel=None if channel == "none" else channel)
    click.echo(f"published {target} on channel {channel} (targets version {repo.targets().version})")


@release.command("promote")
@click.argument("repo_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--version", "version", required=True, help="A release already published.")
@click.option("--channel", required=True, help="The ring's channel to point at it (e.g. canary, hanoi, stable).")
@_PASS
def promote(repo_dir: Path, version: str, channel: str, passphrase: str | None) -> None:
    """Point CHANNEL (a ring of units) at a published release: the staged rollout's next step."""
    from keys.releases import ReleaseRepo

    ReleaseRepo.open(repo_dir, _passphrase(passphrase)).promote(version, channel)
    click.echo(f"channel {channel} -> {version}")


@release.command("timestamp")
@click.argument("repo_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--hours", type=float, default=24.0, show_default=True, help="Validity of the new timestamp.")
@_PASS
def timestamp(repo_dir: Path, hours: float, passphrase: str | None) -> None:
    """Re-sign the timestamp (run from cron well within its validity, or units see a frozen channel)."""
    from keys.releases import ReleaseRepo

    repo = ReleaseRepo.open(repo_dir, _passphrase(passphrase))
    version = repo.refresh_timestamp(expiry=dt.timedelta(hours=hours))
    click.echo(f"timestamp version {version}, valid {hours:g} h")


@release.command("list")
@click.argument("repo_dir", type=click.Path(path_type=Path, file_okay=False))
def list_releases(repo_dir: Path) -> None:
    """Print the published releases and the channel pointers (no keys needed)."""
    from keys.releases import ReleaseRepo

    repo = ReleaseRepo(repo_dir, {})
    channels = {p.split("/", 1)[1].removesuffix(".json"): None for p in repo.targets().targets
                if p.startswith("channels/")}
    click.echo(json.dumps({"releases": repo.releases(),
                           "channels": {name: repo.channel(name) for name in channels}}, indent=2))


@release.command("rollout")
@click.argument("repo_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--version", "version", required=True, help="A published release.")
@click.option("--ring", "rings", multiple=True, required=True, metavar="CHANNEL=CP/DEV,CP/DEV",
              help="A ring, in order: its channel and its units (repeat: canary first, stable last).")
@click.option("--mqtt", "mqtt_address", default="127.0.0.1:1883", show_default=True,
              help="Broker holding the units' retained status topics.")
@click.option("--mqtt-user", default=None, help="MQTT username (password from $CHOT_MQTT_PASSWORD).")
@click.option("--ring-timeout", type=float, default=3600.0, show_default=True,
              help="Seconds every unit of a ring has to take the release.")
@_PASS
def rollout(repo_dir: Path, version: str, rings: tuple[str, ...], mqtt_address: str, mqtt_user: str | None,
            ring_timeout: float, passphrase: str | None) -> None:
    """Promote VERSION ring by ring; stop with an ALARM (exit 1) when a ring's units roll it back."""
    import os

    from common.localnet import parse_address
    from keys.releases import ReleaseRepo
    from keys.rollout import MqttStatuses, Ring, run_rollout

    parsed = []
    for spec in rings:
        channel, _, units = spec.partition("=")
        if not units:
            raise click.BadParameter(f"{spec!r}: use CHANNEL=CP/DEV,CP/DEV", param_hint="--ring")
        parsed.append(Ring(channel.strip(), tuple(u.strip() for u in units.split(",") if u.strip())))
    repo = ReleaseRepo.open(repo_dir, _passphrase(passphrase))
    try:
        host, port = parse_address(mqtt_address, 1883)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--mqtt") from None
    statuses = MqttStatuses(host, port, username=mqtt_user, password=os.environ.get("CHOT_MQTT_PASSWORD"))
    try:
        for report in run_rollout(repo, version, parsed, statuses, ring_timeout_s=ring_timeout,
                                  on_report=lambda r: click.echo(f"{r.channel}: {len(r.updated)} updated, "
                                                                 f"{len(r.waiting)} waiting", err=True)):
            click.echo(f"ring {report.channel}: all {len(report.updated)} units run {version}")
    finally:
        statuses.close()
