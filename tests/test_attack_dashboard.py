"""Attacks on the dashboard: every route x every role and scope, CSRF on every POST, session
fixation, script injection through names, login brute force, path traversal in uploads.

Routes are read from the app's own URL map, so a route added later is attacked too. What each
role may open is the table in docs/architecture.md ("dashboard web app"), restated in `ALLOWED`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.scope import Scope
from dashboard.web import create_app
from tests.support.dashboard_web import (
    Seeded,
    csrf_from,
    login,
    make_app,
    page_token,
    seeded,  # noqa: F401 - fixture
)
from tests.test_dashboard_web_admin import admin, central  # noqa: F401 - fixtures

METRICS_TOKEN = "attack-suite-metrics-token"
ROLES = ("anonymous", "view_lc", "sup_lc", "sup_hn", "padmin_lc", "admin")
LOGGED_IN = {"view_lc", "sup_lc", "sup_hn", "padmin_lc", "admin"}
SUPERVISING = {"sup_lc", "sup_hn", "padmin_lc", "admin"}
ADMINS = {"padmin_lc", "admin"}
# Route prefix -> roles that may open it (first match wins); everything else is admin only.
ALLOWED: list[tuple[str, set[str]]] = [
    ("/login", set(ROLES)),
    ("/language", set(ROLES)),
    ("/logout", LOGGED_IN),
    ("/api/v1/me", LOGGED_IN),
    ("/api/v1/overview", LOGGED_IN),
    ("/api/v1/checkpoints", LOGGED_IN),
    ("/api/v1/report", LOGGED_IN),
    ("/api/v1/devices", SUPERVISING),
    ("/api/v1/alarms", SUPERVISING),
    ("/api/v1/trust", SUPERVISING),
    ("/api/v1/users", ADMINS),
    ("/api/v1/audit", ADMINS),
    ("/stream/overview", LOGGED_IN),
    ("/stream/checkpoint", LOGGED_IN),
    ("/stream/devices", SUPERVISING),
    ("/checkpoints", LOGGED_IN),
    ("/provinces", LOGGED_IN),
    ("/export/devices", SUPERVISING),
    ("/export", LOGGED_IN),
    ("/reports", LOGGED_IN),
    ("/reports.xlsx", LOGGED_IN),
    ("/devices", SUPERVISING),
    ("/admin/users", ADMINS),
    ("/admin/devices", ADMINS),
    ("/admin/audit", ADMINS),
    ("/admin/officers", ADMINS),  # a province admin manages its own checkpoints' officers
    ("/admin", {"admin"}),
    ("/metrics", {"admin"}),
    ("/healthz", {"admin"}),
]
# Checkpoint ids and where they are: IC7 and XSS1 in Lào Cai (10), HN-GIA in Hà Nội (01).
PROVINCE_OF = {"IC7": "10", "XSS1": "10", "HN-GIA": "01", "NOWHERE": None}
SCOPE_OF = {"view_lc": "10", "sup_lc": "10", "sup_hn": "01", "padmin_lc": "10"}
SECRET_OF_LC = ("IC7 Nội Bài", "u-ic7-1")  # what a Hà Nội account must never see
SECRET_OF_HN = ("Chốt Gia Lâm", "u-hn-1")
INJECTIONS = ('<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "</textarea><svg onload=alert(1)>",
              "{{7*7}}{% print 1 %}", "javascript:alert(1)//")


def allowed_roles(path: str) -> set[str]:
    for prefix, roles in ALLOWED:
        if path == prefix or path.startswith((prefix + "/", prefix + "?", prefix + ".")):
            return roles
    return {"admin"} if path != "/" else LOGGED_IN


def routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, each URL parameter filled with every kind of value."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if "<checkpoint_id>" in rule.rule:
                for cp in PROVINCE_OF:
                    yield method, rule.rule.replace("<checkpoint_id>", cp)
            elif "<device_id>" in rule.rule:
                for device in ("u-ic7-1", "u-hn-1", "../../etc/passwd"):
                    yield method, rule.rule.replace("<device_id>", device)
            elif "<code>" in rule.rule:
                for code in ("10", "01", "99", "<b>"):
                    yield method, rule.rule.replace("<code>", code)
            elif "<username>" in rule.rule:
                for username in ("sup_hn", "view_lc", "nobody"):
                    yield method, rule.rule.replace("<username>", username)
            elif "<table>" in rule.rule:
                for table in ("by_checkpoint", "devices", "reasons", "nothing"):
                    for fmt in ("csv", "xlsx", "pdf"):
                        yield method, rule.rule.replace("<table>", table).replace("<fmt>", fmt)
            else:
                yield method, rule.rule


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path) -> Any:
    return make_app(seeded, tmp_path / "instance", CHOT_METRICS_TOKEN=METRICS_TOKEN)


def client_for(app: Any, role: str) -> Any:
    c = app.test_client()
    if role != "anonymous":
        assert login(c, role).status_code == 302
    return c


def request_as(c: Any, method: str, path: str) -> Any:
    if method == "GET":
        return c.get(path)
    # A valid token, so a refusal is about who asks, never about CSRF.
    token = csrf_from(c.get("/login").get_data(as_text=True)) if c.get("/").status_code != 200 else page_token(c)
    return c.post(path, data={"csrf_token": token})


def body_text(resp: Any) -> str:
    """The answer as text; a workbook's every cell, so scope checks read inside XLSX files too."""
    if resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(resp.get_data()))
        return "\n".join(str(c.value) for ws in book for row in ws.iter_rows() for c in row if c.value is not None)
    if resp.is_json:  # as the text it carries, not its \u escapes
        return json.dumps(resp.get_json(), ensure_ascii=False)
    return resp.get_data(as_text=True)


def expected_refusal(role: str, path: str) -> bool:
    """True when `role` must be refused `path` (by role, or by scope for a checkpoint)."""
    if role not in allowed_roles(path):
        return True
    match = re.search(r"/checkpoints?/([^/?]+)$", path)
    if match and role in SCOPE_OF:
        return PROVINCE_OF.get(match.group(1)) != SCOPE_OF[role]
    match = re.search(r"^/provinces/([^?]+)$", path)
    if match and role in SCOPE_OF:
        return match.group(1) != SCOPE_OF[role]
    return False


@pytest.mark.slow  # every route for every role
def test_every_route_for_every_role_and_scope(app: Any, seeded: Seeded) -> None:
    tried = refused = 0
    for role in ROLES:
        # Each role's empty POST /login below is a failed login from this address; forget them,
        # or the sixth role would be throttled before it logs in.
        seeded.store.clear_login_failures("", "127.0.0.1")
        c = client_for(app, role)
        for method, path in routes(app):
            if method == "POST" and path in ("/logout",) or "/remove" in path or "/rotate" in path:
                continue  # state changing for a permitted role; their refusals are checked below
            resp = request_as(c, method, path)
            body = body_text(resp)
            tried += 1
            assert resp.status_code < 500, (role, method, path, resp.status_code)
            if expected_refusal(role, path) and not (path == "/login" or path == "/language"):
                refused += 1
                if role == "anonymous":
                    want = {401} if path.startswith(("/api/", "/stream/", "/metrics", "/healthz")) else {302}
                else:
                    want = {403, 404} if "NOWHERE" in path and role == "admin" else {403}
                assert resp.status_code in want, (role, method, path, resp.status_code)
                if resp.status_code == 302:
                    assert resp.headers["Location"].startswith("/login")
                for secret in SECRET_OF_LC + SECRET_OF_HN:
                    assert secret not in body, (role, path, secret)
            elif role in SCOPE_OF:
                # Allowed, but still scoped: nothing of the other province in the answer.
                others = SECRET_OF_LC if SCOPE_OF[role] == "01" else SECRET_OF_HN
                for secret in others:
                    assert secret not in body, (role, path, secret)
    print(f"{tried} requests over {len(ROLES)} roles, {refused} refused as they must be")
    assert tried > 100 and refused > 40, (tried, refused)


def test_admin_posts_refused_to_every_other_role(app: Any, seeded: Seeded) -> None:
    for role in ("view_lc", "sup_lc", "sup_hn"):
        c = client_for(app, role)
        token = page_token(c)
        forms = {"/admin/users": {"username": "mallory", "password": "mallory-password-1", "role": "admin"},
                 "/admin/devices": {"device": "evil", "checkpoint": "IC7"},
                 "/admin/devices/u-ic7-1/remove": {},
                 "/admin/devices/u-ic7-1/rotate": {},
                 "/admin/trust": {}}
        for path, form in forms.items():
            assert c.post(path, data={**form, "csrf_token": token}).status_code == 403, (role, path)
    assert seeded.store.get_user("mallory") is None
    assert seeded.store.get_device("u-ic7-1") is not None and seeded.store.get_device("evil") is None


def test_every_post_route_needs_the_sessions_csrf_token(app: Any, seeded: Seeded) -> None:
    victim = client_for(app, "admin")
    attacker = client_for(app, "sup_hn")
    foreign = page_token(attacker)  # a valid token, but of another session
    posts = sorted({p for m, p in routes(app) if m == "POST" and p != "/login"})
    assert {"/logout", "/language", "/admin/users", "/admin/trust"} <= set(posts)
    for path in posts:
        for token in (None, "", "forged", foreign):
            data = {"username": "mallory", "password": "mallory-password-1", "role": "admin",
                    "device": "evil", "checkpoint": "IC7", "lang": "en"}
            if token is not None:
                data["csrf_token"] = token
            resp = victim.post(path, data=data)
            assert resp.status_code == 400, (path, token, resp.status_code)
        # The header form of the token is checked the same way.
        assert victim.post(path, headers={"X-CSRF-Token": foreign}).status_code == 400, path
    assert seeded.store.get_user("mallory") is None and seeded.store.get_device("evil") is None
    assert victim.get("/admin/users").status_code == 200  # logout was refused too


def test_a_session_planted_before_login_is_worthless_after(app: Any) -> None:
    attacker = app.test_client()
    attacker.get("/login")
    name = app.config["SESSION_COOKIE_NAME"]
    planted = attacker.get_cookie(name)
    assert planted is not None
    victim = app.test_client()
    victim.set_cookie(name, planted.value)  # the victim is tricked into the attacker's cookie
    assert login(victim, "admin").status_code == 302
    assert victim.get("/admin/users").status_code == 200
    assert victim.get_cookie(name).value != planted.value
    # The attacker still holds the pre-login cookie: it must not carry the victim's login.
    for path in ("/admin/users", "/api/v1/me", "/"):
        resp = attacker.get(path)
        assert resp.status_code in (302, 401), (path, resp.status_code)


def test_a_stolen_session_dies_at_logout(app: Any) -> None:
    victim = client_for(app, "admin")
    name = app.config["SESSION_COOKIE_NAME"]
    stolen = victim.get_cookie(name).value
    victim.post("/logout", data={"csrf_token": page_token(victim)})
    thief = app.test_client()
    thief.set_cookie(name, stolen)
    assert thief.get("/api/v1/me").status_code == 401


def test_login_brute_force_is_throttled_by_user_and_by_address(app: Any, seeded: Seeded) -> None:
    c = app.test_client()
    for i in range(5):
        assert login(c, "admin", f"wrong-{i}").status_code in (200, 401)
    # Slowed: now even the right password is refused from here, and the page says so.
    resp = login(c, "admin")
    assert resp.status_code == 429, resp.status_code
    assert c.get("/api/v1/me").status_code == 401
    # A forged X-Forwarded-For does not buy a fresh budget (no proxy is trusted by default).
    forged = app.test_client()
    forged.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
    assert login(forged, "admin").status_code == 429
    # Spreading guesses over other user names from the same address is slowed too, later.
    for i in range(10):
        assert login(c, f"nobody{i}", "wrong").status_code == 401
    assert login(c, "sup_hn").status_code == 429


@pytest.mark.parametrize("injection", INJECTIONS)
def test_injected_names_are_escaped_on_every_page_api_and_stream(app: Any, seeded: Seeded, injection: str) -> None:
    seeded.store.upsert_checkpoint("INJ", injection, "080", "10")
    seeded.store.add_device("u-inj", "INJ")
    seeded.events("u-inj", "INJ", [("green", "complete_series")])
    c = client_for(app, "admin")
    admin_token = page_token(c, "/admin/users")
    c.post("/admin/users", data={"username": injection[:30], "password": "long-enough-password",
                                 "role": "viewer", "scope": "province:10", "csrf_token": admin_token})
    paths = ["/", "/checkpoints/INJ", "/devices", "/admin/users", "/admin/devices", "/admin/trust",
             "/api/v1/checkpoints", "/api/v1/checkpoints/INJ", "/api/v1/devices", "/api/v1/users",
             "/stream/overview", "/stream/checkpoint/INJ", "/stream/devices"]
    for path in paths:
        resp = c.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        body = resp.get_data(as_text=True)
        if resp.is_json:
            continue  # JSON carries the name as data; its content type keeps browsers from rendering it
        for raw in ("<script>alert", "<img src=x", "<svg onload", "</textarea><svg"):
            assert raw not in body, (path, raw)
    if injection.startswith("{{"):
        # Shown as the text it is, never evaluated as a template.
        assert "{{7*7}}" in c.get("/checkpoints/INJ").get_data(as_text=True)
    # JSON answers are JSON, never HTML a browser would run.
    api = c.get("/api/v1/checkpoints/INJ")
    assert api.mimetype == "application/json"
    assert api.headers.get("X-Content-Type-Options") == "nosniff"


def test_path_traversal_in_the_trust_upload_writes_nothing_outside(admin: Any, central: Any, tmp_path: Path) -> None:
    before = {p for p in tmp_path.rglob("*")}
    target = tmp_path / "pwned.json"
    for filename in ("../../pwned.json", "../../../../../../tmp/pwned.json", str(target), "..\\..\\pwned.json",
                     "bundle.json\x00.png", "%2e%2e%2fpwned.json"):
        token = page_token(admin, "/admin/trust")
        resp = admin.post("/admin/trust", data={"bundle": (io.BytesIO(b'{"format": "x"}'), filename),
                                                "csrf_token": token}, content_type="multipart/form-data")
        assert resp.status_code == 400, (filename, resp.status_code)
        body = resp.get_data(as_text=True)
        assert "pwned" not in body.replace(filename, "") and "Traceback" not in body
    created = {p for p in tmp_path.rglob("*")} - before
    assert not target.exists() and not Path("/tmp/pwned.json").exists()
    assert not [p for p in created if "pwned" in p.name], created
    assert central.store.latest_trust_bundle() is None


def test_metrics_refuse_a_wrong_token_and_a_non_admin(app: Any) -> None:
    c = app.test_client()
    for header in ("Bearer wrong", f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}", METRICS_TOKEN, ""):
        assert c.get("/metrics", headers={"Authorization": header}).status_code == 401, header
    assert c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
    assert client_for(app, "sup_hn").get("/metrics").status_code == 403


def test_app_without_a_config_never_accepts_a_default_secret(tmp_path: Path) -> None:
    """Two fresh instances must not share a session key (a forged cookie would work on both)."""
    a = create_app(test_config={"TESTING": True, "INSTANCE_PATH": str(tmp_path / "a"),
                                "CHOT_DATABASE": str(tmp_path / "a.db")})
    b = create_app(test_config={"TESTING": True, "INSTANCE_PATH": str(tmp_path / "b"),
                                "CHOT_DATABASE": str(tmp_path / "b.db")})
    assert a.secret_key and b.secret_key and a.secret_key != b.secret_key


# -- reports, exports, province admins, the audit log ----------------------------------------
REPORT_ROUTES = ("/reports", "/reports.xlsx", "/api/v1/report", "/export/by_checkpoint.csv")
BAD_RANGES = {
    "from=2026-11-25&to=2026-11-20": ("bị đảo", 400),
    "from=2026-09-01&to=2026-11-25": ("dài quá 31 ngày", 400),
    "from=2026-11-26&to=2026-11-26": ("tương lai", 400),
    "from=2026-11-24&to=2026-11-28": ("tương lai", 400),
    "from=hôm-qua": ("YYYY-MM-DD", 400),
}
# area -> the province it lies in (None: nowhere)
AREAS = {"province:10": "10", "province:01": "01", "checkpoint:IC7": "10", "checkpoint:HN-GIA": "01",
         "district:080": "10", "district:004": "01", "checkpoint:NOWHERE": None, "province:99": "99"}


@pytest.mark.parametrize("role", [r for r in ROLES if r != "anonymous"])
def test_bad_report_ranges_are_refused_with_the_reason_for_every_role(app: Any, role: str) -> None:
    c = client_for(app, role)
    for path in REPORT_ROUTES[:3]:
        for query, (reason, status) in BAD_RANGES.items():
            resp = c.get(f"{path}?{query}")
            assert resp.status_code == status, (role, path, query, resp.status_code)
            assert reason in body_text(resp), (role, path, query)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "anonymous"])
def test_a_report_or_export_of_an_area_outside_the_scope_is_refused(app: Any, role: str) -> None:
    c = client_for(app, role)
    for area, province in AREAS.items():
        if role == "admin":
            inside = province is not None  # any province, even an empty one; never a checkpoint that is not
        else:
            inside = province == SCOPE_OF[role]
        for path in REPORT_ROUTES:
            resp = c.get(f"{path}?area={area}&from=2026-11-25")
            body = body_text(resp)
            if inside:
                assert resp.status_code == 200, (role, path, area, resp.status_code)
            else:
                assert resp.status_code == 403, (role, path, area, resp.status_code)
                assert "nằm ngoài phạm vi" in body, (role, path, area)
                for secret in SECRET_OF_LC + SECRET_OF_HN:
                    assert secret not in body


def test_a_province_admin_can_never_reach_outside_its_province(app: Any, seeded: Seeded) -> None:
    c = client_for(app, "padmin_lc")
    token = page_token(c, "/admin/users")
    attempts: dict[str, list[tuple[dict[str, str], str]]] = {
        "/admin/users": [
            ({"username": "mallory", "role": "admin", "scope": "all"}, "chỉ được tạo vai trò"),
            ({"username": "mallory", "role": "supervisor", "scope": "province:01"}, "Hà Nội (01)"),
            ({"username": "mallory", "role": "supervisor", "scope": "province:10\nprovince:01"}, "Hà Nội (01)"),
            ({"username": "mallory", "role": "viewer", "scope": "district:004"}, "Quận/huyện 004"),
            ({"username": "mallory", "role": "viewer", "scope": "checkpoint:HN-GIA"}, "Chốt HN-GIA"),
            ({"username": "mallory", "role": "viewer", "scope": "checkpoint:NOWHERE"}, "Chốt NOWHERE"),
            ({"username": "mallory", "role": "viewer", "scope": "all"}, "Toàn quốc"),
            ({"username": "mallory", "role": "province_admin", "scope": "district:080"}, "một hay nhiều tỉnh"),
        ],
        "/admin/devices": [
            ({"device": "evil", "checkpoint": "HN-GIA"}, "HN-GIA"),
            ({"device": "evil", "checkpoint": "NEW1", "district": "004", "province": "01"}, "NEW1"),
            ({"device": "evil", "checkpoint": "IC7", "province": "01"}, "IC7"),
            ({"device": "evil", "checkpoint": "NEW2"}, "NEW2"),
            ({"device": "u-hn-1", "checkpoint": "IC7"}, "HN-GIA"),  # taking over another province's unit
        ],
        "/admin/devices/u-hn-1/remove": [({}, "HN-GIA")],
        "/admin/devices/u-hn-1/rotate": [({}, "HN-GIA")],
        "/admin/users/sup_hn/remove": [({}, "sup_hn")],
        "/admin/users/admin/remove": [({}, "admin")],
    }
    for path, tries in attempts.items():
        for form, reason in tries:
            resp = c.post(path, data={"password": "mallory-password-1", **form, "csrf_token": token})
            assert resp.status_code == 403, (path, form, resp.status_code)
            assert reason in resp.get_data(as_text=True), (path, form)
    assert seeded.store.get_user("mallory") is None and seeded.store.get_device("evil") is None
    # Every one of those tries is on record in Lào Cai's audit log, with its reason.
    refused = [e for e in seeded.store.audit_log(Scope.of(provinces=["10"]), limit=100) if e.action == "refused"]
    assert len(refused) == sum(len(t) for t in attempts.values()) and all(e.actor == "padmin_lc" for e in refused)
    assert all(e.detail for e in refused)
    assert seeded.store.get_device("u-hn-1").checkpoint == "HN-GIA"
    assert seeded.store.get_user("sup_hn") is not None and seeded.store.get_user("admin") is not None
    assert seeded.store.list_checkpoints(Scope.of(checkpoints=["NEW1", "NEW2"])) == []
    for path in ("/admin/audit?province=01", "/api/v1/audit?province=01"):
        resp = c.get(path)
        assert resp.status_code == 403 and "Hà Nội (01) nằm ngoài phạm vi" in body_text(resp), path
    assert c.get("/admin/trust").status_code == 403  # trust bundles stay national
    # Nothing was done, so only refusals were logged.
    assert {e.action for e in seeded.store.audit_log(Scope.all(), limit=100)} == {"refused"}
