"""A child SIGKILLed during a demo is restarted as its systemd unit would restart it, and the run
still ends with its exact, delivered reconciliation (issue 26: one dead worker ended the demo)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.localnet import free_port
from tests.test_demo_national import children, role

pytestmark = [pytest.mark.slow]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder PostgreSQL's server user can reach (pytest's 0700 tmp_path is not)."""
    root = Path(tempfile.mkdtemp(prefix="chot-restarts-"))
    os.chmod(root, 0o755)
    yield root / "demo"
    shutil.rmtree(root, ignore_errors=True)


def run_and_kill(workdir: Path, extra: list[str], duration: int, victims: list[str],
                 timeout: float) -> tuple[str, dict[str, int]]:
    """Run the demo, SIGKILL one child of each role in `victims` once every child runs, and
    return its whole output and the pids killed by role."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "chot", "demo", *extra, "--duration", str(duration), "--people", "40", "--fps", "6",
         "--port", str(free_port()), "--workdir", str(workdir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        head = []
        for line in proc.stdout:
            head.append(line)
            if "Ends by itself" in line:
                break
        running = children(workdir, proc.pid)
        for victim in victims:
            pid = min(pid for pid, (cmdline, _) in running.items() if role(cmdline) == victim)
            os.kill(pid, signal.SIGKILL)
            killed[victim] = pid
        tail, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = "".join(head) + tail
    assert proc.returncode == 0, out[-4000:]
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["exact"] and rec["delivered"] and rec["duplicates"] == 0, rec
    assert all(sum(by_result.values()) > 0 for by_result in rec["produced"].values()), rec["produced"]
    # Nothing outlived the demo, restarted children included, nor anything of a killed child's
    # group (nginx's workers outlive a SIGKILLed master and keep its port).
    leftover = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", leftover.stdout
    for victim, pid in killed.items():
        group = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True, check=False)
        assert group.stdout.strip() == "", (victim, group.stdout)
    return out, killed


@pytest.mark.timeout(200)
def test_the_embedded_demo_restarts_a_killed_ingest_and_unit_and_reconciles(workdir: Path) -> None:
    out, _ = run_and_kill(workdir, [], 30, ["ingest", "unit"], timeout=150)
    assert "ingest killed by SIGKILL: restarting it in 3 s (chot-ingest.service: Restart=on-failure" in out, out[-3000:]
    assert "ingest restarted (restart 1, after it killed by SIGKILL)" in out, out[-3000:]
    # The unit's outbox and sequence survive its restart: the reconciliation above covers both runs.
    assert len(re.findall(r"\] [a-z0-9-]+ killed by SIGKILL: restarting it in 5 s \(chot-scanner\.service", out)) == 1, out[-3000:]
    assert len(re.findall(r"\] [a-z0-9-]+ restarted \(restart 1, after it killed by SIGKILL\)", out)) == 2, out[-3000:]
    assert "Error" not in out


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_the_national_demo_restarts_a_killed_worker_web_process_broker_node_and_nginx(workdir: Path) -> None:
    out, _ = run_and_kill(workdir, ["--national"], 40, ["ingest", "web", "nats", "nginx"], timeout=240)
    for name, unit in ((r"ingest-\d", r"3 s \(national/chot-ingest@\.service"),
                       (r"dashboard-\d", r"2 s \(national/chot-dashboard@\.service"),
                       (r"broker node n\d", r"2 s \(national/chot-nats@\.service"),
                       (r"nginx", r"2 s \(national/chot-dashboard@\.service")):
        assert len(re.findall(rf"\] {name} killed by SIGKILL: restarting it in {unit}", out)) == 1, out[-3000:]
        assert len(re.findall(rf"\] {name} restarted \(restart 1, after it killed by SIGKILL\)", out)) == 1, out[-3000:]
    # The demo's own node stop and start still happened, on top of the kill.
    assert "stopped (SIGTERM)" in out and "started again" in out, out[-3000:]
