"""Every text the dashboard shows exists in Vietnamese and English."""

from __future__ import annotations

import re
from pathlib import Path

from dashboard.web import i18n

WEB = Path(__file__).resolve().parent.parent / "dashboard" / "web"
# t('key') in templates, translate("key") in Python; keys built at run time (t('role_' ~ x)) are listed below.
LITERAL_KEY = re.compile(r"""\b(?:t|translate)\(\s*['"]([a-z_]+)['"]\s*[),]""")
DYNAMIC_KEYS = {f"role_{r}" for r in ("admin", "supervisor", "viewer")} | {
    f"lang_{lang}" for lang in i18n.LANGUAGES} | {f"clock_{c}" for c in ("ok", "behind_bundle", "behind_last_seen")} | {
    "green", "yellow", "red", "online", "offline", "unknown"}


def test_every_key_used_has_both_languages() -> None:
    used = set(DYNAMIC_KEYS)
    sources = [p for p in WEB.glob("*.py") if p.name != "i18n.py"] + list((WEB / "templates").glob("*.html"))
    for path in sources:
        used |= set(LITERAL_KEY.findall(path.read_text(encoding="utf-8")))
    missing = sorted(used - set(i18n.MESSAGES))
    assert not missing, f"texts missing: {missing}"
    assert len(used) > 60
    for key in used:
        vi, en = i18n.MESSAGES[key]
        assert vi.strip() and en.strip(), key


def test_vietnamese_texts_are_precomposed_unicode_with_their_marks() -> None:
    import unicodedata

    for key, (vi, _en) in i18n.MESSAGES.items():
        assert unicodedata.is_normalized("NFC", vi), key
    assert i18n.translate("nav_overview", "vi") == "Tổng quan"
    assert i18n.translate("offline", "vi") == "Mất kết nối"


def test_reason_codes_read_in_both_languages_and_unknown_codes_pass_through() -> None:
    assert i18n.reason_text("signature", "vi").startswith("Chữ ký không hợp lệ")
    assert i18n.reason_text("partial", "en") == "Partial vaccination"
    assert i18n.reason_text("some_new_code", "vi") == "some_new_code"
