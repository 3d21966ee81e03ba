"""The bureau dashboard over HTTP (a real uvicorn): every page, chart and export scoped to the officer's regions."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
import requests
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.cli import main
from shortage_watch.services.accounts import add_account, change_password
from shortage_watch.store.tables import Alert, AuditEvent, OfficerAction, ShortageCase, ShortageReport
from shortage_watch.web.server import WebServer
from tests.dashboard.conftest import NOW, Seeded, seed_ledger
from tests.web.conftest import PASSWORD, web_settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
# Rows of 重庆 (seeded beside 宁德's): their notices, distributor, districts.
CHONGQING_MARKS = ("N-CQ-", "D500003", "渝中区", "重庆")


@pytest.fixture
def bureau(db_url: str, tmp_path: Path) -> Iterator[tuple[App, WebServer, Seeded]]:
    app = App(web_settings(db_url, tmp_path), clock=FixedClock(NOW))
    seeded = seed_ledger(app.sessions)
    for name, region, bureau in (("ningde", "350900", "insurance"), ("jiaocheng", "350902", "insurance"), ("cq", "500000", "health")):
        user, initial = add_account(app.sessions, name=name, role="officer", party_code=None, region_code=region, bureau=bureau, now=NOW)
        change_password(app.sessions, user, current=initial, new=PASSWORD, now=NOW)
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    yield app, server, seeded
    server.stop()
    app.close()


def login(server: WebServer, name: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{server.address}/login", timeout=10)
    answer = browser.post(f"{server.address}/login", data={"csrf": CSRF.search(form.text).group(1), "name": name, "password": PASSWORD}, timeout=10)
    assert answer.status_code == 200 and answer.url.endswith("/bureau/"), answer.url
    return browser


def _csrf(browser: requests.Session, url: str) -> str:
    return CSRF.search(browser.get(url, timeout=10).text).group(1)


PAGES = ("/bureau/", "/bureau/obligations", "/bureau/obligations?state=open", "/bureau/cases", "/bureau/notices",
         "/bureau/compliance?due_from=2024-01-01&due_to=2024-12-31")


def test_a_city_officer_sees_its_counties_on_every_page_and_export_never_chongqing(bureau) -> None:
    _, server, seeded = bureau
    browser = login(server, "ningde")
    seen = ""
    for page in PAGES:
        answer = browser.get(server.address + page, timeout=10)
        assert answer.status_code == 200, page
        seen += answer.text
        for fmt in ("csv", "xlsx"):
            if page != "/bureau/":
                export = browser.get(server.address + page + ("&" if "?" in page else "?") + f"format={fmt}", timeout=10)
                assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
                if fmt == "csv":
                    seen += export.content.decode("utf-8-sig")
    assert all(mark not in seen for mark in CHONGQING_MARKS), [m for m in CHONGQING_MARKS if m in seen]
    assert "蕉城区" in seen and "福安市" in seen and "N-FA-SOON" in seen and "N-JC-OVERDUE" in seen
    for path in (f"/bureau/obligations/{seeded.ob['chongqing_overdue']}", f"/bureau/cases/{seeded.case['chongqing']}", "/bureau/distributors/D500003",
                 "/bureau/distributors/D500003/interview"):
        assert browser.get(server.address + path, timeout=10).status_code == 404, path


def test_a_county_officer_sees_only_its_county(bureau) -> None:
    _, server, seeded = bureau
    browser = login(server, "jiaocheng")
    text = "".join(browser.get(server.address + page, timeout=10).text for page in PAGES)
    text += browser.get(server.address + "/bureau/obligations?format=csv", timeout=10).content.decode("utf-8-sig")
    assert "N-JC-OVERDUE" in text and "N-FA-SOON" not in text and "D350902" not in text
    case = browser.get(f"{server.address}/bureau/cases/{seeded.case['ningde']}", timeout=10).text
    assert "宁德市医院" in case and "福安市医院" not in case  # the city case, its county's hospital only
    assert browser.get(f"{server.address}/bureau/obligations/{seeded.ob['fuan_due_soon']}", timeout=10).status_code == 404
    assert browser.get(f"{server.address}/bureau/cases/{seeded.case['fuan_only']}", timeout=10).status_code == 404


def test_cards_and_chart_points_link_to_the_list_behind_them(bureau) -> None:
    _, server, _ = bureau
    browser = login(server, "ningde")
    overview = browser.get(f"{server.address}/bureau/", timeout=10).text
    card = re.search(r'href="(/bureau/obligations\?state=overdue)"><span class="card-value">(\d+)<', overview)
    assert card and card.group(2) == "1"
    overdue_list = browser.get(server.address + card.group(1), timeout=10).text
    assert "共 1 条" in overdue_list and "N-JC-OVERDUE" in overdue_list
    points = re.findall(r'<a href="(/bureau/obligations\?overdue_at=[^"]+)" class="point"><circle [^>]*><title>[^<]*逾期 (\d+) 项', overview)
    assert len(points) == 13
    href, value = points[-1]
    listed = browser.get(server.address + href.replace("&amp;", "&"), timeout=10).text
    assert f"共 {value} 条" in listed
    bars = re.findall(r'href="(/bureau/compliance\?due_from=2024-10-01&amp;due_to=2024-10-31)"', overview)
    assert bars


def test_export_is_exactly_the_filtered_list_with_formulas_as_text(bureau) -> None:
    _, server, _ = bureau
    browser = login(server, "ningde")
    data = browser.get(f"{server.address}/bureau/obligations?drug=硝酸&format=csv", timeout=10).content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert len(rows) == 2 and dict(zip(rows[0], rows[1]))["生产企业"] == '\'=HYPERLINK("http://x.example","点我")'
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(browser.get(f"{server.address}/bureau/obligations?drug=硝酸&format=xlsx", timeout=10).content))
    column = [c.value for c in book.active[1]].index("生产企业") + 1
    cell = book.active.cell(2, column)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x.example","点我")', "s")


def test_resolving_one_hospital_then_the_case_is_audited_with_the_officer(bureau) -> None:
    app, server, seeded = bureau
    browser = login(server, "ningde")
    url = f"{server.address}/bureau/cases/{seeded.case['ningde']}"
    empty = browser.post(url + "/resolve", data={"csrf": _csrf(browser, url), "note": " "}, timeout=10)
    assert empty.status_code == 422 and "请填写处理说明" in empty.text
    browser.post(url + "/resolve", data={"csrf": _csrf(browser, url), "hospital": "H350981001", "note": "已调拨200支"}, timeout=10)
    page = browser.post(url + "/resolve", data={"csrf": _csrf(browser, url), "note": "全市供应恢复"}, timeout=10)
    assert page.status_code == 200 and "全市供应恢复" in page.text and "已调拨200支" in page.text and "web:ningde" in page.text
    with app.sessions() as session:
        assert session.get(ShortageCase, seeded.case["ningde"]).state == "resolved"
        actors = set(session.scalars(select(AuditEvent.actor).where(AuditEvent.entity == "case", AuditEvent.entity_id == seeded.case["ningde"])))
    assert actors == {"web:ningde"}


def test_a_county_officer_cannot_close_another_countys_hospital(bureau) -> None:
    _, server, seeded = bureau
    browser = login(server, "jiaocheng")
    url = f"{server.address}/bureau/cases/{seeded.case['ningde']}"
    answer = browser.post(url + "/resolve", data={"csrf": _csrf(browser, url), "hospital": "H350981001", "note": "x"}, timeout=10)
    assert answer.status_code == 422 and "H350981001" in answer.text
    browser.post(url + "/resolve", data={"csrf": _csrf(browser, url), "note": "蕉城区已恢复"}, timeout=10)
    page = browser.get(url, timeout=10).text
    assert "蕉城区已恢复" in page and "案件已解决" not in page  # 福安's hospital is still short: the case stays open


def test_a_county_officer_does_not_read_another_countys_closed_part_on_the_city_case(bureau) -> None:
    _, server, seeded = bureau
    city = login(server, "ningde")
    url = f"{server.address}/bureau/cases/{seeded.case['ningde']}"
    city.post(url + "/resolve", data={"csrf": _csrf(city, url), "hospital": "H350981001", "note": "福安已调拨200支"}, timeout=10)
    assert "福安已调拨200支" in city.get(url, timeout=10).text
    page = login(server, "jiaocheng").get(url, timeout=10).text
    assert "宁德市医院" in page and "福安市医院" not in page and "福安已调拨200支" not in page


def test_an_offline_interview_is_recorded_audited_and_in_the_timeline_and_material(bureau) -> None:
    app, server, seeded = bureau
    browser = login(server, "ningde")
    url = f"{server.address}/bureau/distributors/D350901"
    future = browser.post(url + "/actions", data={"csrf": _csrf(browser, url), "kind": "interview", "done_on": "2024-12-01", "note": "x"}, timeout=10)
    assert future.status_code == 422 and "日期不能晚于今天" in future.text
    answer = browser.post(url + "/actions", data={"csrf": _csrf(browser, url), "kind": "interview", "done_on": "2024-10-14",
                                                  "note": "约谈总经理，承诺三日内补报", "obligation_id": str(seeded.ob["jiaocheng_overdue"])}, timeout=10)
    assert answer.status_code == 200 and "线下约谈（2024-10-14）：约谈总经理" in answer.text
    with app.sessions() as session:
        [action] = session.scalars(select(OfficerAction)).all()
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.entity == "officer_action")).all()
    assert (action.actor, event.actor, event.action) == ("web:ningde", "web:ningde", "offline_interview")
    first = browser.get(url + "/interview", timeout=10).text
    again = browser.get(url + "/interview", timeout=10).text
    checksum = re.search(r'id="checksum">([0-9a-f]{64})<', first).group(1)
    assert checksum in again and "约谈总经理" in first and "N-JC-LATE" in first
    assert "<script" not in first.split("</article>")[0]  # printable without script
    with app.sessions() as session:
        printed = session.scalars(select(AuditEvent).where(AuditEvent.action == "interview_material")).all()
    assert {e.detail["checksum"] for e in printed} == {checksum}
    verified = browser.get(f"{server.address}/bureau/materials", params={"checksum": checksum}, timeout=10).text
    assert "校验码有记录" in verified and "web:ningde" in verified and "N-JC-LATE" in verified
    assert "没有这个校验码" in browser.get(f"{server.address}/bureau/materials", params={"checksum": "0" * 64}, timeout=10).text
    # Another region's officer cannot read the kept copy.
    assert "没有这个校验码" in login(server, "cq").get(f"{server.address}/bureau/materials", params={"checksum": checksum}, timeout=10).text


def test_a_county_officer_does_not_read_the_city_officers_offline_action_on_its_obligation(bureau) -> None:
    _, server, seeded = bureau
    city = login(server, "ningde")
    url = f"{server.address}/bureau/obligations/{seeded.ob['jiaocheng_overdue']}"
    form = f"{server.address}/bureau/distributors/D350901"
    city.post(form + "/actions", data={"csrf": _csrf(city, form), "kind": "interview", "done_on": "2024-10-14", "note": "市局约谈记录",
                                       "obligation_id": str(seeded.ob["jiaocheng_overdue"])}, timeout=10)
    assert "市局约谈记录" in city.get(url, timeout=10).text
    county = login(server, "jiaocheng")
    assert "市局约谈记录" not in county.get(form, timeout=10).text  # the distributor's page already kept it to the city
    assert "市局约谈记录" not in county.get(url, timeout=10).text


def test_the_obligation_calendar_marks_the_make_up_working_day(bureau) -> None:
    _, server, seeded = bureau
    browser = login(server, "ningde")
    page = browser.get(f"{server.address}/bureau/obligations/{seeded.ob['jiaocheng_overdue']}", timeout=10).text
    # Received Friday 2024-09-27, due 10-10: September and October are shown, with their 调休 make-up working days
    # (Saturday 09-14, Sunday 09-29, Saturday 10-12) and National Day's weekday holidays.
    assert page.count('<span class="tag">班</span>') == 3
    assert page.count('<span class="tag">休</span>') >= 5
    assert "书面提醒" in page and "orders@nd-pharma.example.com" in page


def test_a_distributor_account_cannot_open_the_dashboard(bureau) -> None:
    app, server, _ = bureau
    user, initial = add_account(app.sessions, name="D350901", role="distributor", party_code="D350901", now=NOW)
    change_password(app.sessions, user, current=initial, new=PASSWORD, now=NOW)
    browser = requests.Session()
    form = browser.get(f"{server.address}/login", timeout=10)
    browser.post(f"{server.address}/login", data={"csrf": CSRF.search(form.text).group(1), "name": "D350901", "password": PASSWORD}, timeout=10)
    assert browser.get(f"{server.address}/bureau/obligations?format=csv", timeout=10).status_code == 403


def test_bad_filter_values_get_one_clear_message(bureau) -> None:
    _, server, _ = bureau
    browser = login(server, "ningde")
    answer = browser.get(f"{server.address}/bureau/obligations?due_from=2024-13-01", timeout=10)
    assert answer.status_code == 422 and "YYYY-MM-DD" in answer.text
    assert browser.get(f"{server.address}/bureau/obligations?region=500103", timeout=10).status_code == 422


@pytest.mark.parametrize("query", ["obligations?overdue_at=9999-12-31T23:59:59-12:00", "cases?open_at=0001-01-01T00:00:00%2B14:00",
                                   # In UTC, but past the end of year 9999 in Beijing time, where the page states it.
                                   "obligations?overdue_at=9999-12-31T23:59:59Z", "cases?open_at=9999-12-31T20:00:00Z"])
def test_an_instant_outside_the_calendar_gets_one_clear_message(bureau, query) -> None:
    _, server, _ = bureau
    answer = login(server, "ningde").get(f"{server.address}/bureau/{query}", timeout=10)
    assert answer.status_code == 422 and "时间" in answer.text and "Traceback" not in answer.text


@pytest.mark.parametrize("path", ["/bureau/obligations", "/bureau/cases", "/bureau/notices", "/bureau/compliance"])
def test_a_page_number_far_past_the_end_is_an_empty_page(bureau, path) -> None:
    _, server, _ = bureau
    answer = login(server, "ningde").get(f"{server.address}{path}?page=99999999999999999999", timeout=10)
    assert answer.status_code == 200 and "Traceback" not in answer.text


def test_add_officer_command(write_config, capsys) -> None:
    from tests.web.conftest import EXAMPLES

    config = write_config({"directory": {name: str(EXAMPLES / f"{name}.csv") for name in ("regions", "contacts", "distributors", "hospitals")}})
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "accounts", "add-officer", "nd-wang", "--region", "350900", "--role", "insurance", "--email", "w@nd.example"]) == 0
    out = capsys.readouterr().out
    assert "宁德市医疗保障局" in out and "初始密码 initial password: " in out
    assert main(["--config", str(config), "accounts", "add-officer", "x", "--region", "999999", "--role", "health"]) == 2
    assert "999999" in capsys.readouterr().err
    assert main(["--config", str(config), "accounts", "add-officer", "y", "--region", "350900", "--role", "health", "--email", "not-mail"]) == 2


def test_every_page_template_and_static_file_ships_in_the_package() -> None:
    import fnmatch
    import tomllib

    repo = Path(__file__).resolve().parents[2]
    package = repo / "src" / "shortage_watch"
    globs = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["shortage_watch"]
    files = [p.relative_to(package).as_posix() for folder in ("web/templates", "web/static") for p in (package / folder).rglob("*") if p.is_file()]
    assert "web/templates/bureau/overview.html" in files
    assert [f for f in files if not any(fnmatch.fnmatchcase(f, g) and f.count("/") == g.count("/") for g in globs)] == []


@pytest.mark.parametrize("path", ["/bureau/obligations?distributor=D350901%00", "/bureau/obligations?drug=%00", "/bureau/notices?manufacturer=%00",
                                  "/bureau/cases?city=%00", "/bureau/distributors/D350901%00"])
def test_a_nul_character_in_a_filter_or_path_is_one_clear_refusal(bureau, path) -> None:
    _, server, _ = bureau
    answer = login(server, "ningde").get(f"{server.address}{path}", timeout=10)
    assert answer.status_code == 422 and "空字符" in answer.text and "Traceback" not in answer.text


def test_an_estimated_deadline_says_what_the_estimate_rests(bureau) -> None:
    # The estimate rests statutory holidays and their usual bridging days (calendar.estimated_arrangement), not
    # weekends alone: an officer reading "weekends only" would take the deadline for an early one.
    from shortage_watch.domain.labels import label
    from shortage_watch.store.tables import Obligation

    app, server, seeded = bureau
    with app.sessions.begin() as session:
        session.get(Obligation, seeded.ob["jiaocheng_overdue"]).calendar_status = "estimated"
    page = login(server, "ningde").get(f"{server.address}/bureau/obligations/{seeded.ob['jiaocheng_overdue']}", timeout=10).text
    assert f"期限依据{label('calendar', 'estimated', 'zh-CN')}计算" in page
    assert "按周末估算" not in page


def _printed_checksum(browser: requests.Session, server: WebServer, code: str) -> str:
    page = browser.get(f"{server.address}/bureau/distributors/{code}/interview", timeout=10)
    assert page.status_code == 200
    return re.search(r'id="checksum">([0-9a-f]{64})<', page.text).group(1)


def _verdict(browser: requests.Session, server: WebServer, checksum: str) -> str:
    page = browser.get(f"{server.address}/bureau/materials", params={"checksum": checksum}, timeout=10)
    assert page.status_code == 200
    return re.search(r'id="verdict">([^<]*)<', page.text).group(1)


def test_a_county_officer_does_not_read_the_city_officers_printed_material(bureau) -> None:
    _, server, _ = bureau
    city, county = login(server, "ningde"), login(server, "jiaocheng")
    citys = _printed_checksum(city, server, "D350901")  # the city's copy: every county's obligations and the city's actions
    assert "没有这个校验码" in _verdict(county, server, citys)
    countys = _printed_checksum(county, server, "D350901")
    assert "校验码有记录" in _verdict(county, server, countys)
    assert "校验码有记录" in _verdict(city, server, countys)  # the city oversees its counties' papers


def test_a_county_officer_does_not_read_another_countys_printed_material(bureau) -> None:
    app, server, _ = bureau
    user, initial = add_account(app.sessions, name="fuan", role="officer", party_code=None, region_code="350981", bureau="insurance", now=NOW)
    change_password(app.sessions, user, current=initial, new=PASSWORD, now=NOW)
    fuans = _printed_checksum(login(server, "fuan"), server, "D350902")
    assert "没有这个校验码" in _verdict(login(server, "jiaocheng"), server, fuans)
    assert "校验码有记录" in _verdict(login(server, "ningde"), server, fuans)


def _refused_action(app: App, server: WebServer, **fields: str) -> tuple[str, str]:
    """ningde posts the offline-action form of D350901 with `fields`: the page (422, nothing stored) and its error."""
    browser = login(server, "ningde")
    url = f"{server.address}/bureau/distributors/D350901"
    answer = browser.post(url + "/actions", data={"csrf": _csrf(browser, url), **fields}, timeout=10)
    assert answer.status_code == 422
    with app.sessions() as session:
        assert session.scalars(select(OfficerAction)).all() == []
    return answer.text, re.search(r'id="action-error"[^>]*>([^<]*)<', answer.text).group(1)


def test_an_offline_action_on_another_distributors_obligation_is_refused(bureau) -> None:
    app, server, seeded = bureau
    # 福安's obligation is D350902's, in the officer's city: crafted into D350901's form.
    _, error = _refused_action(app, server, kind="interview", done_on="2024-10-14", note="约谈", obligation_id=str(seeded.ob["fuan_due_soon"]))
    assert "D350901" in error and "D350902" not in error and " / " in error


def test_an_impossible_date_in_the_offline_form_says_so_and_keeps_what_was_typed(bureau) -> None:
    app, server, seeded = bureau
    page, error = _refused_action(app, server, kind="written_reminder", done_on="2024-02-30", note="电话催报并寄送书面提醒",
                                  obligation_id=str(seeded.ob["jiaocheng_overdue"]))
    assert "日期无效" in error and "invalid date" in error and "2024-02-30" in error and "required" not in error
    form = page[page.index('class="form noprint offline-form"'):]
    assert 'name="done_on" value="2024-02-30"' in form and "电话催报并寄送书面提醒</textarea>" in form
    assert '<option value="written_reminder" selected>' in form
    assert f'name="obligation_id" value="{seeded.ob["jiaocheng_overdue"]}"' in form  # still about the obligation it came from


def _mail_up_the_ladder(app: App, seeded: Seeded) -> None:
    """Mail about 蕉城's overdue obligation and the city case to the county, city and province insurance bureaus."""
    from tests.dashboard.conftest import at

    ladder = (("county_overdue", "insurance_county", "350902", "jc-ybj@county.example"),
              ("interview_recommendation", "insurance_city", "350900", "nd-ybj@city.example"),
              ("province_escalation", "insurance_province", "350000", "fj-ybj@province.example"))
    with app.sessions.begin() as session:
        for number, (template, role, region, email) in enumerate(ladder):
            for subject in ("obligation", "case"):
                ids = {"obligation_id": seeded.ob["jiaocheng_overdue"]} if subject == "obligation" else {"case_id": seeded.case["ningde"]}
                session.add(Alert(dedup_key=f"{subject}:{template}", thread_key="t", level=template, template=template, recipient_role=role,
                                  recipient_region=region, recipient_email=email, context={}, status="sent",
                                  next_attempt_at=at(f"2024-10-1{number + 1}T09:00"), sent_at=at(f"2024-10-1{number + 1}T09:01"),
                                  created_at=at(f"2024-10-1{number + 1}T09:00"), **ids))


def test_a_county_officer_reads_only_the_mail_addressed_to_its_county_and_to_the_distributor(bureau) -> None:
    app, server, seeded = bureau
    _mail_up_the_ladder(app, seeded)
    pages = (f"/bureau/obligations/{seeded.ob['jiaocheng_overdue']}", f"/bureau/cases/{seeded.case['ningde']}")
    county = login(server, "jiaocheng")
    seen = {path: county.get(server.address + path, timeout=10).text for path in pages}
    assert "jc-ybj@county.example" in seen[pages[0]] and "jc-ybj@county.example" in seen[pages[1]]
    assert "orders@nd-pharma.example.com" in seen[pages[0]]  # the written reminder to the distributor
    for text in seen.values():
        assert "nd-ybj@city.example" not in text and "interview_recommendation" not in text
        assert "fj-ybj@province.example" not in text and "province_escalation" not in text
    distributor = county.get(f"{server.address}/bureau/distributors/D350901", timeout=10).text
    assert re.search(r"约谈建议（系统发出）</dt><dd>0<", distributor)
    assert "nd-ybj@city.example" not in county.get(f"{server.address}/bureau/distributors/D350901/interview", timeout=10).text
    city = login(server, "ningde")
    for path in pages:
        text = city.get(server.address + path, timeout=10).text
        assert "jc-ybj@county.example" in text and "nd-ybj@city.example" in text and "fj-ybj@province.example" not in text


def test_the_distributor_page_shows_no_error_text_taken_from_its_address(bureau) -> None:
    _, server, _ = bureau
    lure = "账户异常，请致电 400-000-0000 核实"
    page = login(server, "ningde").get(f"{server.address}/bureau/distributors/D350901", params={"error": lure}, timeout=10)
    assert page.status_code == 200 and lure not in page.text and 'id="action-error"' not in page.text


def test_the_timeline_names_each_mail_and_its_state_in_words(bureau) -> None:
    from tests.dashboard.conftest import at

    app, server, seeded = bureau
    with app.sessions.begin() as session:
        for status in ("held", "digest", "inhibited"):
            session.add(Alert(dedup_key=f"O:{status}", obligation_id=seeded.ob["jiaocheng_overdue"], thread_key="t", level="overdue_alert",
                              template="overdue_alert", recipient_role="insurance_county", recipient_region="350902", recipient_email=f"{status}@county.example",
                              context={}, status=status, next_attempt_at=at("2024-10-11T09:00"), created_at=at("2024-10-11T09:00")))
    page = login(server, "jiaocheng").get(f"{server.address}/bureau/obligations/{seeded.ob['jiaocheng_overdue']}", timeout=10).text
    mail = re.findall(r'<li class="mail">.*?<span class="what">([^<]*)</span>', page)
    assert "邮件 书面提醒 → orders@nd-pharma.example.com：已发送" in mail
    assert len(mail) == 4 and all(re.search(r"[a-z]{3,}", m.split("→")[0] + m.split("：")[-1]) is None for m in mail), mail


def test_a_hospital_that_reports_again_after_its_part_was_closed_shows_open_as_the_ledger_counts_it(bureau) -> None:
    # The ledger reopens a closed part when the hospital reports again after the closure (domain/cases.hospital_parts):
    # the case page must not keep saying 已关闭 with no way to close it again.
    app, server, seeded = bureau
    city = login(server, "ningde")
    url = f"{server.address}/bureau/cases/{seeded.case['ningde']}"
    city.post(url + "/resolve", data={"csrf": _csrf(city, url), "hospital": "H350981001", "note": "福安已调拨200支"}, timeout=10)
    reopen_form = 'name="hospital" value="H350981001"'
    assert reopen_form not in city.get(url, timeout=10).text
    with app.sessions.begin() as session:
        first = session.scalars(select(ShortageReport).where(ShortageReport.case_id == seeded.case["ningde"],
                                                             ShortageReport.hospital_code == "H350981001")).first()
        again = NOW + timedelta(hours=1)
        session.add(ShortageReport(**{c.key: getattr(first, c.key) for c in ShortageReport.__table__.c if c.key != "id"}
                                   | {"report_id": "S-AGAIN", "supply_status": "severe", "reported_on": again.date(),
                                      "received_at": again, "updated_at": again}))
    assert reopen_form in city.get(url, timeout=10).text
