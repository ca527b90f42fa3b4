"""The `chot` command: a thin click group that gathers each package's own commands."""

from __future__ import annotations

import importlib
import logging

import click

from common import __version__

# (module, attribute) of each sub-command; imported lazily so `chot verify` does not load Flask.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("chot.verify_cli", "verify"),
    "conformance": ("chot.verify_cli", "conformance"),
    "keys": ("keys.cli", "keys"),
    "scanner": ("scanner.cli", "scanner"),
    "dashboard": ("dashboard.cli", "dashboard"),
    "demo": ("chot.demo", "demo"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = _SUBCOMMANDS.get(name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        return getattr(module, target[1])


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="chot")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """chot: verify vaccination certificates at checkpoints, offline, and count them exactly."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
