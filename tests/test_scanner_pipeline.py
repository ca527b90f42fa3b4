"""Frame to verdict with issued certificates: scripted camera, real decoder, real crypto, real outbox."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from scanner import phone_screen
from scanner.camera.replay import ScriptedCamera
from scanner.capture import Capture
from scanner.debounce import Debounce
from scanner.qr.decode import QrDecoder
from scanner.outbox import Outbox
from scanner.pipeline import Judge, Pipeline
from scanner.trust_sync import TrustKeeper
from verifier import Verdict

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
QR_LIMIT = 1500  # longer samples (the zlib bomb) do not fit in a QR code a phone can show


@pytest.fixture
def keeper(tmp_path: Path, ministry) -> TrustKeeper:
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    assert keeper.offer(ministry.bundle(version=1, issued_at=NOW - dt.timedelta(hours=1)), "test").accepted
    return keeper


def scannable(ministry, policy: str) -> list:
    return [s for s in ministry.samples(NOW) if policy in s.expected and len(s.payload) <= QR_LIMIT]


def frame_of(payload: str, seed: int) -> np.ndarray:
    return phone_screen.render_phone_frame(payload, np.random.default_rng(seed), (1280, 720), "easy")


class Collect:
    """A feedback sink that keeps what it is shown (test side only)."""

    def __init__(self) -> None:
        self.verdicts: list[Verdict] = []

    def __call__(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)


def test_scripted_checkpoint_gives_each_person_the_right_verdict(tmp_path: Path, ministry, keeper, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    samples = scannable(ministry, "vn-2021")
    assert len(samples) >= 20
    # Each phone is held for 8 frames at 25 fps: time to read it even on a loaded machine.
    camera = ScriptedCamera([s.payload for s in samples], fps=25, loop=False, hold_frames=8, gap_frames=4,
                            variants=1)
    capture = Capture(camera)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    shown = Collect()
    pipeline = Pipeline(capture, QrDecoder(), Debounce(gone_frames=3, gone_seconds=0.5), Judge("vn-2021", keeper),
                        feedback=[shown], recorders=[lambda v, ts: outbox.record(v.event_fields(), ts)],
                        wall_clock=lambda: NOW)
    capture.start()
    pipeline.start()
    try:
        deadline = time.monotonic() + 60
        while not capture.ended and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the last frames through the pipeline
    finally:
        pipeline.stop()
        capture.stop()
    assert capture.ended
    got = [(v.result, v.reason) for v in shown.verdicts]
    want = [(s.expected["vn-2021"], s.reason) for s in samples]
    assert [g[0] for g in got] == [w[0] for w in want], [s.name for s in samples]
    assert all(w[1] is None or g[1] == w[1] for g, w in zip(got, want))
    assert pipeline.stats.scans == len(samples)
    named = [v for v in shown.verdicts if v.holder is not None]
    assert named and all(v.holder.dob for v in named)  # the screen gets names and dates of birth
    counts = outbox.counts_today(NOW.astimezone().date())  # the unit's day of NOW, not of the wall clock
    assert counts == {c: sum(1 for s in samples if s.expected["vn-2021"] == c) for c in ("green", "yellow", "red")}
    assert outbox.backlog() == len(samples)
    outbox.close()
    # Only event fields left the pipeline: nothing personal on disk or in the logs.
    db = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.sqlite*"))
    logs = caplog.text
    for s in samples:
        if s.issued is None:
            continue
        for secret in (s.issued.person.family_name, s.issued.person.dob, s.issued.uci, s.payload[4:40]):
            assert secret and secret.encode() not in db and secret not in logs
    rows = sqlite3.connect(tmp_path / "outbox.sqlite").execute("SELECT * FROM events").fetchall()
    # seq, ts, the 4 event fields, sent_at, and the 6 decision columns, empty for verdicts
    assert all(len(row) == 13 and row[7:] == (None,) * 6 for row in rows)


def test_policy_is_chosen_per_unit(ministry, keeper) -> None:
    chosen = {s.name: s for s in scannable(ministry, "workplace")}
    names = ["one_dose", "negative_test", "complete_series"]
    frames = [frame_of(chosen[n].payload, i) for i, n in enumerate(names)]
    results = {}
    for policy in ("vn-2021", "workplace"):
        pipeline = Pipeline(None, QrDecoder(), Debounce(), Judge(policy, keeper), wall_clock=lambda: NOW)
        verdicts = [pipeline.process(f, time.monotonic()) for f in frames]
        results[policy] = [v.result if v else None for v in verdicts]
        assert all(v.policy == policy for v in verdicts if v)
    assert results["vn-2021"] == [chosen[n].expected["vn-2021"] for n in names] == ["yellow", "yellow", "green"]
    assert results["workplace"] == [chosen[n].expected["workplace"] for n in names] == ["red", "green", "green"]


def test_new_trust_bundle_is_used_from_the_next_scan(tmp_path: Path, ministry) -> None:
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    judge = Judge("vn-2021", keeper)
    keeper.add_listener(judge.prepare)
    sample = {s.name: s for s in scannable(ministry, "vn-2021")}["complete_series"]
    before = judge(sample.payload, NOW)
    assert (before.result, before.reason, before.trust_version) == ("red", "kid_unknown", None)
    assert keeper.offer(ministry.bundle(version=4, issued_at=NOW - dt.timedelta(hours=1)), "test").accepted
    after = judge(sample.payload, NOW)
    assert (after.result, after.trust_version) == ("green", 4)
    revoking = ministry.bundle(version=5, revoked_ucis=[sample.issued.uci], issued_at=NOW - dt.timedelta(hours=1))
    assert keeper.offer(revoking, "test").accepted
    assert (judge(sample.payload, NOW).reason, judge(sample.payload, NOW).trust_version) == ("revoked", 5)


def test_untrusted_clock_caps_or_refuses_as_the_policy_says(tmp_path: Path, ministry, keeper) -> None:
    from verifier.policy import builtin_policy

    sample = {s.name: s for s in scannable(ministry, "vn-2021")}["complete_series"]
    verdict = Judge("vn-2021", keeper, clock_ok=lambda now, issued: False)(sample.payload, NOW)
    assert (verdict.result, verdict.reason) == ("yellow", "clock_untrusted")
    # A bundle may carry its own copy of the policy; this one refuses to judge on a wrong clock.
    strict = dict(builtin_policy("vn-2021").to_document(), on_untrusted_clock="refuse")
    strict_keeper = TrustKeeper(tmp_path / "strict", ministry.anchor_pem)
    bundle = ministry.bundle(version=2, policies={"vn-2021": strict}, issued_at=NOW - dt.timedelta(hours=1))
    assert strict_keeper.offer(bundle, "test").accepted
    judge = Judge("vn-2021", strict_keeper, clock_ok=lambda now, issued: False)
    verdict = judge(sample.payload, NOW)
    assert (verdict.result, verdict.reason, verdict.holder, verdict.trust_version) == ("red", "clock_untrusted", None, 2)
    judge.clock_ok = lambda now, issued: True
    assert judge(sample.payload, NOW).result == "green"


def test_stale_trust_bundle_caps_green_at_yellow(tmp_path: Path, ministry) -> None:
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    old = NOW - dt.timedelta(days=30)
    assert keeper.offer(ministry.bundle(version=1, issued_at=old, next_update=old + dt.timedelta(days=1)), "t").accepted
    sample = {s.name: s for s in scannable(ministry, "vn-2021")}["complete_series"]
    verdict = Judge("vn-2021", keeper)(sample.payload, NOW)
    assert (verdict.result, verdict.reason) == ("yellow", "trust_stale")


def test_a_failing_feedback_sink_does_not_stop_the_others(ministry, keeper) -> None:
    sample = {s.name: s for s in scannable(ministry, "vn-2021")}["complete_series"]

    def broken(verdict: Verdict) -> None:
        raise OSError("buzzer unplugged")

    shown, recorded = Collect(), []
    pipeline = Pipeline(None, QrDecoder(), Debounce(), Judge("vn-2021", keeper), feedback=[broken, shown],
                        recorders=[lambda v, ts: recorded.append(v.event_fields())], wall_clock=lambda: NOW)
    verdict = pipeline.process(frame_of(sample.payload, 3), time.monotonic())
    assert verdict is not None and verdict.result == "green"
    assert [v.result for v in shown.verdicts] == ["green"]
    assert recorded == [{"result": "green", "reason": verdict.reason, "policy": "vn-2021", "trust_version": 1}]
    assert len(pipeline.stats.verdict_ms) == 1 and pipeline.stats.verdict_ms[0] > 0


def test_unknown_policy_is_refused_at_start() -> None:
    from verifier.errors import VerificationError

    with pytest.raises(VerificationError, match="no built-in policy 'nope'"):
        Judge("nope")
