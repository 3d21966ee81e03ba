"""The web app on odd input: forged cookies, open redirects, odd paths, odd bodies. Never a 500, never a trace."""

from __future__ import annotations

import json

import pytest
import requests

from tests.web.conftest import add_distributor, make_web, notice, token_for, web  # noqa: F401 (fixtures)
from tests.web.test_portal_security import login


def _clean(answer: requests.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert "Traceback" not in answer.text and 'File "' not in answer.text


@pytest.mark.parametrize("cookie", ["", "x", "." * 5000, "eyJhIjogMX0.deadbeef", "\u4e2d\u6587".encode().decode("latin-1"),
                                    "eyJhIjoxLCJlIjowLCJuIjoieCIsIngiOjk5OTk5OTk5OTk5fQ." + "0" * 64])
def test_forged_or_broken_session_cookies_only_lead_to_the_login_page(web, cookie):
    _app, server = web
    answer = requests.get(f"{server.address}/history", headers={"Cookie": f"sw_session={cookie}"}, timeout=10,
                          allow_redirects=False)
    _clean(answer)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/login")


@pytest.mark.parametrize("target", ["//evil.example.com/", "https://evil.example.com/", "/\\evil.example.com",
                                    "javascript:alert(1)"])
def test_no_open_redirect_after_login_or_language_switch(web, target):
    app, server = web
    add_distributor(app, "D350901")
    lang = requests.get(f"{server.address}/lang/en", params={"next": target}, timeout=10, allow_redirects=False)
    assert lang.headers["Location"] == "/"
    browser = requests.Session()
    page = browser.get(f"{server.address}/login", params={"next": target}, timeout=10)
    assert target not in page.text.replace("&#34;", '"') or 'value="/"' in page.text
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = browser.post(f"{server.address}/login", data={"csrf": csrf, "name": "D350901",
                                                            "password": "correct horse battery", "next": target},
                          timeout=10, allow_redirects=False)
    assert answer.headers["Location"] == "/"


@pytest.mark.parametrize("path", ["/templates/..%2F..%2Fetc%2Fpasswd", "/templates/stoppage_notice.exe",
                                  "/templates/shortage_report.csv", "/records/raw_payloads/1", "/records/stoppage_notice/-1",
                                  "/records/stoppage_notice/99999999999999999999", "/records/distributor_report/99999999999999999999/correct",
                                  "/obligations/SW-O-99999999999999999999", "/obligations/%00", "/static/../app.py"])
def test_odd_paths_are_404_not_500(web, path):
    app, server = web
    add_distributor(app, "D350901")
    answer = login(server, "D350901").get(f"{server.address}{path}", timeout=10)
    _clean(answer)
    assert answer.status_code in (404, 422)


def test_a_page_far_past_the_end_is_empty_not_a_crash(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.get(f"{server.address}/api/v1/obligations?offset=99999999999999999999",
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    _clean(answer)
    assert answer.status_code == 200 and answer.json()["data"] == []


def test_revoking_a_token_number_no_table_can_hold_is_404(web):
    app, server = web
    add_distributor(app, "D350901")
    browser = login(server, "D350901")
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(f"{server.address}/tokens", timeout=10).text).group(1)
    answer = browser.post(f"{server.address}/tokens/99999999999999999999/revoke", data={"csrf": csrf}, timeout=10)
    _clean(answer)
    assert answer.status_code == 404


@pytest.mark.parametrize("query", ["limit=0", "limit=100000", "offset=-1", "limit=abc", "state=nonsense",
                                   "since=yesterday", "state=open,%00", "since=0001-01-01T00:00:00",
                                   "since=9999-12-31T23:59:59-12:00"])
def test_bad_paging_and_filters_are_422_with_a_reason(web, query):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.get(f"{server.address}/api/v1/obligations?{query}", headers={"Authorization": f"Bearer {token}"},
                          timeout=10)
    _clean(answer)
    assert answer.status_code == 422 and answer.json()["error"]


@pytest.mark.parametrize("body", [b"null", b"[1, 2, 3]", b'"text"', b"[" * 5000 + b"]" * 5000, b"\xff\xfe\x00",
                                  json.dumps({"records": [{"record_kind": "nonsense"}]}).encode(),
                                  json.dumps([notice(notice_id="x" * 10000)]).encode()])
def test_odd_json_bodies_are_row_errors_or_422(web, body):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.post(f"{server.address}/api/v1/records", data=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    _clean(answer)
    assert answer.status_code in (200, 422)
    assert answer.json()["accepted"] == 0


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer \u00e9\u00e9"}, {"Authorization": "Bearer " + "a" * 10000},
                                     {"Authorization": "Bearer"}, {"Authorization": "bearer  "}])
def test_odd_authorization_headers_are_401(web, headers):
    _app, server = web
    encoded = {k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()}
    answer = requests.get(f"{server.address}/api/v1/obligations", headers=encoded, timeout=10)
    _clean(answer)
    assert answer.status_code == 401


def test_an_idempotency_key_with_control_characters_is_422(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.post(f"{server.address}/api/v1/records", json=notice(), timeout=10, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "a\tb"})
    _clean(answer)
    assert answer.status_code == 422 and "Idempotency-Key" in answer.json()["error"]


def test_a_form_in_broken_utf8_is_a_page_not_a_crash(web):
    app, server = web
    add_distributor(app, "D350901")
    browser = login(server, "D350901")
    answer = browser.post(f"{server.address}/notices/new", data=b"csrf=x&notice_id=%FF%FE&kind=%C0%AF", timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    _clean(answer)


NUL_REFUSED = "空字符"


def test_a_nul_character_in_the_login_form_is_one_clear_refusal(web):
    _app, server = web
    import re

    browser = requests.Session()
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(f"{server.address}/login", timeout=10).text).group(1)
    answer = browser.post(f"{server.address}/login", data={"csrf": csrf, "name": "D350901\x00", "password": "x"}, timeout=10)
    _clean(answer)
    assert answer.status_code == 422 and NUL_REFUSED in answer.text


def test_a_nul_character_in_a_token_name_is_one_clear_refusal(web):
    app, server = web
    add_distributor(app, "D350901")
    browser = login(server, "D350901")
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(f"{server.address}/tokens", timeout=10).text).group(1)
    answer = browser.post(f"{server.address}/tokens", data={"csrf": csrf, "name": "ERP\x00"}, timeout=10)
    _clean(answer)
    assert answer.status_code == 422 and NUL_REFUSED in answer.text


@pytest.mark.parametrize("method,path,status,text", [("GET", "/no-such-page", 404, "页面不存在"), ("GET", "/static/no-such.css", 404, "页面不存在"),
                                                     ("DELETE", "/history", 405, "不支持此请求方法")])
def test_an_unknown_page_or_method_is_a_page_in_chinese_first(web, method, path, status, text):
    _app, server = web
    answer = requests.request(method, f"{server.address}{path}", timeout=10)
    _clean(answer)
    assert answer.status_code == status and answer.headers["content-type"].startswith("text/html") and text in answer.text


def test_an_unknown_api_path_is_an_api_error_in_chinese_first(web):
    _app, server = web
    answer = requests.get(f"{server.address}/api/v1/no-such-thing", timeout=10)
    assert answer.status_code == 404 and answer.json() == {"error": "页面不存在 / not found"}


def test_a_multipart_upload_without_a_boundary_is_one_clear_message(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.post(f"{server.address}/api/v1/files", data=b"xx", timeout=10, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data"})
    _clean(answer)
    assert answer.status_code == 400 and answer.json()["error"].startswith("请求")
