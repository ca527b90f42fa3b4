"""Benchmark: chot's full verify() against the bare ECDSA check (the floor) and a pycose peer.

All three run on the same certificates in one run. Each figure is CPU time of this process
(time.process_time, so other load on a shared machine does not count), the best of several
rounds, chot and the floor interleaved round by round so both see the same conditions.

    .venv/bin/python -m bench.verify [--json] [--count 200] [--rounds 7] [--no-peer]

The peer runs in its own environment, .venv-peer (made on first use: pycose 1.1 needs cbor2 5.x,
while chot uses cbor2 6), in a subprocess fed the same payloads. The peer does the EU
reference's steps (prefix, Base45, zlib, COSE, signature, CWT expiry) but no schema or policy.

`--json` prints one object with the stable names: certificates, rounds, chot_verify_per_s,
ecdsa_floor_per_s, peer_pycose_per_s, chot_us, floor_us, peer_us, chot_cost_over_floor,
peer_cost_over_chot, python, cryptography, machine, command; also chot_shown_us and
chot_shown_cost_over_floor: verify() and then reading the verdict's holder, which makes the
fields a unit's screen shows (holder, detail, keyed hash, times are made on first read).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import click
import cryptography
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

ROOT = Path(__file__).resolve().parent.parent

from keys import ca, dcc, hc1  # noqa: E402
from keys.people import synthetic_person  # noqa: E402
from verifier import TrustStore, VerifyOptions, verify  # noqa: E402
from verifier.policy import builtin_policy  # noqa: E402

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
PEER_VENV = ROOT / ".venv-peer"
PEER_REQUIREMENTS = ["pycose==1.1.*", "cbor2>=5.4,<6", "base45==0.4.*", "cryptography>=41"]
REPRODUCE = ".venv/bin/python -m bench.verify"


def make_certificates(count: int) -> tuple[list[str], bytes, ec.EllipticCurvePrivateKey]:
    """`count` distinct vaccination certificates signed by one fresh DSC, and its DER."""
    rng = random.Random(7)
    csca_key = ca.generate_key()
    csca = ca.make_csca(csca_key, not_before=NOW - dt.timedelta(days=365))
    dsc_key = ca.generate_key()
    dsc = ca.make_dsc(csca, csca_key, dsc_key.public_key(), not_before=NOW - dt.timedelta(days=100))
    payloads = []
    for i in range(count):
        dose = (i % 3) + 1
        document = dcc.vaccination(synthetic_person(rng), dose, max(dose, 2), "2021-08-01", "pfizer",
                                   uci=dcc.new_uci(rng))
        payloads.append(hc1.encode(document, dsc_key, ca.kid_of(dsc), issued_at=NOW - dt.timedelta(days=1),
                                   expires_at=NOW + dt.timedelta(days=300)))
    return payloads, dsc.public_bytes(Encoding.DER), dsc_key


def floor_inputs(payloads: list[str]) -> list[tuple[bytes, bytes]]:
    """(Sig_structure, DER signature) per certificate: exactly what the bare check verifies."""
    out = []
    for text in payloads:
        unpacked = hc1.unpack(text)
        message = __import__("cbor2").loads(hc1.unwrap(text)).value
        to_sign = __import__("cbor2").dumps(["Signature1", message[0], b"", unpacked.payload])
        sig = unpacked.signature
        out.append((to_sign, encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))))
    return out


def time_per_op(func, items) -> float:
    started = time.process_time()
    for item in items:
        func(item)
    return (time.process_time() - started) / len(items)


def measure_local(payloads: list[str], dsc_der: bytes, rounds: int) -> dict[str, float]:
    """Best-of-rounds seconds per operation for chot's verify() and the bare ECDSA check."""
    trust = TrustStore.from_certificates([dsc_der])
    policy = builtin_policy("vn-2021")
    options = VerifyOptions(uci_key=b"bench-unit-key")
    results = {verify(p, trust, NOW, policy, options).result for p in payloads}
    if "red" in results:
        raise SystemExit(f"a benchmark certificate did not verify: {results}")
    public_key = trust.find(ca.kid_of(__import__("cryptography").x509.load_der_x509_certificate(dsc_der)))[0].public_key
    algorithm = ec.ECDSA(hashes.SHA256())
    floor_items = floor_inputs(payloads)

    def chot(payload: str) -> None:
        verify(payload, trust, NOW, policy, options)

    def chot_shown(payload: str) -> None:
        verify(payload, trust, NOW, policy, options).holder  # makes the fields a screen shows


    def floor(item: tuple[bytes, bytes]) -> None:
        public_key.verify(item[1], item[0], algorithm)

    best_chot = best_floor = best_shown = float("inf")
    for _ in range(rounds):
        best_floor = min(best_floor, time_per_op(floor, floor_items))
        best_chot = min(best_chot, time_per_op(chot, payloads))
        best_shown = min(best_shown, time_per_op(chot_shown, payloads))
    return {"chot": best_chot, "floor": best_floor, "shown": best_shown}


def ensure_peer_venv() -> Path:
    """Create .venv-peer with pycose 1.1 and cbor2 5.x on first use; return its python."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return python


def measure_peer(payloads: list[str], dsc_der: bytes, rounds: int) -> float:
    """Best-of-rounds seconds per operation for the pycose peer, in its own environment."""
    python = ensure_peer_venv()
    job = {"payloads": payloads, "certificate": base64.b64encode(dsc_der).decode(), "now": NOW.timestamp(),
           "rounds": rounds}
    done = subprocess.run([str(python), str(Path(__file__).with_name("peer_pycose.py"))],
                          input=json.dumps(job), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"peer failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    if not result["all_valid"]:
        raise SystemExit("the peer did not accept the benchmark certificates")
    return float(result["seconds_per_op"])


@click.command()
@click.option("--count", default=200, show_default=True, type=click.IntRange(1, 10000), help="Certificates to verify.")
@click.option("--rounds", default=7, show_default=True, type=click.IntRange(1, 100), help="Rounds; the best is kept.")
@click.option("--no-peer", is_flag=True, help="Skip the pycose peer (no .venv-peer needed).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with stable names.")
def main(count: int, rounds: int, no_peer: bool, as_json: bool) -> None:
    """Measure chot's verify() against the bare ECDSA P-256 check and a pycose-based peer."""
    payloads, dsc_der, _ = make_certificates(count)
    local = measure_local(payloads, dsc_der, rounds)
    peer = None if no_peer else measure_peer(payloads, dsc_der, rounds)
    figures = {
        "certificates": count,
        "rounds": rounds,
        "chot_verify_per_s": round(1 / local["chot"], 1),
        "ecdsa_floor_per_s": round(1 / local["floor"], 1),
        "peer_pycose_per_s": round(1 / peer, 1) if peer else None,
        "chot_us": round(local["chot"] * 1e6, 2),
        "floor_us": round(local["floor"] * 1e6, 2),
        "peer_us": round(peer * 1e6, 2) if peer else None,
        "chot_cost_over_floor": round(local["chot"] / local["floor"], 3),
        "chot_shown_us": round(local["shown"] * 1e6, 2),
        "chot_shown_cost_over_floor": round(local["shown"] / local["floor"], 3),
        "peer_cost_over_chot": round(peer / local["chot"], 2) if peer else None,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": platform.machine(),
        "command": REPRODUCE + (" --no-peer" if no_peer else ""),
    }
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"{'verifier':<44}{'per second':>12}{'us/op':>10}{'vs floor':>10}")
    rows = [("bare ECDSA P-256 check (cryptography), floor", local["floor"]),
            ("chot verify(): payload to verdict, vn-2021", local["chot"]),
            ("chot verify() + holder, detail, hash read", local["shown"])]
    if peer:
        rows.append(("peer: pycose 1.1 + base45 (EU reference way)", peer))
    for label, seconds in rows:
        click.echo(f"{label:<44}{1 / seconds:>12.0f}{seconds * 1e6:>10.1f}{seconds / local['floor']:>9.2f}x")
    click.echo(f"chot costs {figures['chot_cost_over_floor']:.2f}x the bare signature check (target <= 2, aim 1.5)")
    if peer:
        click.echo(f"chot is {figures['peer_cost_over_chot']:.1f}x faster than the pycose peer (aim >= 10)")
    click.echo(f"{count} certificates, best of {rounds} rounds, Python {figures['python']}, "
               f"cryptography {figures['cryptography']}, {figures['machine']}")
    click.echo(f"reproduce: {figures['command']}")


if __name__ == "__main__":
    main()
