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


def test_national_demo_counts_arrive_exactly_once_through_a_node_restart_and_a_link_cut(workdir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chot", "demo", "--national", "--duration", "90", "--people", "60", "--fps", "6",
         "--port", str(free_port()), "--workdir", str(workdir), "--json"],
        capture_output=True, text=True, timeout=280,  # a hang guard: the run takes about two minutes
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    rec = json.loads(lines[-1])
    assert rec["exact"] and rec["delivered"] and rec["duplicates"] == 0, rec
    assert set(rec["produced"]) == UNITS
    assert all(sum(by_result.values()) > 0 for by_result in rec["produced"].values()), rec["produced"]
    assert rec["stored"] == rec["produced"]

    def index(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"no line matching {pattern!r}:\n" + proc.stdout[-3000:]
        return found[0]

    # A broker node went down and came back while the units kept reporting, inside the link cut.
    cut, alarm = index(r"link of ic7-lane1 cut"), index(r"dashboard alarm: ic7-lane1")
    down, up = index(r"broker node n\d stopped \(SIGTERM\)"), index(r"broker node n\d started again")
    back = index(r"link of ic7-lane1 back: .* its backlog drains")
    assert cut < alarm < back and cut < down < up < back, proc.stdout[-3000:]
    assert lines[down].split("broker node ")[1].split()[0] == lines[up].split("broker node ")[1].split()[0]

    # The dashboard's address is nginx's: the alarm above was read through it, from both web processes.
    assert "behind nginx" in proc.stdout
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
