"""chot verifier: the pure core. Payload string + trust store + time + policy -> Verdict."""

from verifier.trust import SignerKey, TrustStore
from verifier.verdict import Holder, Verdict
from verifier.verify import VerifyOptions, verify

__all__ = ["verify", "Verdict", "Holder", "TrustStore", "SignerKey", "VerifyOptions"]
