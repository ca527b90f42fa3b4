"""`chot keys ...`: thin click commands over the ministry tooling."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from keys import bundle as bundle_mod
from keys import dcc, issue, keystore, qr, revoke
from keys.errors import KeysError
from keys.ministry import MinistryDir, add_dsc, init_ministry
from keys.people import Person

logger = logging.getLogger(__name__)

_TYPE_LETTERS = {"v": "v", "t": "t", "r": "r", "vaccination": "v", "test": "t", "recovery": "r"}


class _KeysGroup(click.Group):
    """Turns the tooling's errors into one readable line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeysError as err:
            raise click.ClickException(str(err)) from None
        except UnicodeDecodeError as err:
            raise click.ClickException(f"input is not {err.encoding} text (byte {err.start})") from None
        except OSError as err:  # unwritable output, a file where a directory should be, a full disk
            raise click.ClickException(f"{err.filename or 'file'}: {err.strerror or err}") from None


def _passphrase(given: str | None, *, confirm: bool = False) -> str:
    """From --passphrase, else the environment, else a hidden prompt when a person is at a terminal."""
    def ask() -> str:
        return str(click.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm))

    return keystore.resolve_passphrase(given, prompt=ask if sys.stdin.isatty() else None)


def _now(value: dt.datetime | None) -> dt.datetime:
    """The --now option (read as UTC), else the clock."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value.replace(tzinfo=dt.UTC)


def _types(value: str) -> list[str]:
    try:
        return list(dict.fromkeys(_TYPE_LETTERS[part.strip().lower()] for part in value.split(",")))
    except KeyError:
        raise click.BadParameter("use a comma list of v, t, r (or vaccination, test, recovery)") from None


passphrase_option = click.option(
    "--passphrase", default=None, metavar="TEXT",
    help=f"Passphrase of the ministry's private keys (else ${keystore.PASSPHRASE_ENV}, else a prompt).")
ministry_option = click.option(
    "--ministry", "ministry_dir", required=True, envvar="CHOT_MINISTRY_DIR", show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path), help="The ministry directory made by init-ministry.")
now_option = click.option(
    "--now", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]), default=None,
    help="Act as if it were this UTC time (for demos and tests); default: the clock.")


@click.group(cls=_KeysGroup)
def keys() -> None:
    """Ministry side: root and signer keys, issuing certificates, QR codes, trust bundles, revocation."""


@keys.command("init-ministry")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--alg", type=click.Choice(["ES256", "PS256"]), default="ES256", show_default=True,
              help="Signature algorithm of the CSCA and DSCs.")
@click.option("--single-dsc", is_flag=True, help="One DSC for all certificate types instead of one per type.")
@click.option("--country", default="VN", show_default=True, help="Country code in the certificates.")
@passphrase_option
def init_ministry_cmd(directory: Path, alg: str, single_dsc: bool, country: str, passphrase: str | None) -> None:
    """Create a ministry in DIRECTORY: CSCA, DSCs, trust-list key and anchor.pem for units."""
    ministry = init_ministry(directory, _passphrase(passphrase, confirm=True), alg=alg, split=not single_dsc,
                             country=country)
    for cert in ministry.dsc_certificates():
        entry = bundle_mod.dsc_entry(cert)
        click.echo(f"DSC kid={entry['kid']} types={','.join(entry['types'])}")
    click.echo(f"anchor for units: {ministry.anchor}")


@keys.command("add-dsc")
@ministry_option
@click.argument("name")
@click.option("--types", "types_", default="v,t,r", show_default=True,
              help="Certificate types the DSC may sign: comma list of v, t, r.")
@click.option("--alg", type=click.Choice(["ES256", "PS256"]), default="ES256", show_default=True,
              help="Signature algorithm of the new DSC.")
@click.option("--days", type=click.IntRange(1, 3650), default=730, show_default=True, help="Validity in days.")
@passphrase_option
def add_dsc_cmd(ministry_dir: Path, name: str, types_: str, alg: str, days: int, passphrase: str | None) -> None:
    """Add a document signer certificate NAME under the ministry's CSCA."""
    signer = add_dsc(MinistryDir(ministry_dir), _passphrase(passphrase), name, _types(types_), alg=alg, days=days)
    click.echo(f"DSC {signer.name} kid={bundle_mod.dsc_entry(signer.certificate)['kid']} "
               f"types={','.join(signer.types)}")


@keys.command("issue")
@ministry_option
@click.option("--person", "person_file", required=True, type=click.File("r", encoding="utf-8"),
              help="JSON of the holder: fn, gn, dob (fnt/gnt optional, made by ICAO transliteration).")
@click.option("--kind", type=click.Choice(["vaccination", "test", "recovery"]), required=True,
              help="Which certificate to issue.")
@click.option("--dose", default="2/2", show_default=True, help="Vaccination: dose number / doses in series.")
@click.option("--vaccine", default="pfizer", show_default=True,
              help=f"Vaccination: one of {', '.join(dcc.PRODUCTS)} or an mp code.")
@click.option("--date", "event_date", default=None, help="Vaccination date, or first positive test for recovery "
              "(YYYY-MM-DD; default 30 days ago).")
@click.option("--sampled-at", default=None, help="Test: sample time, ISO date-time (default a day ago).")
@click.option("--result", type=click.Choice(["negative", "positive"]), default="negative", show_default=True,
              help="Test: the result.")
@click.option("--test-type", type=click.Choice(["pcr", "rat"]), default="pcr", show_default=True,
              help="Test: PCR or rapid antigen.")
@click.option("--dsc", "dsc_name", default=None, help="Sign with this DSC (default: the first that may).")
@click.option("--valid-days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="CWT validity in days.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Where to write the HC1 text ('-' for stdout).")
@click.option("--qr", "qr_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the QR code PNG here.")
@now_option
@passphrase_option
def issue_cmd(ministry_dir: Path, person_file: Any, kind: str, dose: str, vaccine: str, event_date: str | None,
              sampled_at: str | None, result: str, test_type: str, dsc_name: str | None, valid_days: int,
              out: Path, qr_out: Path | None, now: dt.datetime | None, passphrase: str | None) -> None:
    """Issue one certificate for the person in a JSON file."""
    try:
        person = Person.from_mapping(json.load(person_file))
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not JSON: {err.msg} at line {err.lineno}", param_hint="--person") from None
    moment = _now(now)
    try:
        dn, sd = (int(part) for part in dose.split("/"))
    except ValueError:
        raise click.BadParameter("write it as N/M, e.g. 2/2", param_hint="--dose") from None
    document = issue.document_for(kind, person, now=moment, dose=(dn, sd), vaccine=vaccine, event_date=event_date,
                                  sampled_at=sampled_at, result=result, test_type=test_type)
    signer = MinistryDir(ministry_dir).signer(_passphrase(passphrase), issue.KIND_LETTERS[kind], dsc_name, now=moment)
    text = issue.sign(document, signer, now=moment, validity=dt.timedelta(days=valid_days))
    if str(out) == "-":
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="ascii")
    if qr_out:
        qr.write_png(text, qr_out)
    logger.info("issued a %s certificate with DSC %s (kid %s)", kind, signer.name, signer.kid.hex())


@keys.command("issue-bulk")
@ministry_option
@click.option("--count", type=click.IntRange(1, 100_000), required=True, help="How many certificates.")
@click.option("--seed", default="0", show_default=True, help="Seed: the same seed gives the same people.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for NNNNN-<kind>.hc1.txt, NNNNN-<kind>.png and manifest.json.")
@now_option
@passphrase_option
def issue_bulk_cmd(ministry_dir: Path, count: int, seed: str, out_dir: Path, now: dt.datetime | None,
                   passphrase: str | None) -> None:
    """Issue certificates for synthetic people (a mix of kinds), with QR PNGs and a name-free manifest."""
    written = issue.issue_bulk(MinistryDir(ministry_dir), _passphrase(passphrase), count, seed, out_dir,
                               now=_now(now))
    kinds = {k: sum(1 for w in written if w.kind == k) for k in ("v", "t", "r")}
    click.echo(f"issued {len(written)} certificates into {out_dir} "
               f"(vaccination {kinds['v']}, test {kinds['t']}, recovery {kinds['r']})")


@keys.command("qr")
@click.argument("source", type=click.File("r", encoding="ascii"))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG file to write.")
@click.option("--scale", type=click.IntRange(1, 40), default=4, show_default=True, help="Pixels per module.")
def qr_cmd(source: Any, out: Path, scale: int) -> None:
    """Render the HC1 text in SOURCE (a file, or - for stdin) as a QR code PNG (error correction Q)."""
    text = source.read().strip()
    if not text.startswith(issue.hc1.PREFIX):
        raise click.BadParameter("the text does not start with HC1:", param_hint="SOURCE")
    qr.write_png(text, out, scale=scale)
    click.echo(f"wrote {out}")


@keys.command("bundle")
@ministry_option
@click.option("--version", "version", type=click.IntRange(1), required=True,
              help="Bundle version: must exceed the last one published from this ministry.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle file to write.")
@click.option("--lifetime-hours", type=click.IntRange(1, 24 * 90), default=24, show_default=True,
              help="Hours until next_update.")
@click.option("--value-sets", "value_sets", default=None, metavar="shipped|DIR",
              help="Also carry the DCC value sets, which units then use instead of their shipped ones: "
                   "`shipped` (the verifier's own) or a folder of EU value set files (<name>.json, e.g. "
                   "test-manf.json); a folder replaces only the sets it holds.")
@click.option("--roster-key", "roster_keys", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM public key of a dashboard's officer-roster key that units should trust (repeatable).")
@click.option("--trust-list", "trust_lists", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A published trust list (Germany's signed DSC list, DCC gateway JSON, Austria's CBOR list "
                   "with FILE.sig beside it, or a folder of PEM/DER DSCs) whose signers the bundle also "
                   "carries once checked; repeatable.")
@click.option("--trust-list-format", "trust_list_format", default=None,
              type=click.Choice(["de-dsc-list", "dcc-gateway", "at-cbor", "folder"]),
              help="The format of --trust-list (default: detected).")
@click.option("--trust-list-key", "trust_list_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The pinned PEM public key that must have signed --trust-list (de-dsc-list, at-cbor).")
@click.option("--trust-list-anchor", "trust_list_anchors", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate whose CMS signature each DCC gateway entry must carry (repeatable).")
@click.option("--trust-list-max-age-days", type=click.IntRange(1), default=None,
              help="Refuse a trust list older than this many days.")
@now_option
@passphrase_option
def bundle_cmd(ministry_dir: Path, version: int, out: Path, lifetime_hours: int, value_sets: str | None,
               roster_keys: tuple[Path, ...], trust_lists: tuple[Path, ...], trust_list_format: str | None,
               trust_list_key: Path | None, trust_list_anchors: tuple[Path, ...],
               trust_list_max_age_days: int | None, now: dt.datetime | None, passphrase: str | None) -> None:
    """Build and sign the trust bundle: every DSC, the revocations, the shipped policies and the roster keys.

    With --trust-list, the signers of published lists the ministry accepted are re-signed in the
    bundle (units trust only the ministry's key); a list older than the last accepted is refused.
    """
    from keys import trustimport
    from verifier.errors import VerificationError

    documents = None
    if value_sets == "shipped":
        documents = bundle_mod.shipped_value_sets()
    elif value_sets is not None and Path(value_sets).is_file():
        from verifier.eurules import read_value_sets as read_gateway_value_sets

        try:  # the EU gateway's list of value set documents
            documents, _ = read_gateway_value_sets(Path(value_sets).read_bytes())
        except VerificationError as err:
            raise click.ClickException(f"--value-sets: {err.detail}") from err
    elif value_sets is not None:
        if not Path(value_sets).is_dir():
            raise click.BadParameter("give `shipped`, a folder of value set files or the EU gateway's value "
                                     "sets JSON", param_hint="--value-sets")
        documents = bundle_mod.read_value_sets(Path(value_sets))
    ministry = MinistryDir(ministry_dir)
    moment = _now(now)
    imported = []
    for path in trust_lists:
        try:
            imported.append(trustimport.check_list(
                ministry, path, moment, fmt=trust_list_format,
                key=trust_list_key.read_bytes() if trust_list_key else None,
                anchors=[p.read_bytes() for p in trust_list_anchors],
                max_age=dt.timedelta(days=trust_list_max_age_days) if trust_list_max_age_days else None))
        except VerificationError as err:
            raise click.ClickException(f"{path.name}: {err.message_en} ({err.code}: {err.detail})") from err
    data = bundle_mod.publish(ministry, _passphrase(passphrase), version, now=moment,
                              lifetime=dt.timedelta(hours=lifetime_hours), value_sets=documents,
                              roster_keys=[p.read_text(encoding="ascii") for p in roster_keys],
                              imported_dscs=[s.bundle_entry() for lst in imported for s in lst.signers])
    for lst in imported:
        trustimport.record(ministry, lst)
        _echo_import_report(lst)
    keystore.write_public_file(out, data)
    carried = f" with value sets {', '.join(sorted(documents))}" if documents else ""
    click.echo(f"wrote trust bundle version {version} to {out}{carried}")


def _echo_import_report(imported: Any) -> None:
    """Per country: signers taken, and refused with why."""
    when = f" of {imported.issued_at:%Y-%m-%d}" if imported.issued_at else ""
    click.echo(f"trust list {imported.format}{when}: {len(imported.signers)} signers taken, "
               f"{len(imported.refused)} refused")
    for country, row in imported.report().items():
        refused = ", ".join(f"{n} {why}" for why, n in sorted(row["refused"].items()))
        click.echo(f"  {country}: {row['taken']} taken" + (f"; refused: {refused}" if refused else ""))


@keys.command("revoke")
@ministry_option
@click.option("--hc1", "hc1_file", type=click.File("r", encoding="ascii"), default=None,
              help="File holding the HC1 text of the certificate to revoke (all three hash types).")
@click.option("--uci", default=None, help="Certificate identifier to revoke (UCI and COUNTRYCODEUCI hashes).")
@click.option("--country", default="VN", show_default=True, help="Issuing country, with --uci.")
def revoke_cmd(ministry_dir: Path, hc1_file: Any, uci: str | None, country: str) -> None:
    """Revoke a certificate; it drops out at the next `chot keys bundle`. Only hashes are stored."""
    if (hc1_file is None) == (uci is None):
        raise click.UsageError("give exactly one of --hc1 or --uci")
    ministry = MinistryDir(ministry_dir)
    ministry.require()
    hashes = revoke.hashes_for_hc1(hc1_file.read()) if hc1_file else revoke.hashes_for_uci(uci or "", country)
    added = revoke.RevocationStore(ministry).add(hashes)
    click.echo(f"revoked: {added} new hashes ({', '.join(sorted(hashes))})")


@keys.command("shc-issue")
@click.option("--issuer-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The SMART Health Card issuer's folder: shc-issuer-key.pem (made on first use, encrypted "
                   "with the passphrase) and shc-issuers.json (its JWKS by iss, for chot verify --shc-issuers).")
@click.option("--iss", default=None, help="The issuer URL written in cards (default: the folder's, else a test URL).")
@click.option("--person", "person_file", required=True, type=click.File("r", encoding="utf-8"),
              help="JSON file with the person (as for `chot keys issue`).")
@click.option("--dose", "doses", multiple=True, required=True, metavar="CVX:YYYY-MM-DD",
              help="One vaccination: its CVX code and date; repeatable.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Where to write the shc:/ text ('-' for stdout).")
@click.option("--qr", "qr_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the QR code PNG here.")
@now_option
@passphrase_option
def shc_issue_cmd(issuer_dir: Path, iss: str | None, person_file: Any, doses: tuple[str, ...], out: Path,
                  qr_out: Path | None, now: dt.datetime | None, passphrase: str | None) -> None:
    """Issue one SMART Health Card (COVID-19 vaccination) with our own P-256 issuer key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from keys import shc

    try:
        person = Person.from_mapping(json.load(person_file))
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not JSON: {err.msg} at line {err.lineno}", param_hint="--person") from None
    pairs = []
    for dose in doses:
        code, _, when = dose.partition(":")
        if not code.isdigit() or len(when) != 10:
            raise click.BadParameter("write it as CVX:YYYY-MM-DD, e.g. 208:2021-08-01", param_hint="--dose")
        pairs.append((code, when))
    issuer_dir.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = issuer_dir / "shc-issuer-key.pem", issuer_dir / "shc-issuers.json"
    secret = _passphrase(passphrase, confirm=not key_path.exists())
    if key_path.exists():
        key = keystore.read_private_key(key_path, secret)
        known = json.loads(jwks_path.read_text("utf-8")) if jwks_path.exists() else {}
        iss = iss or next(iter(known), shc.EXAMPLE_ISS)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        keystore.write_private_key(key_path, key, secret)
        iss = iss or shc.EXAMPLE_ISS
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeysError(f"{key_path} is not a P-256 key")
    keystore.write_public_file(jwks_path, json.dumps({iss: shc.jwks(key)}, indent=1).encode("utf-8"))
    payload = shc.card_payload(iss=iss, nbf=_now(now), family=person.family_name, given=person.given_name.split(),
                               birth_date=person.dob, doses=pairs)
    text = shc.issue_card(key, payload)
    if str(out) == "-":
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="ascii")
    if qr_out:
        qr.write_png(text, qr_out)
