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
fields a unit's screen shows (holder, detail, keyed hash, times are made on first read);
shc_us, shc_floor_us, shc_cost_over_floor: SMART Health Cards (`shc:/` numeric, our own P-256
issuer) through verify() against the bare P-256 check of the same JWS signatures, same run.

With every real signer (`--full-list`, default on): the same verify() with a trust store of the
829 signers of the shipped snapshot of Germany's production list plus the bench DSC, interleaved
with the one-signer store (full_list_us, full_list_cost_over_one); and what a unit carries: the
signed bundle's bytes on the wire (bundle_bytes_own, bundle_bytes_full, and gzip'd for
reference), and a fresh unit process's start (import, parse_bundle, trust_store, first
verdict: start_ms_own, start_ms_full, best of 3), its resident memory then (rss_mb_own,
rss_mb_full) and its peak (peak_rss_mb_own, peak_rss_mb_full), with the ratios full/own.
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
SNAPSHOT = ROOT / "verifier/data/snapshots/covpass-2023-12-11"


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


def measure_shc(count: int, rounds: int) -> dict[str, float]:
    """Best-of-rounds seconds per operation: SMART Health Cards through verify(), and the bare
    P-256 check of their JWS signatures (the floor), interleaved round by round."""
    from keys import shc as shc_keys
    from verifier.formats.shc import ShcIssuer, numeric_to_jws, parse_jws

    key = ec.generate_private_key(ec.SECP256R1())
    iss = shc_keys.EXAMPLE_ISS
    trust = TrustStore([], shc_issuers={iss: ShcIssuer.from_jwks(iss, shc_keys.jwks(key))})
    policy = builtin_policy("vn-2021")
    rng = random.Random(23)
    cards = []
    for i in range(count):
        person = synthetic_person(rng)
        doses = [("208", "2021-07-01"), ("208", "2021-08-01")][: 1 + i % 2]
        payload = shc_keys.card_payload(iss=iss, nbf=NOW - dt.timedelta(days=1), family=person.family_name,
                                        given=[person.given_name], birth_date=person.dob, doses=doses)
        cards.append(shc_keys.issue_card(key, payload))
    results = {verify(c, trust, NOW, policy).result for c in cards}
    if "red" in results:
        raise SystemExit(f"a benchmark SMART Health Card did not verify: {results}")
    floor_items = []
    for card in cards:
        jws = parse_jws(numeric_to_jws(card))
        r, s_ = int.from_bytes(jws.signature[:32], "big"), int.from_bytes(jws.signature[32:], "big")
        floor_items.append((jws.signing_input, encode_dss_signature(r, s_)))
    public_key = key.public_key()
    algorithm = ec.ECDSA(hashes.SHA256())

    def chot(card: str) -> None:
        verify(card, trust, NOW, policy)

    def floor(item: tuple[bytes, bytes]) -> None:
        public_key.verify(item[1], item[0], algorithm)

    best_chot = best_floor = float("inf")
    for _ in range(rounds):
        best_floor = min(best_floor, time_per_op(floor, floor_items))
        best_chot = min(best_chot, time_per_op(chot, cards))
    return {"chot": best_chot, "floor": best_floor}


def real_signers() -> list[dict[str, str]]:
    """The bundle `dscs` entries of every signer in the shipped snapshot (entry checks only)."""
    from verifier.trustlists import dsclist

    snapshot = dt.datetime(2023, 12, 11, tzinfo=UTC)
    imported = dsclist.parse((SNAPSHOT / "dsc-list.json").read_bytes(),
                             (SNAPSHOT / "dsc-list-signing-key.pem").read_bytes(), NOW)
    if len(imported.signers) + len(imported.refused) != 829 or snapshot < NOW:
        raise SystemExit("the snapshot is not the one this bench expects")
    return [signer.bundle_entry() for signer in imported.signers]


def measure_full_list(payloads: list[str], dsc_der: bytes, rounds: int) -> dict[str, float]:
    """verify() with one signer against verify() with the 829 real ones too, interleaved."""
    small = TrustStore.from_certificates([dsc_der])
    full = TrustStore.from_certificates([dsc_der] + [base64.b64decode(e["certificate"]) for e in real_signers()])
    policy = builtin_policy("vn-2021")
    options = VerifyOptions(uci_key=b"bench-unit-key")
    if {verify(p, full, NOW, policy, options).result for p in payloads} & {"red"}:
        raise SystemExit("a benchmark certificate did not verify with the full list")
    best_small = best_full = float("inf")
    for _ in range(rounds):
        best_small = min(best_small, time_per_op(lambda p: verify(p, small, NOW, policy, options), payloads))
        best_full = min(best_full, time_per_op(lambda p: verify(p, full, NOW, policy, options), payloads))
    return {"small": best_small, "full": best_full, "signers": len(full)}


_UNIT_START = """
import resource, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from datetime import datetime, timezone
from verifier.bundle import parse_bundle
from verifier.policy import builtin_policy
from verifier.verify import verify
bundle = parse_bundle(open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read())
store = bundle.trust_store()
verdict = verify(sys.argv[4], store, datetime.fromisoformat(sys.argv[5]), builtin_policy('vn-2021'))
elapsed = time.perf_counter() - started
resident_kb = int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize() // 1024
print(elapsed, resident_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, verdict.result)
"""


def measure_unit(payload: str, dsc_der: bytes, tmp: Path) -> dict[str, float]:
    """Bundle bytes, a fresh unit's start time and peak RSS: the ministry's own DSC vs every real signer."""
    import gzip

    from keys.bundle import make_bundle

    key = ca.generate_trust_list_key()
    anchor = tmp / "anchor.pem"
    anchor.write_bytes(ca.anchor_pem(key))
    own = __import__("cryptography").x509.load_der_x509_certificate(dsc_der)
    out: dict[str, float] = {}
    for name, imported in (("own", []), ("full", real_signers())):
        data = make_bundle(key, version=1, dscs=[own], issued_at=NOW, imported_dscs=imported)
        path = tmp / f"bundle-{name}.json"
        path.write_bytes(data)
        out[f"bundle_bytes_{name}"] = len(data)
        out[f"bundle_gzip_bytes_{name}"] = len(gzip.compress(data, 6))
        starts, residents, peaks = [], [], []
        for _ in range(3):
            done = subprocess.run([sys.executable, "-c", _UNIT_START, str(ROOT), str(path), str(anchor), payload,
                                   NOW.isoformat()], capture_output=True, text=True, timeout=120, check=True)
            seconds, resident_kb, peak_kb, result = done.stdout.split()
            if result == "red":
                raise SystemExit("the unit process did not verify the bench certificate")
            starts.append(float(seconds))
            residents.append(int(resident_kb))
            peaks.append(int(peak_kb))
        out[f"start_ms_{name}"] = min(starts) * 1000
        out[f"rss_mb_{name}"] = min(residents) / 1024
        out[f"peak_rss_mb_{name}"] = min(peaks) / 1024
    return out


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
@click.option("--full-list/--no-full-list", default=True, show_default=True,
              help="Also measure with every real signer of the shipped snapshot (829) in the trust store.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with stable names.")
def main(count: int, rounds: int, no_peer: bool, full_list: bool, as_json: bool) -> None:
    """Measure chot's verify() against the bare ECDSA P-256 check and a pycose-based peer."""
    import tempfile

    payloads, dsc_der, _ = make_certificates(count)
    local = measure_local(payloads, dsc_der, rounds)
    smart = measure_shc(count, rounds)
    peer = None if no_peer else measure_peer(payloads, dsc_der, rounds)
    full: dict[str, float] = {}
    if full_list:
        full.update(measure_full_list(payloads, dsc_der, rounds))
        with tempfile.TemporaryDirectory() as tmp:
            full.update(measure_unit(payloads[0], dsc_der, Path(tmp)))
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
        "shc_us": round(smart["chot"] * 1e6, 2),
        "shc_floor_us": round(smart["floor"] * 1e6, 2),
        "shc_cost_over_floor": round(smart["chot"] / smart["floor"], 3),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": platform.machine(),
        "command": REPRODUCE + (" --no-peer" if no_peer else "") + ("" if full_list else " --no-full-list"),
    }
    if full:
        figures.update({
            "full_list_signers": int(full["signers"]),
            "one_signer_us": round(full["small"] * 1e6, 2),
            "full_list_us": round(full["full"] * 1e6, 2),
            "full_list_cost_over_one": round(full["full"] / full["small"], 3),
            **{k: round(v, 1) for k, v in full.items() if k.startswith(("bundle_", "start_ms_", "rss_mb_", "peak_rss"))},
            "bundle_full_over_own": round(full["bundle_bytes_full"] / full["bundle_bytes_own"], 1),
            "start_full_over_own": round(full["start_ms_full"] / full["start_ms_own"], 2),
            "rss_full_over_own": round(full["rss_mb_full"] / full["rss_mb_own"], 2),
        })
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
    click.echo(f"{'SHC: bare P-256 check of the JWS, floor':<44}{1 / smart['floor']:>12.0f}"
               f"{smart['floor'] * 1e6:>10.1f}{1:>9.2f}x")
    click.echo(f"{'SHC: chot verify(), shc:/ to verdict':<44}{1 / smart['chot']:>12.0f}"
               f"{smart['chot'] * 1e6:>10.1f}{smart['chot'] / smart['floor']:>9.2f}x")
    click.echo(f"chot costs {figures['chot_cost_over_floor']:.2f}x the bare signature check (target <= 2, aim 1.5)")
    if peer:
        click.echo(f"chot is {figures['peer_cost_over_chot']:.1f}x faster than the pycose peer (aim >= 10)")
    if full:
        click.echo(f"trust store of {figures['full_list_signers']} signers (829 real + the bench DSC): "
                   f"{figures['full_list_us']:.1f} us/verify against {figures['one_signer_us']:.1f} with one "
                   f"({figures['full_list_cost_over_one']:.3f}x)")
        click.echo(f"{'unit with':<28}{'bundle bytes':>14}{'gzip':>10}{'start ms':>10}{'RSS MB':>8}{'peak RSS MB':>13}")
        for name, label in (("own", "the ministry's DSC only"), ("full", "every real signer too")):
            click.echo(f"{label:<28}{figures[f'bundle_bytes_{name}']:>14.0f}{figures[f'bundle_gzip_bytes_{name}']:>10.0f}"
                       f"{figures[f'start_ms_{name}']:>10.1f}{figures[f'rss_mb_{name}']:>8.1f}"
                       f"{figures[f'peak_rss_mb_{name}']:>13.1f}")
        click.echo(f"full/own: bundle {figures['bundle_full_over_own']}x, start {figures['start_full_over_own']}x, "
                   f"RSS {figures['rss_full_over_own']}x")
    click.echo(f"{count} certificates, best of {rounds} rounds, Python {figures['python']}, "
               f"cryptography {figures['cryptography']}, {figures['machine']}")
    click.echo(f"reproduce: {figures['command']}")


if __name__ == "__main__":
    main()
