"""Benchmark: what one officer PIN check costs on this machine, and what a thief's search costs.

A unit checks a PIN offline against the roster's scrypt hash (protocol.roster, N=2^14, r=8,
p=1: 16 MiB per guess). Peers measured in the same run: PBKDF2-HMAC-SHA256 at 600,000 rounds
(what keys/ uses for the ministry's key files, OWASP's 2023 figure) and a bare SHA-256 (what an
unsalted fast hash would give a thief). From the measured cost per guess: how long an offline
search of every 4- and 6-digit PIN of one officer takes on one core (the throttle on the unit
does not apply once the roster file is copied off a stolen unit; the roster's expiry and
revocation bound that).

    .venv/bin/python -m bench.pin [--rounds 5] [--json]
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent

from protocol.roster import SCRYPT_N, SCRYPT_R, hash_pin  # noqa: E402

PBKDF2_ROUNDS = 600_000


def _best(fn, rounds: int) -> float:
    """Best CPU seconds of `rounds` calls (CPU time: other work on the machine does not count)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def measure(rounds: int) -> dict[str, float]:
    salt = os.urandom(16)
    stored = hash_pin("482159", salt)
    sha_batch = 100_000
    return {
        "scrypt_check_ms": _best(lambda: stored.matches("482159"), rounds) * 1000,
        "pbkdf2_600k_ms": _best(lambda: hashlib.pbkdf2_hmac("sha256", b"482159", salt, PBKDF2_ROUNDS), rounds) * 1000,
        "sha256_ms": _best(lambda: [hashlib.sha256(b"482159" + salt).digest() for _ in range(sha_batch)],
                           rounds) * 1000 / sha_batch,
    }


def render(m: dict[str, float]) -> str:
    def search(ms: float, digits: int) -> str:
        seconds = ms / 1000 * 10 ** digits
        return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds:,.1f} s"

    rows = [("scrypt N=2^14 r=8 (chot's PIN hash)", m["scrypt_check_ms"]),
            (f"PBKDF2-SHA256 {PBKDF2_ROUNDS:,} rounds (peer)", m["pbkdf2_600k_ms"]),
            ("SHA-256, one round (peer: a fast hash)", m["sha256_ms"])]
    lines = [f"{'hash':<42} {'ms per guess':>13} {'vs scrypt':>10} {'all 4-digit':>12} {'all 6-digit':>12}"]
    for name, ms in rows:
        lines.append(f"{name:<42} {ms:>13.4f} {ms / m['scrypt_check_ms']:>9.3f}x {search(ms, 4):>12} {search(ms, 6):>12}")
    lines.append(f"memory per scrypt guess: {128 * SCRYPT_N * SCRYPT_R / 2**20:.0f} MiB")
    return "\n".join(lines)


@click.command()
@click.option("--rounds", type=click.IntRange(1, 50), default=5, show_default=True, help="Best of this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object with stable names.")
def main(rounds: int, as_json: bool) -> None:
    """Time one PIN check against its peers and the offline search it implies."""
    m = measure(rounds)
    if as_json:
        click.echo(json.dumps({**m, "scrypt_n": SCRYPT_N, "scrypt_r": SCRYPT_R,
                               "search_6_digits_hours": m["scrypt_check_ms"] * 1e6 / 1000 / 3600,
                               "pbkdf2_over_scrypt": m["pbkdf2_600k_ms"] / m["scrypt_check_ms"]}))
    else:
        click.echo(render(m))


if __name__ == "__main__":
    main()
