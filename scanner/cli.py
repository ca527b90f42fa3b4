"""`chot scanner ...`: run a checkpoint unit, or check its config file."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from common.typedconfig import ConfigError

logger = logging.getLogger(__name__)


@click.group()
def scanner() -> None:
    """The checkpoint unit: camera, verdicts, officer screen, reporting."""


@scanner.command("check-config")
@click.argument("config_file", type=click.Path(path_type=Path))
def check_config(config_file: Path) -> None:
    """Check CONFIG_FILE: print each problem as `key.path: message` and exit 1 if there is one."""
    from scanner.config import check_files, load_unit_config

    try:
        config = load_unit_config(config_file)
    except ConfigError as e:
        click.echo(str(e), err=True)
        raise SystemExit(1) from None
    problems = check_files(config)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{config_file}: ok (unit {config.unit.device_id} at {config.unit.checkpoint}, "
               f"policy {config.unit.policy}, camera {config.camera.backend})")


@scanner.command("run")
@click.option("--config", "config_file", required=True, type=click.Path(path_type=Path),
              help="The unit's TOML config file.")
def run(config_file: Path) -> None:
    """Run the unit until SIGTERM or SIGINT (Ctrl-C)."""
    from scanner.config import check_files, load_unit_config
    from scanner.unit import Unit, UnitError

    try:
        config = load_unit_config(config_file)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    problems = check_files(config)
    if problems:
        raise click.ClickException("; ".join(str(p) for p in problems))
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    unit = Unit(config)
    try:
        unit.run(stop)
    except UnitError as e:
        raise click.ClickException(str(e)) from None
    if unit.restart_reason is not None:  # a release switch: systemd starts it again (RestartForceExitStatus)
        from scanner.update.agent import EXIT_RESTART

        raise SystemExit(EXIT_RESTART)


def _add_update_commands() -> None:
    from scanner.update.cli import update

    scanner.add_command(update)


_add_update_commands()
