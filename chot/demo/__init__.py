"""`chot demo`: the whole system on one machine (see chot/demo/run.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import click


@click.command("demo")
@click.option("--duration", type=click.FloatRange(30, 24 * 3600), default=None,
              help="Stop by itself after this many seconds and check that every count arrived exactly once.")
@click.option("--port", "web_port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Dashboard port (another free port is used if it is taken).")
@click.option("--people", type=click.IntRange(10, 5000), default=300, show_default=True,
              help="How many synthetic people (certificates) to make.")
@click.option("--fps", type=click.FloatRange(1, 30), default=8.0, show_default=True,
              help="Camera frames per second of each simulated unit.")
@click.option("--difficulty", type=click.Choice(["easy", "medium", "hard"]), default="medium", show_default=True,
              help="How hard the rendered phone screens are to read.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("var/demo"),
              show_default=True, help="Folder for the demo's keys, databases and logs (emptied first).")
@click.option("--seed", type=int, default=2021, show_default=True, help="Seed for the synthetic people.")
@click.option("--json", "as_json", is_flag=True, help="With --duration: print the final reconciliation as JSON.")
@click.option("--national", is_flag=True,
              help="The national profile instead: PostgreSQL, a 3-node NATS cluster (one node is stopped and"
                   " started again), two ingest workers, two web processes behind nginx.")
def demo(duration: float | None, web_port: int, people: int, fps: float, difficulty: str, workdir: Path,
         seed: int, as_json: bool, national: bool) -> None:
    """Run a ministry, broker, ingest, dashboard and four checkpoint units on this machine."""
    import json

    from chot.demo.run import Demo

    kind: type[Demo] = Demo
    if national:
        from chot.demo.national import NationalDemo

        kind = NationalDemo
    d = kind(workdir, web_port=web_port, people=people, seed=seed, fps=fps, duration=duration,
             difficulty=difficulty)
    signal.signal(signal.SIGINT, lambda *_: d.stop_requested())
    signal.signal(signal.SIGTERM, lambda *_: d.stop_requested())
    try:
        d.setup()
        d.start()
        d.banner()
        rec = d.run()
    except Exception as e:  # noqa: BLE001 - whatever failed, the demo's services must be shut down
        d.shutdown()
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(rec.as_dict(), sort_keys=True))
    else:
        click.echo("Reconciliation (unit counts vs dashboard counts, per device):")
        for device in sorted(rec.produced):
            stored = dict(sorted(rec.stored.get(device, {}).items()))  # the same order as the unit's
            click.echo(f"  {device:<14} units {dict(sorted(rec.produced[device].items()))}  dashboard {stored}"
                       f"  still queued {rec.pending[device]}")
        if not rec.exact:
            click.echo("  MISMATCH: dashboard + still queued differs from what the units produced")
        elif rec.delivered:
            click.echo("  exact: nothing lost, nothing doubled, everything delivered")
        else:
            click.echo("  exact: nothing lost, nothing doubled; what is still queued stays in the units'"
                       " outboxes and is delivered when they next connect")
    if duration is not None and not (rec.exact and rec.delivered):
        raise SystemExit(1)
