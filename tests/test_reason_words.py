"""Every reason a verdict can carry has words in Vietnamese and English, on every page and in the API.

The codes come from the sources, not from a list kept here: every verifier error class, every
outcome, refusal and default of the shipped policies, and the reasons the core and the unit add
(untrusted clock, stale trust). A new reason without words fails this test.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from verifier.errors import VerificationError
from protocol.words import COLOURS, REASONS, reason_words

ROOT = Path(__file__).resolve().parent.parent


def _error_codes() -> set[str]:
    for module in sorted((ROOT / "verifier").glob("*.py")):  # every module, so no subclass is missed
        __import__(f"verifier.{module.stem}")
    codes, todo = set(), [VerificationError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo.extend(cls.__subclasses__())
    return codes


def _policy_codes() -> set[str]:
    codes = set()
    for path in sorted((ROOT / "verifier" / "policies").glob("*.json")):
        doc = json.loads(path.read_text("utf-8"))
        for rule in [*doc.get("outcomes", []), *doc.get("refusals", []), doc.get("default") or {}]:
            if "reason" in rule:
                codes.add(rule["reason"])
    return codes


def _literal_reason_codes() -> set[str]:
    """Reason codes written as the first item of a (code, en, vi) triple in verifier/ and scanner/."""
    codes = set()
    for folder in ("verifier", "scanner"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 3 \
                        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts) \
                        and re.fullmatch(r"[a-z][a-z0-9_]+", node.value.elts[0].value) \
                        and all(" " in e.value for e in node.value.elts[1:]):  # (code, sentence, sentence)
                    codes.add(node.value.elts[0].value)
    return codes


ALL_CODES = sorted(_error_codes() | _policy_codes() | _literal_reason_codes())


def test_the_sources_of_codes_were_found() -> None:
    assert {"signature", "revoked", "certlogic"} <= _error_codes()
    assert {"partial_vaccination", "incomplete_series", "test_too_old", "too_soon_after_dose",
            "positive_test", "policy_not_met"} <= _policy_codes()
    assert {"clock_untrusted", "trust_stale"} <= _literal_reason_codes()


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_reason_has_words_in_both_languages(code: str) -> None:
    vi, en = REASONS.get(code, (None, None))
    assert vi and en, f"reason {code!r} has no words: add it to protocol/words.py"
    assert vi != code and en != code and "_" not in vi and "_" not in en
    assert reason_words(code, "vi") == vi and reason_words(code, "en") == en


def test_colours_have_one_name_each() -> None:
    assert set(COLOURS) == {"green", "yellow", "red"}
    assert len({vi for vi, _ in COLOURS.values()}) == 3 and len({en for _, en in COLOURS.values()}) == 3


# -- on the dashboard ---------------------------------------------------------------------------
from tests.support.dashboard_web import Seeded, login, make_app, seeded  # noqa: E402,F401 - fixture

POLICY_CODES = sorted(_policy_codes() | {"clock_untrusted", "trust_stale", "signature", "revoked"})


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path) -> Any:
    results = [("yellow" if code in ("partial_vaccination", "trust_stale") else "red", code) for code in POLICY_CODES]
    seeded.events("u-ic7-1", "IC7", results)
    return make_app(seeded, tmp_path / "instance")


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_pages_and_api_show_words_beside_every_code(app: Any, lang: str) -> None:
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    if lang == "en":
        from tests.support.dashboard_web import page_token
        client.post("/language", data={"lang": "en", "csrf_token": page_token(client), "next": "/"})
    index = 0 if lang == "vi" else 1
    shown = [code for code in POLICY_CODES if code not in ("complete_series", "valid_certificate", "recovered",
                                                          "negative_test")]
    for path in ("/", "/checkpoints/IC7"):
        html = client.get(path).get_data(as_text=True)
        for code in shown:
            words = REASONS[code][index]
            assert words.replace("\u00a0", " ") in html.replace("\u00a0", " "), (path, code, lang)
        table = html.split("failure-reasons")[-1] if "failure-reasons" in html else html
        assert not re.search(r">\s*(partial_vaccination|too_soon_after_dose|test_too_old|positive_test)\s*<", table)
    for path in ("/api/v1/overview", "/api/v1/checkpoints/IC7"):
        reasons = client.get(path).json["reasons"]
        by_code = {r["reason"]: r for r in reasons}
        assert set(shown) <= set(by_code), (path, sorted(by_code))
        for code in shown:
            assert by_code[code]["text"] == REASONS[code][index]
            assert by_code[code]["text_vi"] == REASONS[code][0] and by_code[code]["text_en"] == REASONS[code][1]


def test_officers_decision_reasons_have_words_on_the_dashboard() -> None:
    """Reasons an officer gives for a decision (the policies' own labels) read as words too."""
    from dashboard.web.i18n import reason_text
    from verifier.policy import builtin_policies

    codes = {rule.code for policy in builtin_policies().values() for rule in policy.decisions.reasons}
    assert codes
    for code in codes:
        vi, en = reason_text(code, "vi"), reason_text(code, "en")
        assert vi != code and en != code, code
