"""Debounce: one scan per person presenting a code, whatever the frame rate and misses."""

from __future__ import annotations

import pytest

from scanner.debounce import Debounce

A = "HC1:AAAA"
B = "HC1:BBBB"


def feed(debounce: Debounce, frames: list[str | None], fps: float = 15.0, start: float = 0.0) -> list[bool]:
    return [debounce.frame(p, start + i / fps) for i, p in enumerate(frames)]


def test_same_code_in_consecutive_frames_is_one_scan() -> None:
    assert feed(Debounce(), [A] * 30) == [True] + [False] * 29


def test_a_few_missed_reads_do_not_make_a_second_scan() -> None:
    frames = [A, None, None, A, None, A, None, None, None, A]
    assert sum(feed(Debounce(gone_frames=5, gone_seconds=5), frames)) == 1


def test_code_gone_for_n_frames_then_back_is_a_new_scan() -> None:
    d = Debounce(gone_frames=5, gone_seconds=60)
    assert feed(d, [A] + [None] * 4 + [A]) == [True] + [False] * 5  # 4 frames away: still the same scan
    assert feed(d, [None] * 5 + [A]) == [False] * 5 + [True]  # 5 frames away: the person came back


def test_code_gone_for_a_set_time_is_a_new_scan_even_at_low_frame_rate() -> None:
    d = Debounce(gone_frames=100, gone_seconds=1.0)
    assert d.frame(A, 0.0)
    assert not d.frame(None, 0.5)
    assert not d.frame(A, 0.9)
    assert d.frame(A, 2.0)  # 1.1 s since it was last read


def test_a_different_code_is_a_new_scan_at_once() -> None:
    d = Debounce()
    assert feed(d, [A, A, B, B, A]) == [True, False, True, False, False]
    assert d.in_view == 2


def test_reset_forgets_codes() -> None:
    d = Debounce()
    assert d.frame(A, 0.0)
    d.reset()
    assert d.frame(A, 0.01)


def test_only_keyed_hashes_are_kept() -> None:
    d = Debounce()
    payload = "HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH"
    d.frame(payload, 0.0)
    held = b"".join(d._seen) + repr(vars(d)).encode()
    assert payload.encode() not in held and payload[4:20].encode() not in held
    other = Debounce()  # a different key per run: hashes say nothing across units or restarts
    other.frame(payload, 0.0)
    assert set(other._seen) != set(d._seen)


@pytest.mark.parametrize("frames, seconds", [(0, 1.0), (5, 0.0)])
def test_bad_settings_are_refused(frames: int, seconds: float) -> None:
    with pytest.raises(ValueError):
        Debounce(frames, seconds)
