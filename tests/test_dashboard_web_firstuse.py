"""What a new supervisor or admin meets first (issue 11): 404 vs 403, /metrics' header, the account form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashboard.scope import Scope
from tests.support.dashboard_web import Seeded, login, make_app, password_hash, seeded  # noqa: F401 - fixture


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path) -> Any:
    seeded.store.create_user("sup_cp", password_hash("checkpoint-password"), "supervisor",
                             Scope.of(checkpoints=["IC7", "GONE"]))
    return make_app(seeded, tmp_path / "instance", CHOT_METRICS_TOKEN="scrape")


def as_user(app: Any, username: str, password: str | None = None) -> Any:
    c = app.test_client()
    assert login(c, username, password).status_code == 302
    return c


@pytest.mark.parametrize("username,password,path,status", [
    ("admin", None, "/checkpoints/NOPE", 404),  # the whole country: it would be seen, so it is not there
    ("admin", None, "/api/v1/checkpoints/NOPE", 404),
    ("admin", None, "/stream/checkpoint/NOPE", 404),
    ("sup_cp", "checkpoint-password", "/api/v1/checkpoints/GONE", 404),  # named in the scope, not registered
    ("sup_lc", None, "/checkpoints/NOPE", 403),  # a province's supervisor learns nothing about others
    ("sup_lc", None, "/api/v1/checkpoints/NOPE", 403),
    ("sup_lc", None, "/checkpoints/HN-GIA", 403),  # exists, outside the scope: the same answer
    ("sup_lc", None, "/api/v1/checkpoints/HN-GIA", 403),
    ("sup_cp", "checkpoint-password", "/api/v1/checkpoints/HN-GIA", 403),
    ("sup_lc", None, "/api/v1/checkpoints/IC7", 200),
    ("admin", None, "/checkpoints/HN-GIA", 200),
])
def test_a_missing_checkpoint_is_404_only_where_the_scope_would_show_it(
        app: Any, username: str, password: str | None, path: str, status: int) -> None:
    resp = as_user(app, username, password).get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    if status == 404 and path.startswith("/checkpoints"):
        assert "Không tìm thấy" in resp.get_data(as_text=True)


def test_metrics_content_type_names_the_charset_once(app: Any) -> None:
    resp = app.test_client().get("/metrics", headers={"Authorization": "Bearer scrape"})
    assert resp.status_code == 200
    header = resp.headers["Content-Type"]
    assert header.lower().count("charset") == 1, header
    assert header.replace(" ", "") == "text/plain;version=0.0.4;charset=utf-8"


def test_create_account_form_starts_on_the_least_privileged_role(app: Any) -> None:
    html = as_user(app, "admin").get("/admin/users").get_data(as_text=True)
    create_form = html.split('data-test-id="create-user-form"')[1]  # each user row has its own role form
    select = re.search(r'<select name="role".*?</select>', create_form, re.S).group(0)
    selected = re.findall(r'<option value="(\w+)" selected', select)
    assert selected == ["viewer"], select
    assert re.findall(r'<option value="(\w+)"', select) == ["admin", "province_admin", "supervisor", "viewer"]


def test_users_page_shows_scopes_in_words(app: Any, seeded: Seeded) -> None:
    seeded.store.create_user("sup_pt", password_hash("phu-tho-password"), "supervisor",
                             Scope.of(provinces=["25"], districts=["227"]))
    c = as_user(app, "admin")
    html = c.get("/admin/users").get_data(as_text=True)
    rows = dict(re.findall(r'data-test-id="user-(\w+)">(.*?)</tr>', html, re.S))
    assert "Toàn quốc" in rows["admin"]
    assert "Phú Thọ (25)" in rows["sup_pt"] and "Quận/huyện 227" in rows["sup_pt"]
    assert "Lào Cai (10)" in rows["sup_lc"] and "Chốt IC7" in rows["sup_cp"]
    # Scope codes may stand only in the edit fields' values (the syntax the form's help explains).
    shown = re.sub(r'value="[^"]*"', "", html.split("create-user-form")[0])
    assert "province:" not in shown and ">all<" not in html
    # The API keeps the stable entries and adds the words beside them.
    users = {u["username"]: u for u in c.get("/api/v1/users").json["users"]}
    assert users["sup_pt"]["scope"] == ["province:25", "district:227"]
    assert users["sup_pt"]["scope_text"] == "Phú Thọ (25), Quận/huyện 227"
