"""EU business rules and value sets in the EU gateway's formats, as a checkpoint policy.

Rules: a JSON list of `{Identifier, Type (Acceptance | Invalidation), Country, Region,
CertificateType (General | Vaccination | Test | Recovery), ValidFrom, ValidTo, EngineVersion,
Version, Logic (CertLogic), Description}`. For a certificate, `EuRulesPolicy` applies the chosen
country's Acceptance rules and the issuing country's Invalidation rules whose validity window
holds the validation time and whose type is General or the certificate's (the newest version
of each Identifier), with the external parameters the EU engine passes: validationClock,
valueSets, countryCode, exp, iat, issuerCountryCode. Every rule true: green; any false: red
naming it; a rule that cannot be evaluated, or none for the country: yellow (check by hand).

Value sets: a JSON list of `{valueSetId, valueSetDate, valueSetValues}`; each replaces the
shipped set it names (the gateway's ids are mapped to the schema's names, `GATEWAY_NAMES`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from verifier.certlogic import (
    CertLogicError,
    Expression,
    compile_expression,
    truthiness,
)
from verifier.errors import VerificationError
from verifier.valuesets import NAMES, codes_of

CERT_TYPES = {"v": "Vaccination", "t": "Test", "r": "Recovery"}
ENGINE_MAJORS = frozenset({0, 1})
"""CertLogic engine versions whose rules this evaluator runs (a 2.x rule is left open: yellow)."""
GATEWAY_NAMES = {
    "country-2-codes": "country-2-codes",
    "disease-agent-targeted": "disease-agent-targeted",
    "sct-vaccines-covid-19": "vaccine-prophylaxis",
    "vaccines-covid-19-names": "vaccine-medicinal-product",
    "vaccines-covid-19-auth-holders": "vaccine-mah-manf",
    "covid-19-lab-test-type": "test-type",
    "covid-19-lab-test-manufacturer-and-name": "test-manf",
    "covid-19-lab-result": "test-result",
}
"""The EU gateway's value set ids -> the names the DCC schema's `valueset-uri` uses."""
MAX_BYTES = 16 * 1024 * 1024


class RulesError(VerificationError):
    """A rules or value set file was refused whole; `detail` says why."""

    code = "rules_format"
    message_en = "The rules or value sets file was refused: nothing from it was used."
    message_vi = "Tệp quy định hoặc danh mục bị từ chối: không dùng dữ liệu nào từ tệp này."


def _json_list(data: bytes | str | list[Any], what: str) -> list[Any]:
    if isinstance(data, (bytes, str)):
        if len(data) > MAX_BYTES:
            raise RulesError(f"{what}: larger than {MAX_BYTES} bytes")
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise RulesError(f"{what}: not JSON") from err
    if not isinstance(data, list) or not data:
        raise RulesError(f"{what}: not a non-empty JSON list")
    return data


def read_value_sets(data: bytes | str | list[Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Gateway value set documents -> (documents by the schema's names, code lists by gateway id).

    The first replaces the shipped sets (ValueSets.with_overrides, a bundle's `value_sets`); the
    second is what the EU rules see as `external.valueSets`.

    :raises RulesError: when any document is malformed (the file is refused whole).
    """
    by_name: dict[str, Any] = {}
    by_id: dict[str, list[str]] = {}
    for index, document in enumerate(_json_list(data, "value sets")):
        if not isinstance(document, Mapping) or not isinstance(document.get("valueSetId"), str):
            raise RulesError(f"value sets[{index}]: no valueSetId")
        set_id = document["valueSetId"]
        try:
            codes = codes_of(document, set_id)
        except ValueError as err:
            raise RulesError(str(err)) from err
        by_id[set_id] = sorted(codes)
        name = GATEWAY_NAMES.get(set_id, set_id)
        if name in NAMES:
            by_name[name] = {"valueSetId": set_id, "valueSetDate": document.get("valueSetDate"),
                             "valueSetValues": dict(document["valueSetValues"])}
    return by_name, by_id


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise RulesError(f"{what} is not text")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise RulesError(f"{what} is not an ISO 8601 time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return (0,)


@dataclass(frozen=True)
class EuRule:
    """One EU business rule, its CertLogic compiled once."""

    identifier: str
    type: str
    country: str
    region: str
    certificate_type: str
    valid_from: datetime
    valid_to: datetime
    engine_version: tuple[int, ...]
    version: tuple[int, ...]
    expression: Expression
    description_en: str

    @classmethod
    def from_document(cls, doc: Any, index: int) -> EuRule:
        where = f"rules[{index}]"
        if not isinstance(doc, Mapping):
            raise RulesError(f"{where} is not an object")
        for key in ("Identifier", "Type", "Country", "CertificateType", "Logic"):
            if key not in doc:
                raise RulesError(f"{where} has no {key}")
        if doc["Type"] not in ("Acceptance", "Invalidation"):
            raise RulesError(f"{where}: Type {doc['Type']!r}")
        if doc["CertificateType"] not in ("General", *CERT_TYPES.values()):
            raise RulesError(f"{where}: CertificateType {doc['CertificateType']!r}")
        try:
            expression = compile_expression(doc["Logic"])
        except CertLogicError as err:
            raise RulesError(f"{where} ({doc['Identifier']}): {err}") from err
        descriptions = doc.get("Description") or []
        english = [d.get("desc", "") for d in descriptions if isinstance(d, Mapping) and d.get("lang") == "en"]
        return cls(
            identifier=str(doc["Identifier"]), type=doc["Type"], country=str(doc["Country"]).upper(),
            region=str(doc.get("Region") or ""), certificate_type=doc["CertificateType"],
            valid_from=_time(doc.get("ValidFrom"), f"{where}.ValidFrom"),
            valid_to=_time(doc.get("ValidTo"), f"{where}.ValidTo"),
            engine_version=_version(doc.get("EngineVersion", "0")), version=_version(doc.get("Version", "0")),
            expression=expression, description_en=str(english[0] if english else "")[:300],
        )


def read_rules(data: bytes | str | list[Any]) -> tuple[EuRule, ...]:
    """Every rule of a gateway rules file, each compiled; the file is refused whole on any fault.

    :raises RulesError: naming the first bad rule.
    """
    return tuple(EuRule.from_document(doc, i) for i, doc in enumerate(_json_list(data, "rules")))


def select(rules: Iterable[EuRule], *, country: str, issuer_country: str | None, kind: str | None,
           now: datetime, region: str = "") -> list[EuRule]:
    """The rules that apply: the country's acceptance and the issuer's invalidation rules, valid at
    `now`, General or of the certificate's type, national (or of `region`), newest version each."""
    wanted_type = CERT_TYPES.get(kind or "")
    newest: dict[tuple[str, str], EuRule] = {}
    for rule in rules:
        if rule.type == "Acceptance" and rule.country != country:
            continue
        if rule.type == "Invalidation" and rule.country != (issuer_country or "").upper():
            continue
        if rule.region and rule.region != region:
            continue
        if rule.certificate_type not in ("General", wanted_type):
            continue
        if not rule.valid_from <= now <= rule.valid_to:
            continue
        key = (rule.type, rule.identifier)
        if key not in newest or rule.version > newest[key].version:
            newest[key] = rule
    return sorted(newest.values(), key=lambda r: (r.type, r.identifier))


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class EuRulesPolicy:
    """A policy (verify()'s PolicyLike) applying a country's EU business rules."""

    def __init__(self, rules: Iterable[EuRule], country: str, value_sets: Mapping[str, list[str]],
                 region: str = "") -> None:
        self.rules = tuple(rules)
        self.country = country.upper()
        self.region = region
        self.value_sets = dict(value_sets)
        self.name = f"eu-rules-{self.country}"

    def external(self, now: datetime, *, iat: int | None = None, exp: int | None = None,
                 issuer_country: str | None = None) -> dict[str, Any]:
        """The external parameters the EU engine passes to every rule."""
        return {"validationClock": now.astimezone(UTC).isoformat(), "valueSets": self.value_sets,
                "countryCode": self.country, "region": self.region, "exp": _iso(exp), "iat": _iso(iat),
                "issuerCountryCode": issuer_country}

    def evaluate(self, dcc: dict[str, Any], now: datetime, *, iat: int | None = None, exp: int | None = None,
                 issuer_country: str | None = None) -> list[tuple[EuRule, bool | None]]:
        """Each applicable rule with its outcome: True, False, or None (could not be evaluated)."""
        kind = next((k for k in CERT_TYPES if k in dcc), None)
        data = {"payload": dcc, "external": self.external(now, iat=iat, exp=exp, issuer_country=issuer_country)}
        results: list[tuple[EuRule, bool | None]] = []
        for rule in select(self.rules, country=self.country, issuer_country=issuer_country, kind=kind, now=now,
                           region=self.region):
            if rule.engine_version[:1] and rule.engine_version[0] not in ENGINE_MAJORS:
                results.append((rule, None))
                continue
            try:
                results.append((rule, truthiness(rule.expression.evaluate(data))))
            except CertLogicError:
                results.append((rule, None))
        return results

    def decide_claims(self, dcc: dict[str, Any], now: datetime, *, iat: int | None, exp: int | None,
                      issuer_country: str | None) -> tuple[str, str, str, str]:
        """Green when every applicable rule holds; red naming the first that fails; else yellow."""
        results = self.evaluate(dcc, now, iat=iat, exp=exp, issuer_country=issuer_country)
        if not results:
            return ("yellow", "eu_no_rules", f"No EU rules of {self.country} apply: check by hand.",
                    f"Không có quy định EU nào của {self.country} áp dụng: hãy kiểm tra bằng mắt.")
        failed = [rule for rule, outcome in results if outcome is False]
        if failed:
            rule = failed[0]
            return ("red", "eu_rule_failed", f"Refused by {self.country} rule {rule.identifier}: {rule.description_en}",
                    f"Không đạt quy định {rule.identifier} của {self.country}.")
        open_rules = [rule.identifier for rule, outcome in results if outcome is None]
        if open_rules:
            return ("yellow", "eu_rule_open", f"Rules {', '.join(open_rules)} could not be evaluated: check by hand.",
                    f"Không áp dụng được quy định {', '.join(open_rules)}: hãy kiểm tra bằng mắt.")
        return ("green", "eu_rules_passed", f"Meets the {len(results)} EU rules of {self.country}.",
                f"Đạt {len(results)} quy định EU của {self.country}.")

    def decide(self, dcc: dict[str, Any], now: datetime) -> tuple[str, str, str, str]:
        """Without the CWT's times and issuer (verify() passes them through `decide_claims`)."""
        return self.decide_claims(dcc, now, iat=None, exp=None, issuer_country=None)
