"""Privacy: no name, date of birth, certificate identifier or payload of a scanned certificate
leaves a unit or reaches its disk or logs.

Two runs of real processes: the chaos rig (bench/chaos.py) with every unit's MQTT link going
through a recorder that keeps every byte on the wire both ways, and the demo (`chot demo`).
After each, the recorded traffic, the units' data folders and logs and everything the central
wrote (store, broker files, logs) are searched for the personal data of every certificate the
cameras showed. The camera sources themselves (QR images, payload lists) play the phones and
are not searched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from testbed.chaos import ChaosOptions, ChaosRun
from keys import hc1
from tests.support.broker import free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parent.parent


def needles(dcc: dict, payload: str) -> set[bytes]:
    """Every personal item of one certificate, as the bytes it would appear as (UTF-8 or JSON)."""
    nam = dcc.get("nam") or {}
    items = {nam.get("fn"), nam.get("gn"), nam.get("fnt"), nam.get("gnt"), dcc.get("dob")}
    for group in ("v", "t", "r"):
        for entry in dcc.get(group) or []:
            items.add(entry.get("ci"))
    out: set[bytes] = set()
    for item in items:
        if isinstance(item, str) and len(item) >= 4:  # a 2-letter name also occurs by chance
            out.add(item.encode("utf-8"))
            out.add(json.dumps(item).strip('"').encode("ascii"))  # as JSON writes it (\\u escapes)
            if "<" in item:
                out.add(item.replace("<", " ").encode())  # the ICAO filler shown as a space
    for start in range(4, len(payload) - 32, 200):  # any 32-character piece of the payload
        out.add(payload[start:start + 32].encode("ascii"))
    return out


def find_leaks(secrets: set[bytes], blobs: dict[str, bytes]) -> list[str]:
    return [f"{name}: {secret[:12]!r}..." for name, blob in blobs.items() for secret in secrets if secret in blob]


def files_under(*roots: Path, skip: Iterable[str] = ()) -> dict[str, bytes]:
    skipped = tuple(skip)
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not any(part in skipped for part in path.parts):
                out[str(path)] = path.read_bytes()
    return out


def test_needles_find_what_they_look_for(ministry) -> None:
    """The search itself works: it finds the personal data where it is plainly present."""
    issued = ministry.issue_vaccination()
    secrets = needles(issued.dcc, issued.hc1)
    leaked = find_leaks(secrets, {"a log line": f"scanned {issued.person.family_name} {issued.uci}".encode(),
                                  "a json dump": json.dumps(issued.dcc).encode(),
                                  "a payload": issued.hc1.encode()})
    assert {line.split(":")[0] for line in leaked} == {"a log line", "a json dump", "a payload"}


def test_no_personal_data_on_the_wire_on_disk_or_in_logs(tmp_path_factory, ministry) -> None:
    options = ChaosOptions(units=3, people=90, fps=10.0, broker_restarts=1, unit_kills=1, ingest_restarts=1,
                           fill_disk=False, outage_s=1.5, drain_timeout_s=60.0, seed=11, record_traffic=True)
    run = ChaosRun(tmp_path_factory.mktemp("privacy"), options, ministry)
    report = run.run()
    assert report.exact, report.as_dict()
    assert report.produced_total >= options.units * options.people * 0.8
    assert run.recorder is not None
    traffic = run.recorder.traffic()
    assert b"chot/v1/" in traffic and len(traffic) > report.produced_total * 80, "the recorder saw the events"
    secrets = set()
    for issued, text in run.issued:
        secrets |= needles(issued.dcc, text)
    blobs = {"mqtt traffic": traffic}
    for unit in run.units:
        blobs.update(files_under(unit.data_dir))
        blobs.update({str(p): p.read_bytes() for p in unit.dir.glob("unit-*.log")})
    blobs.update(files_under(run.workdir / "central", run.workdir / "logs"))
    assert len(blobs) > 10
    assert find_leaks(secrets, blobs) == []


def test_no_personal_data_leaves_the_units_of_a_demo_run(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "chot", "-v", "demo", "--duration", "40", "--people", "40", "--fps", "6",
         "--port", str(free_port()), "--workdir", str(workdir), "--json"],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # The simulated officers decided: their decision events are in the outboxes, store and logs searched.
    produced = json.loads(proc.stdout.strip().splitlines()[-1])["produced"]
    assert any(by_result.get("decision") for by_result in produced.values()), produced
    secrets: set[bytes] = set()
    shown = 0
    for people in workdir.glob("units/*/people.txt"):
        for line in people.read_text(encoding="utf-8").splitlines():
            try:
                dcc = hc1.unpack(line).dcc
            except Exception:  # noqa: BLE001 - the garbage codes of the crowd carry no person
                continue
            secrets |= needles(dcc, line)
            shown += 1
    assert shown >= 10 and secrets
    # Everything the units and the central wrote; the phones' payload lists are the camera.
    blobs = files_under(workdir / "units", workdir / "central", workdir / "logs", skip={"people.txt"})
    blobs = {k: v for k, v in blobs.items() if not k.endswith("people.txt")}
    blobs["demo output"] = (proc.stdout + proc.stderr).encode()
    assert any("outbox.sqlite" in k for k in blobs) and any(k.endswith(".log") for k in blobs)
    assert find_leaks(secrets, blobs) == []
