"""`chot scanner update ...`: look at, check, provision and recover a unit's software releases."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from common.typedconfig import ConfigError

if TYPE_CHECKING:
    from scanner.update.config import UpdateSection


def _update_config(config_file: Path) -> UpdateSection:
    from scanner.config import load_unit_config

    try:
        config = load_unit_config(config_file)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if config.update is None:
        raise click.ClickException(f"{config_file}: no [update] section: this unit is updated by hand")
    return config.update


@click.group()
def update() -> None:
    """Signed software updates of this unit (TUF channel, A/B releases, health gate)."""


@update.command("status")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="The unit's TOML config.")
def status(config_file: Path) -> None:
    """Print the releases installed, which runs, which is good, and the update in progress or last failed."""
    from scanner.update.layout import Layout

    layout = Layout(_update_config(config_file).root)
    click.echo(json.dumps({"current": layout.pointed("current"), "good": layout.pointed("good"),
                           "installed": layout.installed(), **asdict(layout.load())}, indent=2))


@update.command("check")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="The unit's TOML config.")
def check(config_file: Path) -> None:
    """Check the channel now; download, verify and stage a newer release (the running unit switches to it
    between people)."""
    from scanner.update.agent import CHECK_NOW, stage_release
    from scanner.update.layout import Layout

    cfg = _update_config(config_file)
    layout = Layout(cfg.root)
    staged = stage_release(cfg, layout, layout.pointed("current"))
    state = layout.load()
    if staged is None:
        failure = state.last_failure or {}
        if failure and failure.get("at", 0) >= state.updated_at - 1:
            raise click.ClickException(f"{failure.get('code')}: {failure.get('reason')}")
        refused = f" (not taking {', '.join(state.bad_versions)}: failed its health gate here)" \
            if state.bad_versions else ""
        click.echo(f"up to date: {layout.pointed('current')}{refused}")
        return
    (layout.root / CHECK_NOW).touch()  # wake a running unit's updater
    click.echo(f"staged {staged}; the unit switches to it between people")


@update.command("provision")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path), help="The unit's TOML config.")
def provision(config_file: Path) -> None:
    """First install on a new unit: fetch the channel's release through TUF and make it current and good."""
    from scanner.update.channel import UpdateChannel
    from scanner.update.errors import UpdateError
    from scanner.update.layout import Layout

    cfg = _update_config(config_file)
    layout = Layout(cfg.root)
    if layout.pointed("current") is not None:
        raise click.ClickException(f"{cfg.root} already runs {layout.pointed('current')}; use `check`")
    try:
        channel = UpdateChannel(layout.tuf_dir, cfg.root_file.read_bytes(), cfg.metadata_url, cfg.targets_url,
                                cfg.channel)
        offer = channel.check(None)
        if offer is None:
            raise click.ClickException(f"channel {cfg.channel} has no release yet")
        with layout.locked():
            version = layout.install_first(channel.download(offer, layout.staging))
            layout.clean_partials()
    except UpdateError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"installed {version} as current and good under {cfg.root}")


@update.command("recover")
@click.argument("root", type=click.Path(path_type=Path))
def recover(root: Path) -> None:
    """What the service runs before each start: finish or undo an interrupted update under ROOT."""
    from scanner.update.guard import main

    raise SystemExit(main([str(root)]))
