"""An officer's morning on the dashboard, in Debian's headless Chromium driven by Playwright (no browser is downloaded).

Screenshots go to $PORTAL_SCREENSHOTS when set (docs/screenshots/ is made that way), else to tmp_path.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from openpyxl import load_workbook

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.services.accounts import add_account
from shortage_watch.web.server import WebServer
from tests.dashboard.conftest import NOW, Seeded, seed_ledger
from tests.web.conftest import PASSWORD, web_settings
from tests.web.test_portal_browser import page, shots  # noqa: F401 (the portal's Chromium page and screenshot folder)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")]


@pytest.fixture
def dashboard(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[App, WebServer, Seeded, str]]:
    app = App(web_settings(sqlite_url, tmp_path), clock=FixedClock(NOW))
    seeded = seed_ledger(app.sessions)
    _user, initial = add_account(app.sessions, name="nd-wang", role="officer", party_code=None, region_code="350900", bureau="insurance", now=NOW)
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    yield app, server, seeded, initial
    server.stop()
    app.close()


def test_an_officer_reads_the_overview_prepares_an_interview_resolves_a_case_and_exports(dashboard, page, shots, tmp_path) -> None:
    _app, server, seeded, initial = dashboard
    base = server.address
    # First login: the initial password must be changed, then the dashboard opens.
    page.goto(f"{base}/login")
    page.fill("input[name=name]", "nd-wang")
    page.fill("input[name=password]", initial)
    page.click("button[type=submit], form button")
    page.wait_for_url(f"{base}/password")
    page.fill("input[name=current]", initial)
    page.fill("input[name=new]", PASSWORD)
    page.fill("input[name=repeat]", PASSWORD)
    page.click("form.form button")
    page.wait_for_url(f"{base}/bureau/")
    assert page.locator(".card-value").count() == 6
    assert page.locator("svg.chart").count() == 2
    page.screenshot(path=str(shots / "dashboard_overview.png"), full_page=True)

    # The overdue card leads to the list, the list to the obligation, the obligation to its distributor.
    page.click("a.card:has-text('当前逾期')")
    page.wait_for_url("**/bureau/obligations?state=overdue")
    page.click(f"a[href='/bureau/obligations/{seeded.ob['jiaocheng_overdue']}']")
    assert page.locator("table.calendar").count() == 2 and page.locator("td.due").count() == 1
    page.click("a[href='/bureau/distributors/D350901']")
    page.click("#interview-link")
    page.wait_for_url("**/bureau/distributors/D350901/interview")
    checksum = page.inner_text("#checksum")
    assert len(checksum) == 64 and "约谈材料" in page.inner_text("h1")
    page.emulate_media(media="print")
    page.screenshot(path=str(shots / "dashboard_interview_material.png"), full_page=True)
    page.pdf(path=str(tmp_path / "interview.pdf"))
    assert (tmp_path / "interview.pdf").read_bytes().startswith(b"%PDF")
    page.emulate_media(media="screen")

    # Resolve the city's case with a note: the note and the officer appear in the timeline.
    page.goto(f"{base}/bureau/cases/{seeded.case['ningde']}")
    page.fill("#resolve-form textarea[name=note]", "已协调宁德国药调拨，全市供应恢复")
    page.click("#resolve-form button")
    page.wait_for_selector("ol.timeline li.officer")
    timeline = page.inner_text("ol.timeline")
    assert "已协调宁德国药调拨，全市供应恢复" in timeline and "web:nd-wang" in timeline
    page.screenshot(path=str(shots / "dashboard_case_timeline.png"), full_page=True)

    # Export a filtered list: exactly its rows, and a record's =HYPERLINK(...) stays text.
    page.goto(f"{base}/bureau/obligations?drug=硝酸")
    with page.expect_download() as download:
        page.click("#export-xlsx")
    path = tmp_path / "export.xlsx"
    download.value.save_as(str(path))
    sheet = load_workbook(io.BytesIO(path.read_bytes())).active
    headers = [c.value for c in sheet[1]]
    assert sheet.max_row == 2 and sheet.cell(2, headers.index("通知编号") + 1).value == "N-FA-SOON"
    cell = sheet.cell(2, headers.index("生产企业") + 1)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x.example","点我")', "s")


def _officer_logs_in(page, base: str, initial: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", "nd-wang")
    page.fill("input[name=password]", initial)
    page.click("button[type=submit], form button")
    page.fill("input[name=current]", initial)
    page.fill("input[name=new]", PASSWORD)
    page.fill("input[name=repeat]", PASSWORD)
    page.click("form.form button")
    page.wait_for_url(f"{base}/bureau/")


def test_a_refused_offline_action_comes_back_with_the_reason_and_what_was_typed(dashboard, page, shots) -> None:
    _app, server, seeded, initial = dashboard
    base = server.address
    number = seeded.ob["jiaocheng_overdue"]
    _officer_logs_in(page, base, initial)
    page.goto(f"{base}/bureau/obligations/{number}")
    page.select_option("#offline-form select[name=kind]", "written_reminder")
    page.fill("#offline-form textarea[name=note]", "电话催报并寄送书面提醒")
    # Chromium's date picker offers no 30 February; a browser without one (or a pasted value) sends it as text.
    page.evaluate("() => { const f = document.querySelector('#offline-form input[name=done_on]'); f.type = 'text'; f.value = '2024-02-30'; }")
    page.click("#offline-form button")
    assert "日期无效：2024-02-30" in page.inner_text("#action-error")
    assert page.input_value("#offline-form input[name=done_on]") == "2024-02-30"  # shown as typed, to be corrected
    assert page.input_value("#offline-form textarea[name=note]") == "电话催报并寄送书面提醒"
    assert page.input_value("#offline-form select[name=kind]") == "written_reminder"
    page.screenshot(path=str(shots / "dashboard_offline_form_refused.png"), full_page=True)
    page.fill("#offline-form input[name=done_on]", "2024-10-14")
    page.click("#offline-form button")
    page.wait_for_url(f"{base}/bureau/obligations/{number}")  # still about the obligation it came from
    assert "线下书面提醒（2024-10-14）：电话催报并寄送书面提醒" in page.inner_text("ol.timeline")
