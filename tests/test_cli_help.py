"""Every `chot` command and sub-command has help text (and --help works without side effects)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from chot.cli import main


def _walk(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path + [name])} is listed but cannot be loaded"
            yield from _walk(sub, path + [name])


def test_every_command_has_help() -> None:
    runner = CliRunner()
    seen = 0
    for path, cmd in _walk(main, []):
        assert (cmd.help or "").strip(), f"`chot {' '.join(path)}` has no help text"
        result = runner.invoke(main, path + ["--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        seen += 1
    assert seen >= 6
