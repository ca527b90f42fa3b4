"""The words people read for verdict colours, reason codes and decisions, in Vietnamese and English.

Data only, defined once here in the contract so that the unit's officer screen and the central
dashboard (which may not import each other) say the same thing: one name per colour, chosen for
what it tells the officer to do, and words for every reason code a verdict can carry. Codes
stay the stable interface (MQTT, the store, the API); these words are only ever shown beside them.
"""

from __future__ import annotations

import importlib
import pkgutil

import protocol
import verifier
from verifier.errors import VerificationError

# colour -> (Vietnamese, English). The unit shows them in capitals as its headline. The
# syllables of one Vietnamese word ("kiểm tra", "hợp lệ") are joined by a no-break space, so a
# line may break between words but never inside one.
COLOURS: dict[str, tuple[str, str]] = {
    "green": ("Hợp\u00a0lệ", "Valid"),
    "yellow": ("Cần kiểm\u00a0tra", "Check"),
    "red": ("Không hợp\u00a0lệ", "Not valid"),
}

# Reasons the shipped policies (verifier/policies/*.json) and the verifier's own caps produce.
# A policy's message may be longer and depend on the policy; these are the short words for a
# table of reasons, the same whichever policy produced the code.
POLICY_REASONS: dict[str, tuple[str, str]] = {
    "valid_certificate": ("Chứng nhận hợp lệ", "Valid certificate"),
    "complete_series": ("Đã tiêm đủ liều", "Complete vaccination series"),
    "partial_vaccination": ("Đã tiêm ít nhất một liều", "At least one dose"),
    "partial": ("Chưa tiêm đủ liều", "Partial vaccination"),
    "incomplete_series": ("Chưa tiêm đủ liều", "Vaccination series not complete"),
    "too_soon_after_dose": ("Liều cuối chưa đủ 14 ngày", "Last dose less than 14 days ago"),
    "recovered": ("Đã khỏi bệnh", "Recovered"),
    "recovery_not_yet_valid": ("Chứng nhận khỏi bệnh chưa có hiệu lực", "Recovery not valid yet"),
    "recovery_expired": ("Chứng nhận khỏi bệnh hết hiệu lực", "Recovery expired"),
    "negative_test": ("Xét nghiệm âm tính", "Negative test"),
    "positive_test": ("Xét nghiệm dương tính", "Positive test"),
    "test_too_old": ("Xét nghiệm đã quá hạn", "Test too old"),
    "test_in_future": ("Ngày xét nghiệm ở tương lai", "Test dated in the future"),
    "policy_not_met": ("Không đáp ứng quy định của chốt", "Checkpoint policy not met"),
    "clock_untrusted": ("Đồng hồ thiết bị sai", "Unit clock wrong"),
    "trust_stale": ("Danh sách tin cậy đã cũ", "Trust list out of date"),
    # verifier.eurules: a country's EU business rules
    "eu_rules_passed": ("Đạt quy định EU của nước đến", "Meets the country's EU rules"),
    "eu_rule_failed": ("Không đạt quy định EU của nước đến", "Fails a rule of the country's EU rules"),
    "eu_rule_open": ("Không áp dụng được quy định EU", "EU rule could not be evaluated"),
    "eu_no_rules": ("Không có quy định EU áp dụng", "No EU rules apply"),
}

# Certificate formats (verifier.formats) -> (Vietnamese, English): proper names, the same in both.
FORMATS: dict[str, tuple[str, str]] = {
    "dcc": ("EU DCC", "EU DCC"),
    "shc": ("SMART Health Card", "SMART Health Card"),
    "vds-nc": ("ICAO VDS-NC", "ICAO VDS-NC"),
    "divoc": ("DIVOC", "DIVOC"),
}

# A decision's outcome and how decisions are counted beside the colours.
OUTCOMES: dict[str, tuple[str, str]] = {
    "let_through": ("Cho qua", "Let through"),
    "turned_back": ("Không cho qua", "Turned back"),
}
DECISION_KINDS: dict[str, tuple[str, str]] = {
    "decision": ("Cán bộ quyết định", "Officer decision"),
    "manual": ("Kiểm tra thủ công", "Manual check"),
}


def _error_reasons() -> dict[str, tuple[str, str]]:
    """The message of every verifier error class, by its code (walking the hierarchy)."""
    # Every module of the core and the contract first: error classes live beside what raises
    # them (bundle, roster...).
    for package in (verifier, protocol):
        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "words":
                importlib.import_module(f"{package.__name__}.{module.name}")
    found: dict[str, tuple[str, str]] = {}
    todo: list[type[VerificationError]] = [VerificationError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, (cls.message_vi.rstrip("."), cls.message_en.rstrip(".")))
        todo.extend(cls.__subclasses__())
    return found


REASONS: dict[str, tuple[str, str]] = {**_error_reasons(), **POLICY_REASONS}


def reason_words(code: str, lang: str = "vi") -> str | None:
    """The words for a reason code in `lang` ("vi" or "en"), None when the code is unknown."""
    pair = REASONS.get(code)
    if pair is None:
        return None
    return pair[0] if lang == "vi" else pair[1]


def colour_words(result: str, lang: str = "vi") -> str:
    """The name of a verdict colour in `lang`; an unknown colour is shown as it is."""
    pair = COLOURS.get(result)
    return result if pair is None else (pair[0] if lang == "vi" else pair[1])
