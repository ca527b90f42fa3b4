"""Bounded fuzzing of the scan path in the suite (the long coverage-guided runs live in bench/fuzz).

Payload -> verdict and frame -> verdict through the same targets the atheris harnesses drive
(bench/fuzz/targets.py): `verify` never raises, every verdict is green/yellow/red with a known
reason code and never `internal`, no input takes long (a hang) and memory does not grow.
Inputs: every DCC test case mutated byte by byte, hostile inputs (zlib and CBOR bombs, huge
dose numbers, deep nesting, invalid UTF-8, dates far in the past and future), and hypothesis'
own text, bytes and CBOR structures, signed by the trusted fuzz signer so they reach the
schema and the policy.
"""

from __future__ import annotations

import time
import tracemalloc

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import hostile, targets
from bench.fuzz.run import byte_mutations

SLOW_S = 1.0  # no single input may take longer than this (the verifier's own budget is far lower)
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def judged(fn, data: bytes):  # noqa: ANN001, ANN201 - a tiny timing wrapper
    started = time.monotonic()
    verdict = fn(data)
    elapsed = time.monotonic() - started
    assert elapsed < SLOW_S, f"{len(data)} bytes took {elapsed:.2f}s"
    return verdict


def test_every_dcc_test_case_mutated_byte_by_byte() -> None:
    seeds = targets.seed_payloads()
    assert len(seeds) > 400
    colours: dict[str, int] = {}
    checked = 0
    for seed in seeds:
        # Every 11th byte flipped, one at a time: ~24,000 variants over the whole test set.
        for at in range(4, len(seed), 11):
            variant = seed[:at] + bytes([seed[at] ^ 0x01]) + seed[at + 1:]
            verdict = judged(targets.payload_to_verdict, variant)
            colours[verdict.result] = colours.get(verdict.result, 0) + 1
            checked += 1
    assert checked > 20_000
    assert colours.get("red", 0) > checked * 0.9, colours  # a flipped byte almost always breaks it


def test_every_dcc_cose_mutated_inside_the_transport() -> None:
    import random

    rng = random.Random(6)
    checked = 0
    for cose in targets.seed_cose():
        for variant in byte_mutations(cose, rng, 12):
            judged(targets.cose_to_verdict, variant)
            checked += 1
    assert checked > 5_000


def test_hostile_inputs_are_red_with_a_reason() -> None:
    reasons = {}
    for data in hostile.hostile_payloads():
        verdict = judged(targets.payload_to_verdict, data)
        reasons[verdict.reason] = reasons.get(verdict.reason, 0) + 1
    assert {"zlib_bomb", "cbor_limits", "too_large", "base45", "prefix"} <= set(reasons), reasons
    for data in hostile.hostile_claims():
        verdict = judged(targets.claims_to_verdict, data)
        assert verdict.result in {"green", "yellow", "red"}


def test_a_zlib_bomb_is_refused_without_inflating_it() -> None:
    bomb = hostile.hostile_payloads()[0]
    tracemalloc.start()
    try:
        verdict = judged(targets.payload_to_verdict, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.reason == "zlib_bomb"
    assert peak < 2 * 1024 * 1024, f"inflating took {peak} bytes: the cap did not hold"


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_as_the_qr_text(data: bytes) -> None:
    judged(targets.payload_to_verdict, data)
    judged(targets.payload_to_verdict, b"HC1:" + data)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_arbitrary_text_after_the_prefix(text: str) -> None:
    judged(targets.payload_to_verdict, ("HC1:" + text).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_as_the_cose_message(data: bytes) -> None:
    judged(targets.cose_to_verdict, data)


CBOR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.text(max_size=40) | st.binary(max_size=40)
    | st.sampled_from(["1980-01-01", "0001-01-01", "9999-12-31", "2021-02-30", "840539006", "EU/1/20/1528"]),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(
        st.text(max_size=8) | st.integers(min_value=-300, max_value=300), children, max_size=6),
    max_leaves=40)


@FUZZ
@given(CBOR_VALUES, st.integers(min_value=-(2**63), max_value=2**64))
def test_signed_claims_of_any_shape_reach_schema_and_policy_safely(dcc: object, iat: int) -> None:
    claims = cbor2.dumps({1: "VN", 6: iat, 4: iat + 86400, -260: {1: dcc}})
    verdict = judged(targets.claims_to_verdict, claims)
    if not isinstance(dcc, dict):
        assert verdict.result == "red"


@FUZZ
@given(st.sampled_from(targets.seed_claims()), st.data())
def test_real_claims_mutated_then_signed(seed: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(seed) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    judged(targets.claims_to_verdict, seed[:at] + bytes([value]) + seed[at + 1:])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=5, max_size=20_000))
def test_arbitrary_camera_frames(data: bytes) -> None:
    judged(targets.frame_to_verdict, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(targets.seed_frames()[:30]), st.data())
def test_real_qr_frames_damaged(frame: bytes, data: st.DataObject) -> None:
    damaged = bytearray(frame)
    for _ in range(data.draw(st.integers(min_value=1, max_value=200))):
        damaged[data.draw(st.integers(min_value=4, max_value=len(frame) - 1))] ^= 0xFF
    judged(targets.frame_to_verdict, bytes(damaged))


def test_memory_does_not_grow_over_many_inputs() -> None:
    seeds = targets.seed_payloads()[:200] + hostile.hostile_payloads()
    for data in seeds:  # warm caches (schema, policy, trust) first
        targets.payload_to_verdict(data)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(5):
            for data in seeds:
                targets.payload_to_verdict(data)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 1024 * 1024, f"{grown} bytes kept after {5 * len(seeds)} verifications"


def test_a_png_claiming_more_than_it_holds_is_refused_before_opencv(tmp_path) -> None:
    """Found by bench/fuzz: OpenCV allocated 2 GB for this 170-byte file before giving up."""
    import struct
    import zlib

    from scanner.decode import UnreadableImageError, png_chunks_fit, read_image

    def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
        size = len(body) if length is None else length
        return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 300, 300, 8, 0, 0, 0, 0))
    bomb = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", b"x" * 100, 0x7FFFFF00) + chunk(b"IEND", b"")
    assert not png_chunks_fit(bomb)
    assert targets.image_to_verdict(bomb) is None
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(UnreadableImageError, match="claims more bytes"):
        read_image(path)
    # Real QR images still pass the check and are read.
    pngs = [p for p in targets.seed_images() if p.startswith(b"\x89PNG")]
    assert len(pngs) > 400 and all(png_chunks_fit(png) for png in pngs)
    path.write_bytes(targets.seed_images()[0])
    assert read_image(path) and read_image(path)[0].startswith("HC1:")
