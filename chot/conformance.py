"""Run dgc-testdata style conformance cases: each EXPECTED* step a verifier is responsible for.

A case is a JSON object with `EXPECTEDRESULTS` (see tests/data/dcc/SOURCE.md). Each step is
re-done here with the verifier's own step functions, against the case's `VALIDATIONCLOCK`,
and compared with the expected boolean. Known faults of the upstream data are kept below
with the reason each is a fault, and reported by name.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from verifier import cose, cwt, hcert
from verifier.base45 import b45decode
from verifier.errors import VerificationError
from verifier.schema import validate_dcc
from verifier.trust import SignerKey, compute_kid
from verifier.verify import cert_type_of

logger = logging.getLogger(__name__)

# Steps a verifier is responsible for, in pipeline order. PICTUREDECODE belongs to the QR
# decoder and ENCODE to an issuer, so neither is checked here.
STEPS = (
    "UNPREFIX", "B45DECODE", "COMPRESSION", "DECODE", "VALIDJSON", "VERIFY",
    "EXPIRATIONCHECK", "KEYUSAGE", "SCHEMAVALIDATION", "VALIDOBJECT",
)

# Upstream data faults (dgc-testdata 4a62c8d, see tests/data/dcc/SOURCE.md):
# (country, case-name regex, step) -> why the expectation is wrong or undecidable.
KNOWN_FAULTS: dict[tuple[str, str, str], str] = {
    ("NL", r".*", "SCHEMAVALIDATION"):
        "NL schema expectations match no DCC schema version (upstream issue 107)",
    ("NL", r".*", "VALIDOBJECT"):
        "NL schema expectations match no DCC schema version (upstream issue 107)",
    ("BG", r"[12]", "SCHEMAVALIDATION"): "doubtful schema expectation in the upstream data",
    ("BG", r"[12]", "VALIDOBJECT"): "doubtful schema expectation in the upstream data",
    ("HU", r"3", "SCHEMAVALIDATION"): "doubtful schema expectation in the upstream data",
    ("HU", r"3", "VALIDOBJECT"): "doubtful schema expectation in the upstream data",
    ("FR", r"test_pcr_ok", "DECODE"):
        "times in JSON are 2 h off from the signed payload (upstream issue 141)",
    ("FR", r"test_pcr_ok", "VALIDJSON"):
        "times in JSON are 2 h off from the signed payload (upstream issue 141)",
    ("IS", r"3", "KEYUSAGE"):
        "expects a key-usage failure although the DSC has no EKU, which allows every type",
}

_CLOCK = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?"
)


def parse_clock(text: str) -> datetime:
    """Parse a VALIDATIONCLOCK: Z, ±HH:MM, ±HHMM or no offset (UTC), 0 to 9 fraction digits.

    :raises ValueError: when the text is not such a time.
    """
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    day, hour, minute, second, fraction, offset = match.groups()
    base = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return base.replace(microsecond=micro, tzinfo=tz)


@dataclass
class CaseResult:
    """Outcome of one case: per step, (expected, actual, reason when actual is a failure)."""

    name: str
    country: str
    steps: dict[str, tuple[bool, bool, str]] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def disagreements(self) -> dict[str, tuple[bool, bool, str]]:
        """Steps whose outcome differs from the expectation and are not known faults."""
        return {s: v for s, v in self.steps.items() if v[0] != v[1] and s not in self.known}

    @property
    def passed(self) -> bool:
        """True when every checked step agrees, known faults aside."""
        return not self.error and not self.disagreements


def _unhex(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return binascii.unhexlify(value.strip())
    except (binascii.Error, ValueError):
        return None


def _normalise(value: Any) -> Any:
    """JSON-comparable form of a decoded DCC (tuples to lists, frozendicts to dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, str) and len(value) > 16 and value[10:11] in ("T", "t", " "):
        # Times compare as instants: "12:34:56Z" and "12:34:56+00:00" are the same value.
        try:
            return parse_clock(value).astimezone(timezone.utc)
        except ValueError:
            return value
    return value


class Mismatch(Exception):
    """A step ran but its output differs from the case's recorded value."""


def _attempt(step: Callable[[], Any]) -> tuple[bool, str, Any]:
    try:
        return True, "", step()
    except VerificationError as err:
        return False, f"{err.code}: {err.detail}" if err.detail else err.code, None
    except Mismatch as err:
        return False, f"mismatch: {err}", None
    except Exception as err:  # noqa: BLE001 - a crash is reported as a failed step, not raised
        return False, f"internal {type(err).__name__}: {err}", None


class _Case:
    """Lazily computed intermediate values of one case."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        ctx = data.get("TESTCTX") or {}
        self.ctx = ctx if isinstance(ctx, Mapping) else {}

    def cose_bytes(self) -> bytes:
        cose_hex = _unhex(self.data.get("COSE"))
        if cose_hex is not None:
            return cose_hex
        return hcert.decode_transport(self.data["PREFIX"])

    def chain_dcc(self) -> Any:
        return cwt.parse_claims(cose.parse_sign1(hcert.decode_transport(self.data["PREFIX"])).payload).dcc

    def claims(self) -> cwt.Claims:
        return cwt.parse_claims(cose.parse_sign1(self.cose_bytes()).payload)

    def signer(self) -> SignerKey:
        der = base64.b64decode(self.ctx["CERTIFICATE"])
        return SignerKey.from_certificate(der, kid=compute_kid(der))

    def now(self) -> datetime:
        return parse_clock(self.ctx.get("VALIDATIONCLOCK") or self.ctx["validationClockInstant"])

    # One method per step: return normally for success, raise for failure.
    def step_unprefix(self) -> None:
        body = hcert.unprefix(self.data["PREFIX"])
        if "BASE45" in self.data and body != self.data["BASE45"]:
            raise Mismatch("PREFIX is not HC1: + BASE45")

    def step_b45decode(self) -> None:
        text = self.data.get("BASE45") or hcert.unprefix(self.data["PREFIX"])
        raw = b45decode(text)
        expected = _unhex(self.data.get("COMPRESSED"))
        if expected is not None and raw != expected:
            raise Mismatch("Base45 does not decode to COMPRESSED")

    def step_compression(self) -> None:
        compressed = _unhex(self.data.get("COMPRESSED"))
        if compressed is None:
            compressed = b45decode(hcert.unprefix(self.data["PREFIX"]))
        out = hcert.inflate(compressed)
        expected = _unhex(self.data.get("COSE"))
        if expected is not None and out != expected:
            raise Mismatch("COMPRESSED does not inflate to COSE")

    def step_decode(self) -> None:
        dcc = _normalise(self.claims().dcc)
        if "JSON" in self.data and dcc != _normalise(self.data["JSON"]):
            raise Mismatch("payload differs from JSON")

    def step_validjson(self) -> None:
        if _normalise(self.chain_dcc()) != _normalise(self.data["JSON"]):
            raise Mismatch("payload from PREFIX differs from JSON")

    def step_verify(self) -> None:
        msg = cose.parse_sign1(self.cose_bytes())
        signer = self.signer()
        if cose.require_kid(msg) != signer.kid:
            raise Mismatch("kid does not match CERTIFICATE")
        cose.verify_signature(msg, signer.public_key)

    def step_expirationcheck(self) -> None:
        cwt.check_times(self.claims(), self.now())

    def step_keyusage(self) -> None:
        self.signer().check_type(cert_type_of(self.claims().dcc))

    def step_schemavalidation(self) -> None:
        validate_dcc(self.claims().dcc, value_sets=False)

    def step_validobject(self) -> None:
        validate_dcc(self.data["JSON"], value_sets=False)


def _known_fault(country: str, name: str, step: str) -> str | None:
    for (c, pattern, s), why in KNOWN_FAULTS.items():
        if c == country and s == step and re.fullmatch(pattern, name):
            return why
    return None


def run_case(data: Mapping[str, Any], name: str, country: str) -> CaseResult:
    """Check every verifier step the case has an expectation for."""
    result = CaseResult(name=name, country=country)
    expected = data.get("EXPECTEDRESULTS")
    if not isinstance(expected, Mapping):
        result.error = "no EXPECTEDRESULTS object"
        return result
    case = _Case(data)
    for step in STEPS:
        want = expected.get(f"EXPECTED{step}")
        if not isinstance(want, bool):
            continue
        ok, reason, _ = _attempt(getattr(case, f"step_{step.lower()}"))
        result.steps[step] = (want, ok, reason)
        if ok != want:
            why = _known_fault(country, name, step)
            if why:
                result.known[step] = why
    return result


_LAYOUT_FOLDERS = ("2dcode", "raw")
_VERSION = re.compile(r"\d+\.\d+\.\d+")  # <COUNTRY>/<schema-version>/2DCode/raw


def find_cases(root: Path) -> Iterator[tuple[Path, str, str]]:
    """Yield (path, case name, country) for every JSON test case under `root`, sorted."""
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        # DIR may hold country folders, or be one country folder itself.
        first = rel.parts[0]
        inside_country = len(rel.parts) == 1 or first.lower() in _LAYOUT_FOLDERS or bool(_VERSION.fullmatch(first))
        country = root.resolve().name if inside_country else rel.parts[0]
        # Name a case by its path inside the country folder, less the usual 2DCode/raw folders.
        middle = [p for p in rel.parts[0 if inside_country else 1:-1] if p.lower() not in _LAYOUT_FOLDERS]
        yield path, "/".join([*middle, path.stem]), country


def run_directory(root: Path) -> list[CaseResult]:
    """Run every case under `root`; unreadable files are reported as errors, not skipped."""
    results = []
    for path, name, country in find_cases(root):
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            results.append(CaseResult(name=name, country=country, error=f"unreadable: {err}"))
            continue
        if not isinstance(data, Mapping) or "EXPECTEDRESULTS" not in data:
            continue  # not a test case (e.g. a schema or config file)
        results.append(run_case(data, name, country))
    return results
