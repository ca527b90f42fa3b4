"""`chot verify` and `chot conformance`: thin click commands over the verifier library."""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from chot.conformance import STEPS, CaseResult, parse_clock, run_directory
from scanner.qr.imageheader import is_image
from verifier.errors import VerificationError
from verifier.trust import SignerKey, TrustStore
from verifier.verdict import GREEN, YELLOW
from verifier.verify import VerifyOptions
from verifier.verify import verify as verify_certificate

# Exit codes of `chot verify`.
EXIT_GREEN, EXIT_YELLOW, EXIT_RED, EXIT_ERROR = 0, 1, 2, 3


class VerifyUsageError(click.ClickException):
    """A problem with the command's input (not a verdict): exit code 3."""

    exit_code = EXIT_ERROR


class _ErrorExit3Command(click.Command):
    """Click reports usage errors with exit code 2, which here means red: use 3 instead."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            err.exit_code = EXIT_ERROR
            raise


def _read_image(path: Path) -> list[str]:
    # The scanner's decoder is imported here, not at the top, so verifying a text payload
    # never loads OpenCV.
    from scanner.qr.decode import read_image

    try:
        return read_image(path)
    except Exception as err:  # the decoder's own errors say what was wrong with the image
        raise VerifyUsageError(f"{path}: {getattr(err, 'why', err)}") from err


# A certificate's text is a few kilobytes; anything far larger is not one (and is not read whole).
_MAX_TEXT_BYTES = 1 << 20
# Looks like a file name (a folder part or an extension) rather than QR text.
_PATH_LIKE = re.compile(r"[/\\]|\.[A-Za-z0-9]{1,5}$")


def _text(data: bytes, where: str) -> str:
    """The payload text of `data` (UTF-8), or an exit-3 error naming `where`."""
    if len(data) > _MAX_TEXT_BYTES:
        raise VerifyUsageError(f"{where}: more than {_MAX_TEXT_BYTES // 1024} KiB, not a certificate's text")
    try:
        text = data.decode("utf-8-sig").strip()  # a byte-order mark some editors write is not text
    except UnicodeDecodeError as err:
        raise VerifyUsageError(f"{where}: not UTF-8 text (byte 0x{data[err.start]:02X} at offset {err.start}) "
                               "and not an image chot reads") from None
    if not text:
        raise VerifyUsageError(f"{where}: empty, no certificate to verify")
    return text


def _read_payload(source: str | None) -> str:
    """SOURCE as the text to verify: stdin, a text or image file, or the argument itself.

    Unreadable input (missing, a folder, empty, not UTF-8, an image without a code) is an
    error, exit 3, never a verdict: a red "not a certificate" must mean the code was read.
    """
    if source is None or source == "-":
        return _text(sys.stdin.buffer.read(_MAX_TEXT_BYTES + 1), "standard input")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:  # bytes the shell passed on that are not UTF-8 (surrogate escapes)
        raise VerifyUsageError("the argument is not UTF-8 text") from None
    if source.startswith(("HC1:", "shc:/")):
        return source
    path = Path(source)
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except (OSError, ValueError):  # far too long for a file name, or a NUL in it: it is text
        is_dir = exists = False
    if is_dir:
        raise VerifyUsageError(f"{source}: is a folder; give a text or image file, or the HC1: text")
    if not exists:
        if _PATH_LIKE.search(source):
            raise VerifyUsageError(f"{source}: no such file")
        return source  # text given on the command line (QR content other than HC1 is judged red)
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_TEXT_BYTES + 1)
    except OSError as err:
        raise VerifyUsageError(f"{source}: cannot read it ({err.strerror or err})") from None
    if is_image(data[:64]):
        texts = _read_image(path)
        if not texts:
            raise VerifyUsageError(f"{path}: no QR code found in the image")
        return next((t for t in texts if t.startswith(("HC1:", "shc:/"))), texts[0])
    return _text(data, source)


def _load_certificate(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


def _load_shc_issuers(path: Path | None) -> dict[str, Any]:
    """SMART Health Card issuers from a JSON file: {"<iss URL>": <that issuer's JWKS>, ...}."""
    if path is None:
        return {}
    from verifier.formats.shc import issuers_from_document

    try:
        return issuers_from_document(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise VerifyUsageError(f"--shc-issuers is unreadable: {err}") from err


def _import_trust_list(path: Path, fmt: str | None, key: Path | None, anchors: tuple[Path, ...],
                       now: datetime) -> TrustStore:
    """A published trust list checked against the pinned key or anchors; a short report on stderr."""
    from verifier.trustlists import import_list

    try:
        imported = import_list(path, now, fmt=fmt, key=key.read_bytes() if key else None,
                               anchors=[a.read_bytes() for a in anchors])
    except VerificationError as err:
        raise VerifyUsageError(f"{path.name}: {err.message_en} ({err.code}: {err.detail})") from err
    except OSError as err:
        raise VerifyUsageError(f"{path.name}: {err}") from err
    when = f" of {imported.issued_at:%Y-%m-%d}" if imported.issued_at else ""
    click.echo(f"trust list {imported.format}{when}: {len(imported.signers)} signers taken, "
               f"{len(imported.refused)} refused", err=True)
    return imported.trust_store()


def _load_trust(bundle: Path | None, anchor: Path | None, dscs: tuple[Path, ...],
                shc_issuers: Path | None = None) -> tuple[TrustStore, Any]:
    issuers = _load_shc_issuers(shc_issuers)
    trust, parsed = _load_dcc_trust(bundle, anchor, dscs, bool(issuers))
    trust.shc_issuers = {**trust.shc_issuers, **issuers}
    return trust, parsed


def _load_dcc_trust(bundle: Path | None, anchor: Path | None, dscs: tuple[Path, ...],
                    optional: bool) -> tuple[TrustStore, Any]:
    if bundle is not None:
        from verifier.bundle import BundleError, parse_bundle

        if anchor is None:
            raise VerifyUsageError("--bundle needs --anchor (the pinned trust-list public key, PEM)")
        try:
            parsed = parse_bundle(bundle.read_bytes(), anchor.read_bytes())
        except (BundleError, OSError) as err:
            raise VerifyUsageError(str(err)) from err
        return parsed.trust_store(), parsed
    if not dscs and optional:
        return TrustStore([]), None
    if not dscs:
        raise VerifyUsageError("give the trust list: --bundle FILE --anchor PEM, --trust-list FILE "
                               "(with --trust-list-key or --trust-list-anchor), or --dsc FILE (repeatable)")
    try:
        return TrustStore([SignerKey.from_certificate(_load_certificate(p)) for p in dscs]), None
    except (OSError, ValueError) as err:
        raise VerifyUsageError(f"a --dsc certificate is unreadable: {err}") from err


def _apply_value_sets(trust: TrustStore, path: Path | None) -> dict[str, list[str]]:
    """Replace the trust store's value sets with the EU gateway's file; the code lists by gateway id."""
    from verifier.eurules import GATEWAY_NAMES, read_value_sets

    if path is None:  # the rules still need value sets: the ones in use, under the gateway's ids
        return {gid: sorted(trust.value_sets[name]) for gid, name in GATEWAY_NAMES.items()
                if name in trust.value_sets.codes}
    try:
        by_name, by_id = read_value_sets(path.read_bytes())
    except VerificationError as err:
        raise VerifyUsageError(f"{path.name}: {err.message_en} ({err.detail})") from err
    trust.value_sets = trust.value_sets.with_overrides(by_name)
    return by_id


def _load_eu_rules(path: Path, country: str | None, value_sets: dict[str, list[str]]) -> Any:
    from verifier.eurules import EuRulesPolicy, read_rules

    if not country or len(country) != 2:
        raise VerifyUsageError("--rules needs --country CC (the two-letter country whose rules apply)")
    try:
        return EuRulesPolicy(read_rules(path.read_bytes()), country, value_sets)
    except VerificationError as err:
        raise VerifyUsageError(f"{path.name}: {err.message_en} ({err.detail})") from err


def _load_policy(name: str, bundle: Any) -> Any:
    try:
        from verifier import policy as policy_mod
    except ImportError as err:
        raise VerifyUsageError(f"policies are not available: {err}") from err
    path = Path(name)
    try:
        if path.suffix == ".json" and path.is_file() and hasattr(policy_mod.Policy, "from_document"):
            return policy_mod.Policy.from_document(json.loads(path.read_text("utf-8")))
        if bundle is not None and name in bundle.policies and hasattr(policy_mod.Policy, "from_document"):
            return policy_mod.Policy.from_document(bundle.policies[name])
        return policy_mod.builtin_policy(name)
    except (KeyError, ValueError, OSError, VerificationError) as err:
        raise VerifyUsageError(f"unknown or unreadable policy {name!r}: {err}") from err


def _print_verdict(verdict: Any) -> None:
    colour = {GREEN: "green", YELLOW: "yellow"}.get(verdict.result, "red")
    click.secho(f"{verdict.result.upper()}  ({verdict.reason})", fg=colour, bold=True)
    click.echo(f"  {verdict.message_en}")
    click.echo(f"  {verdict.message_vi}")
    if verdict.holder is not None:
        click.echo(f"  name:    {verdict.holder.display_name()}")
        click.echo(f"  born:    {verdict.holder.dob or '-'}")
    if verdict.cert_type:
        detail = ", ".join(f"{k}={v}" for k, v in verdict.detail.items())
        click.echo(f"  type:    {verdict.cert_type}  {detail}")
    for label, value in (("format", verdict.format), ("issuer", verdict.issuer), ("kid", verdict.kid), ("policy", verdict.policy),
                         ("expires", verdict.expires_at)):
        if value:
            click.echo(f"  {label + ':':<8} {value}")


@click.command(cls=_ErrorExit3Command)
@click.argument("source", required=False)
@click.option("--bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Signed trust bundle (chot-trust-bundle/1) to take the signer keys from.")
@click.option("--anchor", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pinned trust-list public key (PEM) that must have signed --bundle.")
@click.option("--dsc", "dscs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A document signer certificate (DER or PEM) to trust; repeatable.")
@click.option("--shc-issuers", "shc_issuers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="SMART Health Card issuers to trust: a JSON object of iss URL -> that issuer's JWKS.")
@click.option("--trust-list", "trust_list", type=click.Path(exists=True, path_type=Path),
              help="A published trust list: Germany's signed DSC list, DCC gateway JSON, Austria's CBOR list "
                   "(FILE.sig beside it) or a folder of PEM/DER DSCs.")
@click.option("--trust-list-format", type=click.Choice(["de-dsc-list", "dcc-gateway", "at-cbor", "folder"]),
              help="The format of --trust-list (default: detected).")
@click.option("--trust-list-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The pinned PEM public key that must have signed --trust-list.")
@click.option("--trust-list-anchor", "trust_list_anchors", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate whose CMS signature each DCC gateway entry must carry (repeatable).")
@click.option("--value-sets", "value_sets", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The EU gateway's value sets JSON: replaces the shipped sets it names.")
@click.option("--rules", "rules", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The EU gateway's business rules JSON: judge by --country's rules instead of --policy.")
@click.option("--country", help="With --rules: the country whose acceptance rules apply (e.g. DE).")
@click.option("--policy", "policy_name", default="vn-2021", show_default=True,
              help="Policy name (built in or from the bundle) or a policy JSON file.")
@click.option("--now", "now_text", help="Validation time, ISO 8601 (default: this machine's clock).")
@click.option("--skew", default=300, show_default=True, type=click.IntRange(0, 86400),
              help="Clock-skew allowance in seconds for the certificate's issue and expiry times.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON object.")
def verify(source: str | None, bundle: Path | None, anchor: Path | None, dscs: tuple[Path, ...],
           shc_issuers: Path | None, trust_list: Path | None, trust_list_format: str | None,
           trust_list_key: Path | None, trust_list_anchors: tuple[Path, ...], value_sets: Path | None,
           rules: Path | None, country: str | None, policy_name: str, now_text: str | None, skew: int,
           as_json: bool) -> None:
    """Verify one certificate: SOURCE is the HC1: or shc:/ text, a file (text or QR image), or - / nothing for stdin.

    Exit code: 0 green, 1 yellow, 2 red, 3 error: input that cannot be read (a missing file, a
    folder, an empty file or stdin, text that is not UTF-8, an image without a code or declaring a
    size outside 16..8192 px), bad options, or no trust list. A red verdict means a code was read.
    """
    try:
        now = parse_clock(now_text) if now_text else datetime.now(UTC)
    except ValueError as err:
        raise VerifyUsageError(str(err)) from err
    if trust_list is not None:
        trust, parsed_bundle = _import_trust_list(trust_list, trust_list_format, trust_list_key,
                                                  trust_list_anchors, now), None
        trust.shc_issuers = {**trust.shc_issuers, **_load_shc_issuers(shc_issuers)}
    else:
        trust, parsed_bundle = _load_trust(bundle, anchor, dscs, shc_issuers)
    rule_value_sets = _apply_value_sets(trust, value_sets)
    if rules is not None:
        policy = _load_eu_rules(rules, country, rule_value_sets)
    else:
        policy = _load_policy(policy_name, parsed_bundle)
    payload = _read_payload(source)
    verdict = verify_payload(payload, trust, now, policy, skew)
    if as_json:
        click.echo(json.dumps(verdict.to_json(), ensure_ascii=False, default=str))
    else:
        _print_verdict(verdict)
    sys.exit({GREEN: EXIT_GREEN, YELLOW: EXIT_YELLOW}.get(verdict.result, EXIT_RED))


def verify_payload(payload: str, trust: TrustStore, now: datetime, policy: Any, skew: int) -> Any:
    """The library call behind `chot verify`."""
    return verify_certificate(payload, trust, now, policy, VerifyOptions(clock_skew=timedelta(seconds=skew)))


def conformance_summary(results: list[CaseResult]) -> dict[str, Any]:
    """Counts per country and step, the disagreements and the known faults, as plain data."""
    table: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    disagreements, known = [], []
    for case in results:
        for step, (want, got, reason) in case.steps.items():
            cell = table[case.country][step]
            if want == got:
                cell["agree"] += 1
            elif step in case.known:
                cell["known"] += 1
                known.append({"country": case.country, "case": case.name, "step": step,
                              "expected": want, "actual": got, "why": case.known[step]})
            else:
                cell["disagree"] += 1
                disagreements.append({"country": case.country, "case": case.name, "step": step,
                                      "expected": want, "actual": got, "reason": reason})
        if case.error:
            disagreements.append({"country": case.country, "case": case.name, "step": None,
                                  "expected": None, "actual": None, "reason": case.error})
    passed = sum(case.passed for case in results)
    return {
        "cases": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "table": {c: {s: dict(v) for s, v in steps.items()} for c, steps in sorted(table.items())},
        "disagreements": disagreements,
        "known_faults": known,
    }


def _cell(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    total = sum(counts.values())
    text = f"{counts.get('agree', 0)}/{total}"
    if counts.get("known"):
        text += f" k{counts['known']}"
    return text


def _print_summary(summary: dict[str, Any]) -> None:
    short = [s[:8] for s in STEPS]
    click.echo(f"{'country':<8} " + " ".join(f"{s:>9}" for s in short))
    for country, steps in summary["table"].items():
        click.echo(f"{country:<8} " + " ".join(f"{_cell(steps.get(s)):>9}" for s in STEPS))
    click.echo("(cells: agreeing/checked; kN = N known upstream faults)")
    if summary["known_faults"]:
        click.echo(f"\nKnown upstream data faults ({len(summary['known_faults'])}):")
        for item in summary["known_faults"]:
            click.echo(f"  {item['country']} {item['case']} {item['step']}: expected "
                       f"{item['expected']}, got {item['actual']} - {item['why']}")
    if summary["disagreements"]:
        click.echo(f"\nDisagreements ({len(summary['disagreements'])}):")
        for item in summary["disagreements"]:
            click.echo(f"  {item['country']} {item['case']} {item['step']}: expected "
                       f"{item['expected']}, got {item['actual']} - {item['reason']}")
    click.echo(f"\n{summary['passed']} passed, {summary['failed']} failed")


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def conformance(directory: Path, as_json: bool) -> None:
    """Run every dgc-testdata style case under DIRECTORY and compare each verifier step.

    Exit code 0 when every case agrees (known upstream faults aside), 1 otherwise.
    """
    summary = conformance_summary(run_directory(directory))
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        _print_summary(summary)
    sys.exit(0 if summary["failed"] == 0 else 1)
