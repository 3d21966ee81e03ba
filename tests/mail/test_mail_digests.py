"""Daily digests and monthly summaries: who gets one, when, what it lists, and the XLSX."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from shortage_watch.services.deliver import deliver_due
from shortage_watch.mail.workbook import monthly_workbook
from shortage_watch.services.digests import send_daily_digests, send_monthly_summaries
from shortage_watch.store.tables import Alert, Obligation, ShortageCase, ShortageReport, StoppageNotice

from .conftest import add_alerts

SH = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


def write_directory(folder: Path) -> dict[str, str]:
    files = {
        "regions": "code,name,parent_code,level\n350000,福建省,,province\n350900,宁德市,350000,city\n350902,蕉城区,350900,county\n"
                   "350921,霞浦县,350900,county\n500000,重庆市,,province\n500112,渝北区,500000,county\n",
        "contacts": "region_code,role,email,name,delivery,language\n"
                    "350900,insurance,nd-ybj@example.gov.cn,宁德市医疗保障局,digest,zh-CN\n"
                    "350900,health,nd-wjw@example.gov.cn,宁德市卫生健康委员会,single,\n"
                    "350902,insurance,jc-ybj@example.gov.cn,蕉城区医疗保障局,single,\n"
                    "350000,insurance,fj-ybj@example.gov.cn,福建省医疗保障局,single,\n"
                    "500000,insurance,cq-ybj@example.gov.cn,重庆市医疗保障局,digest,en\n",
        "distributors": "code,name,region_code,email\nD1,宁德市华康医药有限公司,350902,d1@example.com\nD2,霞浦县康宁医药有限公司,350921,d2@example.com\n"
                        "D9,重庆医药配送有限公司,500112,d9@example.com\n",
        "hospitals": "code,name,region_code,email\nH1,宁德市医院,350902,h1@example.com\nH2,霞浦县医院,350921,h2@example.com\n",
    }
    paths = {}
    for name, text in files.items():
        path = folder / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths[name] = str(path)
    return paths


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(directory=write_directory(tmp_path))


def notice(session, notice_id, distributor, product, *, notified_on, received_at, region=None, name="注射用头孢曲松钠"):
    row = StoppageNotice(notice_id=notice_id, distributor_code=distributor, manufacturer="华北制药股份有限公司", product_code=product,
                         product_name=name, specification="1.0g/支", kind="stoppage", notified_on=notified_on, region_code=region,
                         source="test", received_at=received_at, updated_at=received_at)
    session.add(row)
    session.flush()
    return row


def obligation(session, n, *, party, region, state, due_at, fulfilled_at=None, late=None, product="P1"):
    row = Obligation(kind="report", subject_key=f"{n.notice_id}:{party}" if n else f"x:{party}:{due_at}", party_code=party, region_code=region,
                     notice_pk=n.id if n else None, product_code=product, priority=False, received_on=due_at.date() - dt.timedelta(days=7),
                     due_on=due_at.astimezone(SH).date(), due_at=due_at, calendar_status="official", state=state, level=0, policy={},
                     next_action_at=None, fulfilled_at=fulfilled_at, late_working_days=late, opened_at=due_at - dt.timedelta(days=7),
                     updated_at=fulfilled_at or due_at)  # as the ledger writes it: last changed when its report came
    session.add(row)
    session.flush()
    return row


def ledger(app):
    """A small Ningde ledger around 10-11 October 2024, and one Chongqing notice."""
    with app.sessions.begin() as s:
        n1 = notice(s, "N1", "D1", "P1", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 10, 15, 0))
        o1 = obligation(s, n1, party="D1", region="350902", state="open", due_at=at(2024, 10, 16, 23, 59, 59))
        n2 = notice(s, "N2", "D2", "P2", notified_on=dt.date(2024, 9, 20), received_at=at(2024, 9, 20, 9, 0), name="硝酸甘油片")
        o2 = obligation(s, n2, party="D2", region="350921", state="overdue", due_at=at(2024, 9, 27, 23, 59, 59), product="P2")
        n3 = notice(s, "N3", "D1", "P3", notified_on=dt.date(2024, 9, 23), received_at=at(2024, 9, 23, 9, 0), name="=HYPERLINK(\"http://x\")")
        o3 = obligation(s, n3, party="D1", region="350902", state="fulfilled_late", due_at=at(2024, 9, 30, 23, 59, 59),
                        fulfilled_at=at(2024, 10, 10, 16, 0), late=2, product="P3")
        notice(s, "N9", "D9", "P9", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 10, 11, 0))
        case = ShortageCase(product_code="P1", product_name="注射用头孢曲松钠", city_code="350900", state="regional", opened_at=at(2024, 9, 25, 10, 0),
                            updated_at=at(2024, 9, 25, 10, 0), level=0)
        s.add(case)
        s.flush()
        for code, region, demand in (("H1", "350902", 1200.0), ("H2", "350921", 300.0)):
            s.add(ShortageReport(report_id=f"R-{code}", hospital_code=code, region_code=region, product_code="P1", product_name="注射用头孢曲松钠",
                                 reported_on=dt.date(2024, 9, 26), supply_status="short", stock_days=3.0, monthly_demand=demand, demand_unit="支",
                                 substitute_in_use="头孢呋辛钠", cause="supply", case_id=case.id, source="test",
                                 received_at=at(2024, 9, 26, 9, 0), updated_at=at(2024, 9, 26, 9, 0)))
        return {"o1": o1.id, "o2": o2.id, "o3": o3.id, "case": case.id}


def outbox(app, template):
    with app.sessions() as s:
        return list(s.scalars(select(Alert).where(Alert.template == template).order_by(Alert.recipient_email)))


def test_daily_digest_lists_the_region_and_below_with_case_numbers(app, tmp_path):
    ids = ledger(app)
    waiting = add_alerts(app, 2, template="overdue_alert", role="insurance", status="digest", email_for=lambda n: "nd-ybj@example.gov.cn",
                         due=at(2024, 10, 10, 12, 0))
    now = at(2024, 10, 11, 8, 5)  # Friday, after the 08:00 digest time

    assert send_daily_digests(app.digest_deps(), now) == 2  # Ningde's and Chongqing's digest contacts
    assert send_daily_digests(app.digest_deps(), now + dt.timedelta(hours=3)) == 0  # at most one per working day

    chongqing, digest = outbox(app, "digest")
    assert chongqing.language == "en" and [s["region_name"] for s in chongqing.context["new_stoppages"]] == ["渝北区"]
    assert digest.dedup_key == "digest:350900:insurance:nd-ybj@example.gov.cn:2024-10-11" and digest.status == "pending"
    c = digest.context
    assert [s["case_number"] for s in c["new_stoppages"]] == [f"SW-O-{ids['o1']:06d}"]  # not Chongqing's N9
    assert [o["case_number"] for o in c["overdue"]] == [f"SW-O-{ids['o2']:06d}"]
    assert [o["case_number"] for o in c["late_reports"]] == [f"SW-O-{ids['o3']:06d}"]
    assert [o["case_number"] for o in c["open_shortages"]] == [f"SW-C-{ids['case']:06d}"]
    assert c["covered_alerts"] == 2
    rows = {r.id: r for r in outbox(app, "overdue_alert")}
    assert {rows[i].status for i in waiting} == {"digested"}

    # Sent by the ordinary sender once working hours begin (08:30).
    assert deliver_due(app.deliver_deps(), now).deferred == 2
    assert deliver_due(app.deliver_deps(), at(2024, 10, 11, 8, 30)).sent == 2
    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in (tmp_path / "mail").glob("*.eml")]
    msg = next(m for m in messages if m["To"] == "nd-ybj@example.gov.cn")
    assert next(m for m in messages if m["To"] == "cq-ybj@example.gov.cn")["Subject"].startswith("Daily digest Friday 11 October 2024")
    assert msg["Subject"].startswith("每日汇总 2024年10月11日（星期五）：宁德市")
    html = msg.get_body(("html",)).get_content()
    assert f"SW-O-{ids['o2']:06d}" in html and f"SW-C-{ids['case']:06d}" in html


def test_county_digest_sees_its_county_only(make_app, tmp_path):
    paths = write_directory(tmp_path)
    Path(paths["contacts"]).write_text("region_code,role,email,name,delivery\n350921,insurance,xp@example.gov.cn,霞浦县医疗保障局,digest\n", encoding="utf-8")
    app = make_app(directory=paths)
    ids = ledger(app)
    assert send_daily_digests(app.digest_deps(), at(2024, 10, 11, 9, 0)) == 1
    [digest] = outbox(app, "digest")
    assert digest.context["new_stoppages"] == [] and digest.context["late_reports"] == []
    assert [o["case_number"] for o in digest.context["overdue"]] == [f"SW-O-{ids['o2']:06d}"]
    assert [o["case_number"] for o in digest.context["open_shortages"]] == [f"SW-C-{ids['case']:06d}"]  # H2 is in 霞浦县


@pytest.mark.parametrize("now", [at(2024, 10, 5, 9, 0), at(2024, 10, 11, 7, 59)], ids=["national-day", "before-digest-time"])
def test_no_digest_on_a_holiday_or_before_its_time(app, now):
    ledger(app)
    assert send_daily_digests(app.digest_deps(), now) == 0


def test_monthly_summary_on_the_first_working_day_after_national_day(app, tmp_path):
    ids = ledger(app)
    assert send_monthly_summaries(app.digest_deps(), at(2024, 10, 7, 10, 0)) == 0  # still the holiday
    assert send_monthly_summaries(app.digest_deps(), at(2024, 10, 8, 8, 59)) == 0  # before monthly_time
    assert send_monthly_summaries(app.digest_deps(), at(2024, 10, 8, 9, 5)) == 4  # every insurance bureau address
    assert send_monthly_summaries(app.digest_deps(), at(2024, 10, 9, 9, 5)) == 0  # once per month

    ningde = next(r for r in outbox(app, "monthly_summary") if r.recipient_email == "nd-ybj@example.gov.cn")
    c = ningde.context
    assert ningde.dedup_key == "monthly:350900:nd-ybj@example.gov.cn:2024-09" and c["month"] == "2024-09"
    assert sorted(s["hospital"] for s in c["shortages"]) == ["宁德市医院（H1）", "霞浦县医院（H2）"]  # hospitals by name, codes in brackets
    assert {s["notice_id"] for s in c["stoppages"]} == {"N2", "N3"}  # notified in September; N1 is October's
    by_party = {r["distributor_code"]: r for r in c["compliance"]}
    assert (by_party["D2"]["overdue"], by_party["D1"]["late"]) == (1, 1)
    county = next(r for r in outbox(app, "monthly_summary") if r.recipient_email == "jc-ybj@example.gov.cn")
    assert [s["hospital"] for s in county.context["shortages"]] == ["宁德市医院（H1）"]

    assert deliver_due(app.deliver_deps(), at(2024, 10, 8, 9, 30)).sent == 4
    eml = next(p for p in (tmp_path / "mail").glob("*.eml")
               if email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"] == "nd-ybj@example.gov.cn")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "2024年9月药品短缺情况月度汇总：宁德市"
    assert "医疗机构上报 2 条" in msg.get_body(("plain",)).get_content()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "宁德市2024年9月药品短缺月度汇总.xlsx"
    book = load_workbook(io.BytesIO(attachment.get_content()))
    assert book.sheetnames == ["短缺清单及医疗机构需求", "停产断供通知", "配送企业履约情况"]
    sheet = book["短缺清单及医疗机构需求"]
    assert [c.value for c in sheet[1]][:4] == ["案件编号", "药品编码", "药品名称", "医疗机构"]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["C"].width >= 2 * len("注射用头孢曲松钠")
    stoppage_names = [row[3] for row in book["停产断供通知"].iter_rows(min_row=2, values_only=True)]
    assert '=HYPERLINK("http://x")' in stoppage_names
    assert all(cell.data_type == "s" for cell in book["停产断供通知"]["D"][1:])  # text, never a formula


def test_workbook_of_an_empty_month_has_headers_only():
    from shortage_watch.mail.samples import sample_monthly_context

    context = {**sample_monthly_context(), "shortages": [], "stoppages": [], "compliance": []}
    book = load_workbook(io.BytesIO(monthly_workbook(context)))
    assert [s.max_row for s in book.worksheets] == [1, 1, 1]


def test_monthly_summary_is_not_sent_long_after_the_month_began(app):
    ledger(app)
    # A fresh install on 25 October: September's summary is three weeks late; skip it.
    assert send_monthly_summaries(app.digest_deps(), at(2024, 10, 25, 10, 0)) == 0
    # Down on the 8th, back on the 10th (2 working days later): it catches up.
    assert send_monthly_summaries(app.digest_deps(), at(2024, 10, 10, 10, 0)) == 4


def test_digest_counts_a_deadline_missed_earlier_today_as_one_working_day_overdue(app):
    # A 17:30 cut-off missed today and a digest written after it (the hourly retry): the
    # mails say "overdue by 1 working day" for this; the digest must not say 0.
    with app.sessions.begin() as s:
        n = notice(s, "N5", "D1", "P5", notified_on=dt.date(2024, 10, 8), received_at=at(2024, 10, 8, 9, 0))
        ob = obligation(s, n, party="D1", region="350902", state="open", due_at=at(2024, 10, 11, 17, 30), product="P5")
    assert send_daily_digests(app.digest_deps(), at(2024, 10, 11, 18, 0)) >= 1
    [digest] = [a for a in outbox(app, "digest") if a.recipient_email == "nd-ybj@example.gov.cn"]
    [line] = [o for o in digest.context["overdue"] if o["case_number"] == f"SW-O-{ob.id:06d}"]
    assert line["overdue_working_days"] == 1


def test_an_address_listed_for_two_regions_gets_each_regions_digest(make_app, tmp_path):
    paths = write_directory(tmp_path)
    contacts = Path(paths["contacts"])
    # The same officer also takes Chongqing's digest.
    contacts.write_text(contacts.read_text(encoding="utf-8").replace("cq-ybj@example.gov.cn", "nd-ybj@example.gov.cn"),
                        encoding="utf-8")
    app = make_app(directory=paths)
    ledger(app)
    now = at(2024, 10, 11, 8, 5)

    assert send_daily_digests(app.digest_deps(), now) == 2
    digests = outbox(app, "digest")
    assert {d.recipient_email for d in digests} == {"nd-ybj@example.gov.cn"}
    assert sorted(d.dedup_key.split(":")[1] for d in digests) == ["350900", "500000"]


def ningde_digests(app):
    return [d for d in outbox(app, "digest") if d.recipient_email == "nd-ybj@example.gov.cn"]


def listed_notices(digest) -> list[str]:
    return [s["product"].split(" ")[0] for s in digest.context["new_stoppages"]]


def test_a_digest_written_late_is_not_listed_again_the_next_day(app):
    # A replica restarted at 11:00 writes Thursday's digest then; Friday's lists what came after it,
    # not 08:00-11:00 again.
    with app.sessions.begin() as s:
        notice(s, "N1", "D1", "P1", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 10, 9, 0), name="上午到的药")
        notice(s, "N2", "D1", "P2", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 10, 15, 0), name="下午到的药")
    written_late = at(2024, 10, 10, 11, 0)
    assert send_daily_digests(app.digest_deps(), written_late) == 1
    assert send_daily_digests(app.digest_deps(), at(2024, 10, 11, 8, 5)) == 1

    thursday, friday = sorted(ningde_digests(app), key=lambda d: d.dedup_key)
    assert listed_notices(thursday) == ["上午到的药"]
    assert listed_notices(friday) == ["下午到的药"]
    assert dt.datetime.fromisoformat(friday.context["since"]) == written_late


def test_a_day_without_any_digest_loses_no_notice(app):
    # Thursday's digest was written; on Friday every replica was down; Saturday (a make-up working
    # day) lists what arrived after Thursday's digest, Friday's window included.
    with app.sessions.begin() as s:
        notice(s, "N1", "D1", "P1", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 9, 15, 0), name="周三的药")
        notice(s, "N2", "D1", "P2", notified_on=dt.date(2024, 10, 10), received_at=at(2024, 10, 10, 12, 0), name="周四的药")
        notice(s, "N3", "D1", "P3", notified_on=dt.date(2024, 10, 11), received_at=at(2024, 10, 11, 12, 0), name="周五的药")
    thursday_digest = at(2024, 10, 10, 8, 5)
    assert send_daily_digests(app.digest_deps(), thursday_digest) == 1
    assert send_daily_digests(app.digest_deps(), at(2024, 10, 12, 8, 5)) == 1

    thursday, saturday = sorted(ningde_digests(app), key=lambda d: d.dedup_key)
    assert listed_notices(thursday) == ["周三的药"]
    assert listed_notices(saturday) == ["周四的药", "周五的药"]
    assert dt.datetime.fromisoformat(saturday.context["since"]) == thursday_digest


def test_a_digest_with_no_earlier_one_lists_since_the_previous_working_days_digest_time(app):
    with app.sessions.begin() as s:
        notice(s, "N1", "D1", "P1", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 10, 7, 0), name="太早的药")
        notice(s, "N2", "D1", "P2", notified_on=dt.date(2024, 10, 9), received_at=at(2024, 10, 10, 9, 0), name="窗口内的药")
    assert send_daily_digests(app.digest_deps(), at(2024, 10, 11, 8, 5)) == 1
    [friday] = ningde_digests(app)
    assert listed_notices(friday) == ["窗口内的药"]
    assert dt.datetime.fromisoformat(friday.context["since"]) == at(2024, 10, 10, 8, 0)


def test_one_mailbox_taking_two_bureaus_digests_gets_each_bureaus_alerts_in_its_own(make_app, tmp_path):
    paths = write_directory(tmp_path)
    contacts = Path(paths["contacts"])
    contacts.write_text(contacts.read_text(encoding="utf-8").replace("cq-ybj@example.gov.cn", "nd-ybj@example.gov.cn"), encoding="utf-8")
    app = make_app(directory=paths)
    ledger(app)
    shared = lambda n: "nd-ybj@example.gov.cn"
    ningde = add_alerts(app, 2, template="overdue_alert", role="insurance", status="digest", email_for=shared, due=at(2024, 10, 10, 12, 0))
    chongqing = add_alerts(app, 1, template="overdue_alert", role="insurance", status="digest", email_for=shared, due=at(2024, 10, 10, 12, 0))
    with app.sessions.begin() as s:
        for alert_id, region in [(i, "350900") for i in ningde] + [(i, "500000") for i in chongqing]:
            s.get(Alert, alert_id).recipient_region = region
    assert send_daily_digests(app.digest_deps(), at(2024, 10, 11, 8, 5)) == 2
    covered = {d.dedup_key.split(":")[1]: d.context["covered_alerts"] for d in outbox(app, "digest")}
    assert covered == {"350900": 2, "500000": 1}
