"""The atheris entry point: `python -m bench.fuzz.harness payload|cose|claims|image|frame [libFuzzer flags] CORPUS...`.

Run through bench/fuzz/run.py, which seeds the corpus and reads the figures back. A crash is
any exception out of the target (verify() must never raise; the decoder must refuse bad
frames with its own error only), a hang is caught by libFuzzer's -timeout, and memory growth
by -rss_limit_mb.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["verifier", "scanner.qr.decode", "cbor2", "bench.fuzz"]):
    from scanner.qr.errors import DecodeError
    from testbed.fuzz import targets


def fuzz_payload(data: bytes) -> None:
    """One payload -> verdict execution."""
    targets.payload_to_verdict(data)


def fuzz_cose(data: bytes) -> None:
    """One COSE bytes -> HC1 -> verdict execution."""
    targets.cose_to_verdict(data)


def fuzz_claims(data: bytes) -> None:
    """One CWT claims -> signed HC1 -> verdict execution."""
    targets.claims_to_verdict(data)


def fuzz_image(data: bytes) -> None:
    """One image file -> frame -> QR decode -> verdict execution."""
    try:
        targets.image_to_verdict(data)
    except DecodeError:
        pass  # a refused frame, with its reason: the promised behaviour


def fuzz_frame(data: bytes) -> None:
    """One raw grey frame -> QR decode -> verdict execution."""
    try:
        targets.frame_to_verdict(data)
    except DecodeError:
        pass  # a refused frame, with its reason: the promised behaviour


TARGETS = {"payload": fuzz_payload, "cose": fuzz_cose, "claims": fuzz_claims, "image": fuzz_image,
           "frame": fuzz_frame}


def main() -> None:
    """Pick the target from argv[1]; pass the rest to libFuzzer."""
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(TARGETS)} [libFuzzer flags] [CORPUS_DIR...]")
    target = TARGETS[sys.argv.pop(1)]
    targets.fixture()  # build the trust store before fuzzing, not inside the first execution
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
