"""Peer verifier for bench/verify.py, run inside .venv-peer (pycose 1.1, cbor2 5.x, base45).

It follows the EU reference's steps (prefix, base45, zlib, COSE_Sign1 decode, signature with
the DSC key, CWT claims, expiry) with pycose, the COSE library that reference uses. Reads one
JSON job on stdin, prints one JSON result on stdout.
"""

import base64
import json
import sys
import time
import zlib

import base45
import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.keys.curves import P256
from pycose.keys.ec2 import EC2Key
from pycose.messages import Sign1Message


def key_from_certificate(der: bytes) -> EC2Key:
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    numbers = key.public_numbers()
    return EC2Key(crv=P256, x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))


def verify(payload: str, key: EC2Key, now: float) -> bool:
    if not payload.startswith("HC1:"):
        return False
    cose = zlib.decompress(base45.b45decode(payload[4:]))
    message = Sign1Message.decode(cose)
    message.key = key
    if not message.verify_signature():
        return False
    claims = cbor2.loads(message.payload)
    return claims[6] <= now <= claims[4] and isinstance(claims[-260][1], dict)


def main() -> None:
    job = json.load(sys.stdin)
    key = key_from_certificate(base64.b64decode(job["certificate"]))
    payloads, now = job["payloads"], job["now"]
    ok = all(verify(p, key, now) for p in payloads)
    best = float("inf")
    for _ in range(job["rounds"]):
        started = time.process_time()
        for payload in payloads:
            verify(payload, key, now)
        best = min(best, (time.process_time() - started) / len(payloads))
    json.dump({"all_valid": ok, "seconds_per_op": best}, sys.stdout)


if __name__ == "__main__":
    main()
