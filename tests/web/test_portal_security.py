"""The portal's defences, over real HTTP: CSRF, cookie flags, login pauses, escaping, one distributor per account."""

from __future__ import annotations

import logging
import re

import requests
from sqlalchemy import func, select

from shortage_watch.services.accounts import add_account
from shortage_watch.store.tables import ApiToken, AuditEvent, LoginAttempt, StoppageNotice

from tests.web.conftest import NOW, PASSWORD, add_distributor, notice, token_for

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf(page: requests.Response) -> str:
    match = CSRF.search(page.text)
    assert match, page.text[:300]
    return match.group(1)


def login(server, name: str, password: str = PASSWORD) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{server.address}/login", timeout=10)
    answer = browser.post(f"{server.address}/login", data={"csrf": _csrf(form), "name": name, "password": password},
                          timeout=10, allow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    return browser


def test_a_post_without_the_forms_csrf_token_is_refused(web):
    app, server = web
    add_distributor(app, "D350901")
    browser = login(server, "D350901")
    values = {k: v for k, v in notice().items() if k not in ("record_kind", "distributor_code")}
    for token in (None, "forged"):
        data = values if token is None else {**values, "csrf": token}
        answer = browser.post(f"{server.address}/notices/new", data=data, timeout=10, allow_redirects=False)
        assert answer.status_code == 403
    # The login form too: a token from another visitor's session does not count.
    stranger = requests.Session()
    their_token = _csrf(stranger.get(f"{server.address}/login", timeout=10))
    answer = requests.post(f"{server.address}/login", data={"csrf": their_token, "name": "D350901",
                                                             "password": PASSWORD}, timeout=10, allow_redirects=False)
    assert answer.status_code == 403
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoppageNotice)) == 0
    good = browser.post(f"{server.address}/notices/new", data={**values, "csrf": _csrf(browser.get(
        f"{server.address}/notices/new", timeout=10))}, timeout=10, allow_redirects=False)
    assert good.status_code == 303


def test_session_cookie_is_signed_httponly_samesite_and_expires(web):
    app, server = web
    add_distributor(app, "D350901")
    form = requests.get(f"{server.address}/login", timeout=10)
    answer = requests.post(f"{server.address}/login", data={"csrf": _csrf(form), "name": "D350901",
                                                             "password": PASSWORD},
                           cookies=form.cookies, timeout=10, allow_redirects=False)
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("sw_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=28800" in cookie
    value = answer.cookies["sw_session"]
    home = requests.get(f"{server.address}/", cookies={"sw_session": value}, timeout=10, allow_redirects=False)
    assert home.status_code == 200
    body, mac = value.rsplit(".", 1)
    forged = f"{body}.{'0' * len(mac)}"
    assert requests.get(f"{server.address}/", cookies={"sw_session": forged}, timeout=10,
                        allow_redirects=False).headers["Location"].startswith("/login")
    # Nine hours later the same cookie no longer opens the portal.
    from datetime import timedelta

    app.clock.advance_to(NOW + timedelta(hours=9))
    assert requests.get(f"{server.address}/", cookies={"sw_session": value}, timeout=10,
                        allow_redirects=False).headers["Location"].startswith("/login")


def test_secure_cookie_when_the_public_address_is_https(make_web):
    app, server = make_web(public_url="https://portal.example.cn")
    form = requests.get(f"{server.address}/login", timeout=10)
    assert "Secure" in form.headers["Set-Cookie"]


def test_login_failures_pause_the_account_at_that_address(web):
    app, server = web
    add_distributor(app, "D350901")
    browser = requests.Session()
    codes = []
    for _ in range(6):
        form = browser.get(f"{server.address}/login", timeout=10)
        codes.append(browser.post(f"{server.address}/login", data={"csrf": _csrf(form), "name": "D350901",
                                                                    "password": "wrong password"}, timeout=10).status_code)
    assert codes == [401] * 5 + [429]
    # Even the right password waits out the pause.
    form = browser.get(f"{server.address}/login", timeout=10)
    paused = browser.post(f"{server.address}/login", data={"csrf": _csrf(form), "name": "D350901",
                                                            "password": PASSWORD}, timeout=10, allow_redirects=False)
    assert paused.status_code == 429 and "15" in paused.text
    from datetime import timedelta

    app.clock.advance_to(NOW + timedelta(minutes=16))
    assert login(server, "D350901")
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 6  # 5 failures and the success: paused tries are not counted
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "login")) == 1


def test_initial_password_must_be_changed_before_anything_else(web):
    app, server = web
    _user, initial = add_account(app.sessions, name="D350901", role="distributor", party_code="D350901", now=NOW)
    browser = requests.Session()
    form = browser.get(f"{server.address}/login", timeout=10)
    answer = browser.post(f"{server.address}/login", data={"csrf": _csrf(form), "name": "D350901",
                                                             "password": initial}, timeout=10, allow_redirects=False)
    assert answer.headers["Location"] == "/password"
    assert browser.get(f"{server.address}/history", timeout=10, allow_redirects=False).headers["Location"] == "/password"
    page = browser.get(f"{server.address}/password", timeout=10)
    short = browser.post(f"{server.address}/password", data={"csrf": _csrf(page), "current": initial, "new": "short",
                                                              "repeat": "short"}, timeout=10)
    assert short.status_code == 422 and "10" in short.text
    done = browser.post(f"{server.address}/password", data={"csrf": _csrf(page), "current": initial, "new": PASSWORD,
                                                             "repeat": PASSWORD}, timeout=10, allow_redirects=False)
    assert done.status_code == 303
    assert browser.get(f"{server.address}/history", timeout=10, allow_redirects=False).status_code == 200


def test_html_in_any_field_is_escaped_on_every_page(web):
    app, server = web
    add_distributor(app, "D350901")
    token = token_for(app, add_distributor(app, "D350902", name="<b>clerk</b>"), name="<script>alert(1)</script>")
    evil = "<script>alert('x')</script>"
    requests.post(f"{server.address}/api/v1/records", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                  json=[notice("N<i>1</i>", distributor_code="D350902", product_name=evil, manufacturer=evil,
                               reason=evil)])
    browser = login(server, "<b>clerk</b>")
    with app.sessions() as session:
        pk = session.scalar(select(StoppageNotice.id))
    pages = ["/", "/history", f"/records/stoppage_notice/{pk}", f"/records/stoppage_notice/{pk}/correct",
             "/obligations/1", "/tokens", "/upload"]
    for path in pages:
        text = browser.get(f"{server.address}{path}", timeout=10).text
        assert "<script>alert" not in text and "<b>clerk" not in text and "<i>1" not in text, path
    assert "&lt;script&gt;alert(&#39;x&#39;)" in browser.get(f"{server.address}/", timeout=10).text
    # A rejected form shows what was typed, escaped too.
    form = browser.get(f"{server.address}/notices/new", timeout=10)
    answer = browser.post(f"{server.address}/notices/new", data={"csrf": _csrf(form), "notice_id": evil,
                                                                  "notified_on": "<img src=x>"}, timeout=10)
    assert answer.status_code == 422 and "<img src=x>" not in answer.text and "<script>alert" not in answer.text


def test_one_distributor_can_never_reach_anothers_records(web):
    app, server = web
    add_distributor(app, "D350901")
    theirs = token_for(app, add_distributor(app, "D350902"))
    requests.post(f"{server.address}/api/v1/records", headers={"Authorization": f"Bearer {theirs}"}, timeout=10,
                  json=[notice("THEIRS", distributor_code="D350902")])
    with app.sessions() as session:
        pk = session.scalar(select(StoppageNotice.id))
        their_token = session.scalar(select(ApiToken.id))
    browser = login(server, "D350901")
    for path in ("/obligations/1", "/obligations/1/report", f"/records/stoppage_notice/{pk}",
                 f"/records/stoppage_notice/{pk}/correct"):
        assert browser.get(f"{server.address}{path}", timeout=10).status_code == 404, path
    for path in ("/", "/history"):
        assert "THEIRS" not in browser.get(f"{server.address}{path}", timeout=10).text
    csrf = _csrf(browser.get(f"{server.address}/tokens", timeout=10))
    # Writing: a correction of their record, a report on their obligation, revoking their token.
    assert browser.post(f"{server.address}/records/stoppage_notice/{pk}/correct",
                        data={"csrf": csrf, "correction_reason": "x", "product_name": "mine now"},
                        timeout=10).status_code == 404
    assert browser.post(f"{server.address}/obligations/1/report", data={"csrf": csrf, "report_id": "R-1"},
                        timeout=10).status_code == 404
    assert browser.post(f"{server.address}/tokens/{their_token}/revoke", data={"csrf": csrf},
                        timeout=10).status_code == 404
    # A notice naming them typed into my form is refused beside nothing: the form has no code field,
    # and an upload naming them is a row error.
    csv = "通知编号,生产企业,药品编码,药品名称,类型,配送企业编码,通知日期\nX-1,厂,P1,药,停产,D350902,2024-10-08\n"
    answer = browser.post(f"{server.address}/upload", data={"csrf": csrf, "kind": "auto"},
                          files={"file": ("x.csv", csv.encode())}, timeout=10)
    assert "配送企业编码" in answer.text and "D350901" in answer.text
    with app.sessions() as session:
        assert session.scalars(select(StoppageNotice.notice_id)).all() == ["THEIRS"]
        assert session.scalar(select(ApiToken.revoked_at)) is None


def test_a_token_is_shown_once_and_never_logged(web, caplog):
    app, server = web
    add_distributor(app, "D350901")
    browser = login(server, "D350901")
    caplog.set_level(logging.DEBUG)
    page = browser.get(f"{server.address}/tokens", timeout=10)
    created = browser.post(f"{server.address}/tokens", data={"csrf": _csrf(page), "name": "ERP"}, timeout=10)
    secret = re.search(r'id="new-token">([^<]+)<', created.text).group(1)
    assert secret.startswith("sw_")
    requests.get(f"{server.address}/api/v1/obligations", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert secret not in browser.get(f"{server.address}/tokens", timeout=10).text
    assert secret not in caplog.text
    with app.sessions() as session:
        stored = session.scalar(select(ApiToken))
        details = " ".join(str(d) for d in session.scalars(select(AuditEvent.detail)).all())
    assert secret not in (stored.token_hash, stored.prefix) and stored.prefix == secret[:10]
    assert secret not in details


def _cookie(browser: requests.Session) -> str:
    return browser.cookies["sw_session"]


def _opens_home(server, cookie: str) -> bool:
    answer = requests.get(f"{server.address}/", cookies={"sw_session": cookie}, timeout=10, allow_redirects=False)
    assert answer.status_code in (200, 303), answer.status_code
    return answer.status_code == 200


def test_logging_out_ends_that_session_for_every_copy_of_its_cookie_and_no_other(web):
    app, server = web
    add_distributor(app, "D350901")
    office, phone = login(server, "D350901"), login(server, "D350901")
    copied = _cookie(office)
    assert _opens_home(server, copied)
    answer = office.post(f"{server.address}/logout", data={"csrf": _csrf(office.get(f"{server.address}/", timeout=10))},
                         timeout=10, allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    assert not _opens_home(server, copied)  # a copy taken before the logout is refused on the server
    assert _opens_home(server, _cookie(phone))  # the account's session on another device goes on
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "logout")) == 1


def test_a_password_change_ends_the_accounts_other_sessions_and_keeps_this_one(web):
    app, server = web
    add_distributor(app, "D350901")
    office, phone = login(server, "D350901"), login(server, "D350901")
    before = _cookie(office)
    page = office.get(f"{server.address}/password", timeout=10)
    done = office.post(f"{server.address}/password", data={"csrf": _csrf(page), "current": PASSWORD, "new": "another horse battery",
                                                           "repeat": "another horse battery"}, timeout=10, allow_redirects=False)
    assert done.status_code == 303
    assert _opens_home(server, _cookie(office))
    assert not _opens_home(server, _cookie(phone)) and not _opens_home(server, before)


def test_disabling_an_account_ends_every_session_of_it(web):
    from shortage_watch.services.accounts import disable_account

    app, server = web
    add_distributor(app, "D350901")
    add_distributor(app, "D350902")
    office, phone, other = login(server, "D350901"), login(server, "D350901"), login(server, "D350902")
    disable_account(app.sessions, "D350901", NOW)
    assert not _opens_home(server, _cookie(office)) and not _opens_home(server, _cookie(phone))
    assert _opens_home(server, _cookie(other))


def test_a_session_is_checked_in_one_statement(db_url, sessions):
    """Each request's session costs one read: the account and whether this session ended, together."""
    from sqlalchemy import event

    from shortage_watch.services.accounts import log_out, session_user

    user = add_account(sessions, name="D350901", role="distributor", party_code="D350901", now=NOW)[0]
    statements: list[str] = []
    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert session_user(sessions, user.id, 0, "a" * 64) is not None
    assert [s.split()[0] for s in statements if not s.startswith("BEGIN")] == ["SELECT"]
    log_out(sessions, account_id=user.id, session_id="a" * 64, expires_at=NOW.replace(hour=10), now=NOW)
    assert session_user(sessions, user.id, 0, "a" * 64) is None and session_user(sessions, user.id, 0, "b" * 64) is not None
