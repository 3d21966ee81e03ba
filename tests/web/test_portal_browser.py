"""A clerk's week in the portal, in Debian's headless Chromium driven by Playwright (no browser is downloaded).

Screenshots go to $PORTAL_SCREENSHOTS when set (docs/screenshots/ is made that way), else to tmp_path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.services.accounts import add_account
from shortage_watch.web.server import WebServer
from tests.web.conftest import NOW, PASSWORD, web_settings

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def portal(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[App, WebServer, str]]:
    app = App(web_settings(sqlite_url, tmp_path), clock=FixedClock(NOW))
    _user, initial = add_account(app.sessions, name="D350901", role="distributor", party_code="D350901", now=NOW)
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    yield app, server, initial
    server.stop()
    app.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1180, "height": 820}, locale="zh-CN")
        yield context.new_page()
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PORTAL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_clerk_logs_in_enters_a_notice_files_the_report_uploads_and_prints(portal, page, shots, tmp_path):
    app, server, initial = portal
    base = server.address
    # Log in with the initial password: the portal asks for a new one first.
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login")
    page.fill("#name", "D350901")
    page.fill("#password", initial)
    page.click("button[type=submit]")
    assert page.url == f"{base}/password"
    page.fill("#current", initial)
    page.fill("#new", PASSWORD)
    page.fill("#repeat", PASSWORD)
    page.click("main button[type=submit]")
    assert "密码已修改" in page.inner_text("main")

    # A notice with a date in the future: the message stands beside that field, the others are kept.
    page.click("text=录入新收到的通知")
    page.fill("#f-notice_id", "HBZY-2024-1008")
    page.fill("#f-manufacturer", "华北制药股份有限公司")
    page.fill("#f-product_code", "XJ01DDT012B001010100445")
    page.fill("#f-product_name", "注射用头孢曲松钠")
    page.fill("#f-specification", "1.0g/支")
    page.select_option("#f-kind", "stoppage")
    page.select_option("#f-priority_class", "winning_bid")
    page.fill("#f-notified_on", "2024-12-08")
    page.click("main button[type=submit]")
    message = page.locator(".field.has-error #e-notified_on")
    assert "通知日期" in message.inner_text() or "晚于" in message.inner_text()
    assert page.locator(".field-error").count() == 1
    assert page.input_value("#f-product_name") == "注射用头孢曲松钠"
    page.screenshot(path=str(shots / "portal-notice-error.zh-CN.png"), full_page=True)
    page.fill("#f-notified_on", "2024-10-08")
    page.click("main button[type=submit]")
    assert "/records/stoppage_notice/" in page.url and "已保存" in page.inner_text("main")
    assert "2024-10-14 23:59" in page.inner_text("main")  # the deadline on the receipt

    # Home: the obligation with its deadline and working days left; one click to the report form.
    page.goto(f"{base}/")
    row = page.locator("tr", has_text="HBZY-2024-1008")
    assert "2024-10-14 23:59" in row.inner_text() and "剩余 5 个工作日" in row.inner_text()
    row.locator("text=填报书面反馈").click()
    page.fill("#f-hospitals_notified", "12")
    page.fill("#f-substitutes", "注射用头孢噻肟钠")
    page.fill("#f-contact_name", "王芳")
    page.click("main button[type=submit]")
    assert "/records/distributor_report/" in page.url
    assert "已按时报告" in page.inner_text("main")
    page.goto(f"{base}/")
    assert page.locator("tr", has_text="HBZY-2024-1008").count() == 0

    # Upload a GBK CSV as Excel writes it: one overdue notice, one good one, one bad row.
    csv = ("通知编号,生产企业,药品编码,药品名称,类型,配送企业编码,通知日期,药品类别\r\n"
           "SY-0920,石药集团中诺药业,XJ01CA04,阿莫西林胶囊,断供,D350901,2024-09-20,国谈药品\r\n"
           "SY-1008,石药集团中诺药业,XJ01CA05,硝酸甘油片,减产,D350901,2024-10-08,\r\n"
           "SY-BAD,石药集团中诺药业,XJ01CA06,葡萄糖酸钙注射液,停产停产,D350901,2024-10-08,\r\n")
    upload = tmp_path / "停产通知.csv"
    upload.write_bytes(csv.encode("gbk"))
    page.click("header >> text=上传文件")
    page.set_input_files("#file", str(upload))
    page.click("main form button[type=submit]")
    # The click only starts the POST; under load the form page is still shown for a moment.
    page.wait_for_selector("#row-errors tbody tr")
    errors = page.locator("#row-errors tbody tr")
    assert errors.count() == 1
    assert "类型（kind）" in errors.first.inner_text() and "4" in errors.first.inner_text()
    assert page.locator("#accepted tbody tr").count() == 2
    assert "接受 2" in page.inner_text(".summary") and "拒绝 1" in page.inner_text(".summary")
    page.screenshot(path=str(shots / "portal-upload-result.zh-CN.png"), full_page=True)

    # Home again: the overdue one in red, the new one with its days left.
    page.goto(f"{base}/")
    overdue = page.locator("tr.overdue-row", has_text="SY-0920")
    assert "已逾期" in overdue.inner_text()
    assert page.locator("tr.overdue-row .overdue").first.evaluate("e => getComputedStyle(e).color") == "rgb(192, 22, 27)"
    page.screenshot(path=str(shots / "portal-home.zh-CN.png"), full_page=True)

    # History and the receipt, as printed: navigation hidden, the facts kept.
    page.click("header >> text=提交记录")
    page.wait_for_url("**/history")
    page.locator("tr", has_text="HBZY-2024-1008").locator("text=回执").first.click()
    page.wait_for_url("**/records/stoppage_notice/*")
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert page.locator("article.receipt").is_visible()
    assert "回执" in page.inner_text("article.receipt") and "SW-O-" in page.inner_text("article.receipt")
    pdf = page.pdf()
    assert pdf.startswith(b"%PDF")


def test_correcting_a_record_keeps_the_old_version_and_the_reason(portal, page):
    app, server, initial = portal
    base = server.address
    from shortage_watch.services.accounts import change_password, session_user

    user = session_user(app.read_sessions, 1, 0, "no session ended")
    change_password(app.sessions, user, current=initial, new=PASSWORD, now=NOW)
    page.goto(f"{base}/login")
    page.fill("#name", "D350901")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.goto(f"{base}/notices/new")
    for key, value in {"notice_id": "N-1", "manufacturer": "厂", "product_code": "P1", "product_name": "药",
                       "notified_on": "2024-10-08"}.items():
        page.fill(f"#f-{key}", value)
    page.select_option("#f-kind", "stoppage")
    page.click("main button[type=submit]")
    page.click("text=更正此记录")
    page.fill("#f-notified_on", "2024-10-07")
    page.click("main button[type=submit]")
    assert "请填写更正原因" in page.inner_text("#e-correction_reason")
    page.fill("#f-correction_reason", "通知日期录入错误")
    page.click("main button[type=submit]")
    text = page.inner_text("main")
    assert "通知日期录入错误" in text and "更正" in text
    assert page.locator("table.list").last.locator("tbody tr").count() == 2  # versions 1 and 2
    assert "2024-10-12 23:59" in text  # the deadline moved with the received date (the 12th: a make-up Saturday)


def test_the_english_switch(portal, page):
    _app, server, _initial = portal
    page.goto(f"{server.address}/login")
    page.click("text=English")
    assert page.inner_text("h1") == "Log in"
    page.click("text=中文")
    assert page.inner_text("h1") == "登录"
