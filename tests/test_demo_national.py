"""`chot demo --national` end to end: PostgreSQL, a 3-node NATS cluster, two ingest workers, two
web processes behind nginx and four unit processes; one broker node is stopped and started, one
unit's link to every node is cut and restored, and the counts still reconcile exactly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.localnet import free_port

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(330)]
UNITS = {"ic7-lane1", "ic7-lane2", "thanglong-1", "yenphong-gate"}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder the PostgreSQL server (user `postgres` when the tests run as root) can reach,
    which pytest's 0700 tmp_path is not."""
    root = Path(tempfile.mkdtemp(prefix="chot-natdemo-"))
    os.chmod(root, 0o755)
    yield root / "demo"
    shutil.rmtree(root, ignore_errors=True)


def children(workdir: Path, demo_pid: int) -> dict[int, tuple[str, dict[str, str]]]:
    """pid -> (command line, environment) of every process but the demo's own naming `workdir`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == demo_pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            raw = (entry / "environ").read_bytes().decode("utf-8", "replace")
        except OSError:  # ended meanwhile
            continue
        if str(workdir) in cmdline:
            found[int(entry.name)] = (cmdline, dict(i.split("=", 1) for i in raw.split("\0") if "=" in i))
    return found


def role(cmdline: str) -> str:
    for needle, name in (("scanner run", "unit"), (" ingest ", "ingest"), (" serve ", "web"), ("nats-server", "nats"),
                         ("nginx", "nginx"), ("postgres", "postgres")):
        if needle in cmdline + " ":
            return name
    return cmdline


# The secrets each kind of process may hold (chot/demo/env.py): the store URL only where the store is opened.
OWN_SECRETS = {"unit": {"CHOT_MQTT_PASSWORD"}, "ingest": {"CHOT_INGEST_MQTT_PASSWORD", "CHOT_STORE_URL"},
               "web": {"CHOT_DASHBOARD_MQTT_PASSWORD", "CHOT_DASHBOARD_SECRET_KEY", "CHOT_STORE_URL"},
               "nats": set(), "nginx": set(), "postgres": set()}


def test_national_demo_counts_arrive_exactly_once_through_a_node_restart_and_a_link_cut(workdir: Path) -> None:
    stderr = workdir.parent / "demo.stderr"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chot", "demo", "--national", "--duration", "90", "--people", "60", "--fps", "6",
             "--port", str(free_port()), "--workdir", str(workdir), "--json"],
            stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "SOME_OPERATOR_TOKEN": "never-inherited"})
        try:
            assert proc.stdout is not None
            head = []
            for line in proc.stdout:  # until every process runs (the banner's last line)
                head.append(line)
                if "Ends by itself" in line:
                    running = children(workdir, proc.pid)
                    break
            tail, _ = proc.communicate(timeout=280)  # a hang guard: the run takes about two minutes
        finally:
            if proc.poll() is None:
                proc.kill()
    stdout = "".join(head) + tail
    assert proc.returncode == 0, stdout[-3000:] + stderr.read_text()[-3000:]
    lines = stdout.splitlines()

    # Each child held its own secrets only: the store URL (with its password) none but the
    # central's ingest workers and web processes, nothing of the demo's own environment.
    kinds = [role(cmdline) for cmdline, _ in running.values()]
    for kind, count in (("unit", 4), ("ingest", 2), ("web", 2), ("nats", 3), ("nginx", 1), ("postgres", 1)):
        assert kinds.count(kind) >= count, sorted(kinds)
    store_url = next(env["CHOT_STORE_URL"] for cmdline, env in running.values() if role(cmdline) == "ingest")
    for cmdline, env in running.values():
        held = {k for k in env if k.startswith("CHOT_")} | {k for k, v in env.items() if v == store_url}
        assert held == OWN_SECRETS[role(cmdline)], f"{cmdline}: {sorted(held)}"
        assert "SOME_OPERATOR_TOKEN" not in env, cmdline
    rec = json.loads(lines[-1])
    assert rec["exact"] and rec["delivered"] and rec["duplicates"] == 0, rec
    assert set(rec["produced"]) == UNITS
    assert all(sum(by_result.values()) > 0 for by_result in rec["produced"].values()), rec["produced"]
    assert rec["stored"] == rec["produced"]

    def index(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"no line matching {pattern!r}:\n" + stdout[-3000:]
        return found[0]

    # A broker node went down and came back while the units kept reporting, inside the link cut.
    cut, alarm = index(r"link of ic7-lane1 cut"), index(r"dashboard alarm: ic7-lane1")
    down, up = index(r"broker node n\d stopped \(SIGTERM\)"), index(r"broker node n\d started again")
    back = index(r"link of ic7-lane1 back: .* its backlog drains")
    assert cut < alarm < back and cut < down < up < back, stdout[-3000:]
    assert lines[down].split("broker node ")[1].split()[0] == lines[up].split("broker node ")[1].split()[0]

    # The dashboard's address is nginx's: the alarm above was read through it, from both web processes.
    assert "behind nginx" in stdout
    access = (workdir / "nginx" / "access.log").read_text()
    assert re.search(r'"GET /api/v1/alarms HTTP/1.1" 200 ', access), access[-2000:]
    for i in (1, 2):
        served = re.search(r"dashboard stopped: (\d+) requests", (workdir / "logs" / f"dashboard-{i}.log").read_text())
        assert served and int(served.group(1)) > 0, f"web process {i} served nothing"

    # The store URL (it holds a password) is in no file, and no unit's config names the store.
    for conf in [workdir / "central.toml", *workdir.glob("units/*/unit.toml")]:
        assert "postgresql://" not in conf.read_text(), conf

    # Nothing outlived the demo: no child, no broker node, no PostgreSQL server.
    leftover = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
    assert not (workdir / "postgres" / "data" / "postmaster.pid").exists()
