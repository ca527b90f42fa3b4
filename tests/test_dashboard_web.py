"""The dashboard web app through Flask's test client: login, roles, scope, CSRF, throttling, escaping."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dashboard.store import StatusUpdate
from dashboard.store.sql import SqlStore
from tests.support.dashboard_web import (
    ACCOUNTS,
    XSS_NAME,
    XSS_SOFTWARE,
    Seeded,
    csrf_from,
    login,
    make_app,
    page_token,
    seeded,  # noqa: F401 - fixture
)

METRICS_TOKEN = "scrape-token-for-tests"


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path) -> Any:
    return make_app(seeded, tmp_path / "instance", CHOT_METRICS_TOKEN=METRICS_TOKEN)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def as_user(app: Any, username: str) -> Any:
    c = app.test_client()
    resp = login(c, username)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return c


def _concrete_paths(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, with sample values for URL parameters."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<checkpoint_id>", "IC7").replace("<device_id>", "u-ic7-1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path))
    return out


# -- without login ----------------------------------------------------------------------------
def test_every_route_refuses_anonymous_visitors(app: Any, client: Any) -> None:
    public = {("GET", "/login"), ("POST", "/login"), ("POST", "/language")}
    checked = 0
    for method, path in _concrete_paths(app):
        if (method, path) in public:
            continue
        if method == "POST":
            # With a valid token, so the refusal comes from the login check and not from CSRF.
            token = csrf_from(client.get("/login").get_data(as_text=True))
            resp = client.post(path, data={"csrf_token": token})
        else:
            resp = client.get(path)
        checked += 1
        if path.startswith(("/api/", "/stream", "/metrics", "/healthz")):
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.is_json and resp.json["error"]
        else:
            assert resp.status_code == 302, (method, path, resp.status_code)
            assert resp.headers["Location"].startswith("/login")
        body = resp.get_data(as_text=True)
        assert "IC7 Nội Bài" not in body and "Gia Lâm" not in body
    assert checked >= 20


def test_login_page_is_vietnamese_by_default_and_switches_for_anonymous(client: Any) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert 'lang="vi"' in html and "Đăng nhập" in html and "Mật khẩu" in html
    resp = client.post("/language", data={"lang": "en", "csrf_token": csrf_from(html), "next": "/login"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    html = client.get("/login").get_data(as_text=True)
    assert 'lang="en"' in html and "Password" in html


# -- login, sessions ----------------------------------------------------------------------------
def test_login_sets_a_hardened_session_and_redirects_to_next(client: Any) -> None:
    token = csrf_from(client.get("/login?next=/devices").get_data(as_text=True))
    resp = client.post("/login", data={"username": "admin", "password": ACCOUNTS["admin"][0],
                                       "csrf_token": token, "next": "/devices"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/devices"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/devices").status_code == 200


def test_login_never_redirects_to_another_site(client: Any) -> None:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        resp = client.post("/login", data={"username": "admin", "password": ACCOUNTS["admin"][0],
                                           "csrf_token": token, "next": target})
        assert resp.status_code == 302 and resp.headers["Location"] == "/", target
        token = page_token(client)


def test_login_rotates_the_session_so_a_planted_token_dies(client: Any) -> None:
    planted = csrf_from(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"username": "sup_lc", "password": ACCOUNTS["sup_lc"][0],
                                       "csrf_token": planted})
    assert resp.status_code == 302
    fresh = page_token(client)
    assert fresh != planted
    # A token from before login (e.g. planted by an attacker) no longer passes.
    assert client.post("/language", data={"lang": "en", "csrf_token": planted}).status_code == 400
    assert client.post("/language", data={"lang": "en", "csrf_token": fresh}).status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_answer(client: Any) -> None:
    bad = login(client, "admin", "not-the-password")
    unknown = login(client, "nobody-here", "whatever-password")
    assert bad.status_code == unknown.status_code == 401
    for resp in (bad, unknown):
        assert "Sai tên đăng nhập hoặc mật khẩu." in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logout_ends_the_session_and_every_copy_of_its_cookie(app: Any, client: Any) -> None:
    login(client, "admin")
    assert client.get("/").status_code == 200
    cookie = client.get_cookie("chot_session")
    thief = app.test_client()
    thief.set_cookie("chot_session", cookie.value)
    assert thief.get("/api/v1/me").status_code == 200
    resp = client.post("/logout", data={"csrf_token": page_token(client)})
    assert resp.status_code == 302
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/me").status_code == 401
    assert thief.get("/api/v1/me").status_code == 401  # the copied cookie died with the logout


def test_login_is_throttled_after_repeated_failures(client: Any, seeded: Seeded) -> None:
    for _ in range(5):
        assert login(client, "sup_lc", "guess-guess-guess").status_code == 401
    # Even the right password is refused now, with a reason and without checking it.
    resp = login(client, "sup_lc")
    assert resp.status_code == 429
    assert "Quá nhiều lần đăng nhập sai" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302
    # Another account from another address is not locked out by this.
    other = client.application.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    assert login(other, "admin").status_code == 302


def test_behind_a_trusted_proxy_throttling_counts_the_real_client(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded, tmp_path / "instance", CHOT_TRUSTED_PROXIES=1)
    attacker, colleague = app.test_client(), app.test_client()
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
    colleague.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
    for n in range(15):
        assert login(attacker, f"u{n}", "guess-guess").status_code == 401
    assert login(attacker, "admin").status_code == 429  # this address is slowed down...
    assert login(colleague, "admin").status_code == 302  # ...the proxy's other clients are not


def test_a_password_change_ends_older_sessions(app: Any, seeded: Seeded) -> None:
    c = as_user(app, "view_lc")
    assert c.get("/").status_code == 200
    # Re-create the account with another password (the store has no password update yet).
    assert isinstance(seeded.store, SqlStore)
    conn = seeded.store._conn()  # test reaches into its own file
    conn.execute("UPDATE users SET password_hash = 'scrypt:other' WHERE username = 'view_lc'")
    assert c.get("/").status_code == 302


# -- CSRF -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,data", [
    ("/language", {"lang": "en"}),
    ("/logout", {}),
    ("/admin/users", {"username": "mallory", "password": "mallory-password", "role": "admin"}),
    ("/admin/devices/u-ic7-1/remove", {}),
])
def test_state_changes_without_the_csrf_token_are_refused(app: Any, seeded: Seeded, path: str, data: dict) -> None:
    c = as_user(app, "admin")
    for token in (None, "forged-token"):
        payload = dict(data) if token is None else {**data, "csrf_token": token}
        resp = c.post(path, data=payload)
        assert resp.status_code == 400, path
        assert "Biểu mẫu đã hết hạn" in resp.get_data(as_text=True)
    assert seeded.store.get_user("mallory") is None
    assert seeded.store.get_device("u-ic7-1") is not None
    assert c.get("/").status_code == 200  # still logged in: logout was refused too


def test_login_form_itself_needs_the_csrf_token(client: Any) -> None:
    resp = client.post("/login", data={"username": "admin", "password": ACCOUNTS["admin"][0]})
    assert resp.status_code == 400
    assert client.get("/").status_code == 302


# -- roles ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("username,path,status", [
    ("view_lc", "/devices", 403),
    ("view_lc", "/api/v1/devices", 403),
    ("view_lc", "/api/v1/alarms", 403),
    ("view_lc", "/stream/devices", 403),
    ("view_lc", "/admin/users", 403),
    ("sup_lc", "/admin/users", 403),
    ("sup_lc", "/admin/devices", 403),
    ("sup_lc", "/admin/trust", 403),
    ("sup_lc", "/api/v1/users", 403),
    ("sup_lc", "/metrics", 403),
    ("view_lc", "/", 200),
    ("sup_lc", "/devices", 200),
    ("admin", "/admin/users", 200),
    ("admin", "/admin/devices", 200),
    ("admin", "/admin/trust", 200),
])
def test_roles_are_enforced_on_pages_api_and_stream(app: Any, username: str, path: str, status: int) -> None:
    c = as_user(app, username)
    resp = c.get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    if status == 403:
        body = resp.get_data(as_text=True)
        assert "u-ic7" not in body and "IC7 Nội Bài" not in body


def test_admin_posts_are_refused_to_a_supervisor(app: Any, seeded: Seeded) -> None:
    c = as_user(app, "sup_lc")
    token = page_token(c)
    resp = c.post("/admin/users", data={"username": "mallory", "password": "mallory-password",
                                        "role": "admin", "csrf_token": token})
    assert resp.status_code == 403
    assert c.post("/admin/devices/u-ic7-1/remove", data={"csrf_token": token}).status_code == 403
    assert seeded.store.get_user("mallory") is None and seeded.store.get_device("u-ic7-1") is not None


# -- scope ----------------------------------------------------------------------------------------
def test_a_province_supervisor_sees_only_their_province(app: Any) -> None:
    c = as_user(app, "sup_lc")
    data = c.get("/api/v1/overview").json
    assert data["today"]["total"] == 10 and data["today"]["red"] == 3
    assert [(g["key"], g["label"]) for g in data["by_province"]] == [("10", "Lào Cai (10)")]
    assert {g["key"] for g in data["by_checkpoint"]} == {"IC7"}
    assert {r["reason"] for r in data["reasons"]} == {"signature", "cwt_expired", "partial"}
    assert {d["id"] for d in c.get("/api/v1/devices").json["devices"]} == {"u-ic7-1", "u-ic7-2"}
    assert {cp["id"] for cp in c.get("/api/v1/checkpoints").json["checkpoints"]} == {"IC7", "XSS1"}
    for path in ("/", "/devices", "/checkpoints/IC7", "/api/v1/overview", "/api/v1/devices", "/api/v1/alarms",
                 "/api/v1/trust", "/api/v1/checkpoints", "/stream/overview", "/stream/devices"):
        resp = c.get(path)
        assert resp.status_code == 200, path
        body = resp.get_data(as_text=True)
        for leak in ("HN-GIA", "Gia Lâm", "u-hn-1", "revoked", "Thu hồi", "thu hồi"):
            assert leak not in body, (path, leak)


@pytest.mark.parametrize("path", ["/checkpoints/HN-GIA", "/api/v1/checkpoints/HN-GIA", "/stream/checkpoint/HN-GIA",
                                  "/checkpoints/NO-SUCH", "/api/v1/checkpoints/NO-SUCH"])
def test_another_provinces_checkpoint_is_forbidden_and_says_nothing(app: Any, path: str) -> None:
    c = as_user(app, "sup_lc")
    resp = c.get(path)
    assert resp.status_code == 403
    body = resp.get_data(as_text=True)
    assert "Gia Lâm" not in body and "u-hn-1" not in body and "004" not in body


def test_the_admin_sees_the_whole_country(app: Any) -> None:
    c = as_user(app, "admin")
    data = c.get("/api/v1/overview").json
    assert data["today"]["total"] == 15
    assert data["today"]["green"] == 9 and data["today"]["yellow"] == 2 and data["today"]["red"] == 4
    assert data["today"]["pass_rate"] == pytest.approx(11 / 15)
    assert {g["key"]: g["total"] for g in data["by_province"]} == {"01": 5, "10": 10}
    assert sum(b["total"] for b in data["timeseries"]["buckets"]) == 15
    assert c.get("/api/v1/checkpoints/HN-GIA").json["today"]["total"] == 5


# -- pages ----------------------------------------------------------------------------------------
def test_overview_page_shows_big_numbers_chart_rates_and_reasons(app: Any) -> None:
    html = as_user(app, "sup_lc").get("/").get_data(as_text=True)
    assert re.search(r'data-test-id="today-total">10<', html)
    assert re.search(r'data-test-id="today-red">3<', html)
    assert "70,0%" in html  # 7 of 10 passed, written the Vietnamese way
    assert 'data-test-id="chart-svg"' in html and 'data-total="10"' in html
    assert "Chữ ký không hợp lệ" in html  # the verifier's Vietnamese text for `signature`
    assert "Theo tỉnh/thành" in html and "Lào Cai (10)" in html and "25/11/2026" in html


def test_period_is_checked_with_a_reason(app: Any) -> None:
    c = as_user(app, "admin")
    resp = c.get("/api/v1/overview?from=2026-11-01&to=2026-11-25")
    assert resp.status_code == 200 and resp.json["period"]["total"] == 15
    assert resp.json["timeseries"]["bucket_s"] == 86400 and len(resp.json["timeseries"]["buckets"]) == 25
    assert c.get("/api/v1/overview?from=2026-11-26").json["period"]["total"] == 0
    for query in ("from=yesterday", "from=2026-11-25&to=2026-11-01", "from=2020-01-01&to=2026-11-25"):
        resp = c.get(f"/api/v1/overview?{query}")
        assert resp.status_code == 400 and "không hợp lệ" in resp.json["error"], query
    assert c.get("/?from=nonsense").status_code == 400


def test_devices_page_shows_health_and_alarms(app: Any) -> None:
    c = as_user(app, "admin")
    data = c.get("/api/v1/devices").json
    kinds = {(a["kind"], a["device"]) for a in data["alarms"]}
    assert kinds == {("offline", "u-ic7-2"), ("clock", "u-hn-1")}
    one = next(d for d in data["devices"] if d["id"] == "u-ic7-1")
    assert one["state"] == "online" and one["fps"] == 14.5 and one["trust_version"] == 7
    html = c.get("/devices").get_data(as_text=True)
    assert 'data-test-id="device-state-u-ic7-2" data-state="offline"' in html
    assert "52,3 °C" in html and "Chậm hơn danh sách tin cậy" in html
    app.config["CHOT_CLOCK_ALARM"] = False  # alarms.clock = false in the config
    assert {a["kind"] for a in c.get("/api/v1/alarms").json["alarms"]} == {"offline"}


def test_language_is_stored_per_user(app: Any, seeded: Seeded) -> None:
    c = as_user(app, "sup_lc")
    assert "Tổng quan" in c.get("/").get_data(as_text=True)
    resp = c.post("/language", data={"lang": "en", "csrf_token": page_token(c), "next": "/devices"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/devices"
    assert seeded.store.get_user("sup_lc").language == "en"
    html = as_user(app, "sup_lc").get("/").get_data(as_text=True)  # a new session keeps it
    assert "Overview" in html and "70.0%" in html and "Tổng quan" not in html
    assert c.post("/language", data={"lang": "fr", "csrf_token": page_token(c)}).status_code == 400


# -- escaping -------------------------------------------------------------------------------------
def test_names_from_the_registry_and_units_are_escaped_everywhere(app: Any) -> None:
    c = as_user(app, "admin")
    for path in ("/", "/checkpoints/XSS1", "/devices", "/admin/devices", "/stream/overview", "/stream/devices"):
        body = c.get(path).get_data(as_text=True)
        assert "<script>alert" not in body and "<img src=x" not in body, path
    assert "&lt;script&gt;alert" in c.get("/checkpoints/XSS1").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in c.get("/devices").get_data(as_text=True)
    assert c.get("/api/v1/checkpoints").json["checkpoints"][-1]["name"] == XSS_NAME
    sw = {d["id"]: d["software"] for d in c.get("/api/v1/devices").json["devices"]}
    assert sw["u-hn-1"] == XSS_SOFTWARE


def test_a_script_as_username_is_refused_and_escaped(app: Any, seeded: Seeded) -> None:
    c = as_user(app, "admin")
    resp = c.post("/admin/users", data={"username": "<script>x()</script>", "password": "long-enough-pw",
                                        "role": "viewer", "scope": "province:10", "csrf_token": page_token(c)})
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert "<script>x()" not in body and "&lt;script&gt;x()" in body


def test_pages_send_a_strict_content_security_policy(app: Any) -> None:
    resp = as_user(app, "admin").get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers["Cache-Control"] == "no-store"


# -- admin: users ---------------------------------------------------------------------------------
def test_admin_creates_a_scoped_viewer_who_can_log_in(app: Any, seeded: Seeded) -> None:
    c = as_user(app, "admin")
    resp = c.post("/admin/users", data={"username": "lc.viewer", "password": "a-long-password",
                                        "role": "viewer", "language": "en", "scope": "province:10\n",
                                        "csrf_token": page_token(c, "/admin/users")})
    assert resp.status_code == 200 and "lc.viewer" in resp.get_data(as_text=True)
    user = seeded.store.get_user("lc.viewer")
    assert user.role == "viewer" and user.scope.provinces == frozenset({"10"}) and user.language == "en"
    assert user.password_hash != "a-long-password"
    v = app.test_client()
    assert login(v, "lc.viewer", "a-long-password").status_code == 302
    assert v.get("/api/v1/overview").json["today"]["total"] == 10


@pytest.mark.parametrize("form,reason", [
    ({"username": "shorty", "password": "short", "role": "viewer"}, "ít nhất 10 ký tự"),
    ({"username": "admin", "password": "a-long-password", "role": "viewer", "scope": "province:10"}, "already exists"),
    ({"username": "weird", "password": "a-long-password", "role": "god"}, "role"),
    ({"username": "badscope", "password": "a-long-password", "role": "viewer", "scope": "planet:earth"}, "scope entry"),
    ({"username": "noscope", "password": "a-long-password", "role": "supervisor", "scope": " \n"}, "ít nhất một mục phạm vi"),
])
def test_bad_new_accounts_are_refused_with_a_reason(app: Any, form: dict, reason: str) -> None:
    c = as_user(app, "admin")
    resp = c.post("/admin/users", data={**form, "csrf_token": page_token(c)})
    assert resp.status_code == 400
    assert reason in resp.get_data(as_text=True)


# -- metrics --------------------------------------------------------------------------------------
def test_metrics_need_the_bearer_token_or_an_admin(app: Any, client: Any) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert 'chot_verdicts_total{checkpoint="IC7",province="10",result="green"} 5' in text
    assert 'chot_verdicts_total{checkpoint="HN-GIA",province="01",result="red"} 1' in text
    assert 'chot_device_online{device="u-ic7-2",checkpoint="IC7"} 0' in text
    assert 'chot_device_camera_fps{device="u-ic7-1",checkpoint="IC7"} 14.5' in text
    assert "# TYPE chot_verdicts_total counter" in text
    assert as_user(app, "admin").get("/metrics").status_code == 200


def test_unknown_urls_are_404_with_a_page(app: Any) -> None:
    resp = as_user(app, "admin").get("/no/such/page")
    assert resp.status_code == 404 and "Không tìm thấy trang" in resp.get_data(as_text=True)


def test_alarms_for_an_old_bundle_a_newer_bundle_and_a_unit_never_heard_from(app: Any, seeded: Seeded) -> None:
    c = as_user(app, "admin")
    old: dict[str, Any] = {"software": "chot 0.1.0", "trust_version": 7, "trust_age_s": 3 * 86400.0, "clock": "ok"}
    seeded.store.record_status("u-ic7-1", StatusUpdate("online", **old), seeded.now)
    alarms = c.get("/api/v1/alarms").json["alarms"]
    stale = [a for a in alarms if a["kind"] == "stale_trust"]
    assert [a["device"] for a in stale] == ["u-ic7-1"] and "3 ngày" in stale[0]["text"]

    # An hour later: bundle 8 has been out long enough, a new unit has never reported.
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    app.config["CHOT_NOW"] = lambda: later
    seeded.store.record_status("u-ic7-1", StatusUpdate("online", **{**old, "trust_age_s": 60.0}), later)
    seeded.store.save_trust_bundle(8, b"{}", None, None, "admin")
    seeded.store.add_device("u-new", "IC7")
    kinds = {(a["kind"], a["device"]) for a in c.get("/api/v1/alarms").json["alarms"]}
    assert ("stale_trust", "u-ic7-1") in kinds  # runs 7 while 8 is out
    assert ("never_seen", "u-new") in kinds and ("offline", "u-ic7-2") in kinds
    assert c.get("/api/v1/trust").json["latest"]["version"] == 8


def test_app_from_a_dashboard_config_keeps_a_private_session_key(tmp_path: Path, monkeypatch: Any) -> None:
    from dashboard.config import parse_config
    from dashboard.web import create_app

    monkeypatch.delenv("CHOT_DASHBOARD_SECRET_KEY", raising=False)
    monkeypatch.delenv("CHOT_METRICS_TOKEN", raising=False)
    config = parse_config({"data_dir": str(tmp_path / "central"), "timezone": "Asia/Ho_Chi_Minh",
                           "alarms": {"offline_after_s": 120, "trust_stale_after_h": 24}})
    first = create_app(config)
    key_file = tmp_path / "central" / "web" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert create_app(config).config["SECRET_KEY"] == first.config["SECRET_KEY"] == key_file.read_text()
    assert first.config["CHOT_OFFLINE_ALARM_S"] == 120 and first.config["CHOT_TRUST_MAX_AGE_S"] == 24 * 3600
    assert first.config["SESSION_COOKIE_HTTPONLY"] and first.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert first.config["SESSION_COOKIE_SECURE"] is False
    monkeypatch.setenv("CHOT_DASHBOARD_SECRET_KEY", "from-the-environment")
    assert create_app(config).config["SECRET_KEY"] == "from-the-environment"
    config.web.cookie_secure = True
    config.web.metrics_token = "scrape-me"
    app = create_app(config)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    resp = app.test_client().get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert resp.status_code == 200 and "chot_store_change_marker" in resp.get_data(as_text=True)


def test_bad_input_gets_a_reason_never_a_server_error(app: Any) -> None:
    c = as_user(app, "admin")
    token = page_token(c)
    for path in ("/api/v1/overview?from=%00", "/api/v1/overview?from=2026-02-30", "/?to=9999-99-99",
                 "/api/v1/overview?from=" + "9" * 5000, "/checkpoints/%3Cscript%3E", "/api/v1/checkpoints/" + "x" * 3000,
                 "/stream/checkpoint/%00", "/stream/overview?from=never"):
        resp = c.get(path)
        assert 400 <= resp.status_code < 500, (path, resp.status_code)
        assert "<script>" not in resp.get_data(as_text=True)
    assert c.post("/language", data={"lang": "x" * 10_000, "csrf_token": token}).status_code == 400
    big = c.post("/admin/trust", data={"bundle": (io.BytesIO(b"{" * (3 * 1024 * 1024)), "b.json"),
                                       "csrf_token": token}, content_type="multipart/form-data")
    assert big.status_code == 413
    anonymous = app.test_client()
    resp = login(anonymous, "x" * 10_000, "y" * 100_000)
    assert resp.status_code == 401


def test_a_country_of_checkpoints_shows_the_busiest_fifty_and_says_how_many_more(app: Any, seeded: Seeded) -> None:
    for i in range(60):
        seeded.store.upsert_checkpoint(f"CP{i:02d}", f"Chốt {i}", "100", "96")
        seeded.store.add_device(f"d{i:02d}", f"CP{i:02d}")
        seeded.events(f"d{i:02d}", f"CP{i:02d}", [("green", "complete_series")] * (i + 1))
    c = as_user(app, "admin")
    assert len(c.get("/api/v1/overview").json["by_checkpoint"]) == 62  # the API has them all
    html = c.get("/").get_data(as_text=True)
    rows = re.findall(r'data-test-id="by-checkpoint-([^"]+)"', html)
    assert len(rows) == 50 + 1 and rows[-1] == "more"  # 50 rows, then the note
    assert rows[0] == "CP59" and rows[49] == "CP10" and "IC7" not in rows  # IC7 has 10, CP10 has 11
    assert "… và 12 mục khác" in html and "Cà Mau (96)" in html
