"""Mail facts are precise (real ledger state, SQLite and PostgreSQL): make-up working days, the kind of a
notice, the urgent reminder's words, the first report date, hospitals by name and code, how to report."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from shortage_watch.domain.labels import CHOICE_FIELDS, LABELS, choice_values
from shortage_watch.domain.records import validate_record
from shortage_watch.mail.render import Renderer, report_channels_for
from shortage_watch.services.escalate import sweep
from tests.ledger.conftest import alerts, at, store_notice, store_shortage

RENDERER = Renderer()


def mail_of(app, template: str, lang: str = "zh-CN", renderer: Renderer = RENDERER):
    alert = next(a for a in alerts(app) if a.template == template)
    return renderer.render(alert.template, alert.context, lang)


def test_a_deadline_on_a_makeup_saturday_says_so(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-30T10:00"), notified_on=date(2024, 9, 30))  # due Saturday 2024-10-12, a make-up working day
    receipt = mail_of(app, "receipt")
    assert "2024年10月12日（星期六，调休上班日）24:00前" in receipt.subject
    assert "Saturday 12 October 2024 (a make-up working day)" in mail_of(app, "receipt", "en").text
    assert "2024年9月30日（星期一）" in receipt.text  # an ordinary weekday says nothing more


@pytest.mark.parametrize(("kind", "word"), [("reduction", "减产"), ("interruption", "断供")])
def test_reduction_and_interruption_notices_are_not_called_stoppages(db_url, make_app, kind, word):
    app = make_app(db_url)
    store_notice(app, at("2024-10-25T10:00"), kind=kind, reason="产能调整")  # registered 11 working days late
    for template in ("written_reminder", "overdue_alert", "province_escalation"):
        mail = mail_of(app, template)
        assert "停产" not in mail.subject + mail.text.replace("停产或断供通知后", "").replace("停产断供", ""), template
        assert word in mail.subject
    assert f"{word}原因：产能调整" in mail_of(app, "written_reminder").text


def test_an_urgent_reminder_is_not_a_gentle_one(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"), priority_class="winning_bid")  # the priority ladder: urgent reminder
    sweep(app.sweep_deps(), at("2024-10-08T00:00"))
    subject = mail_of(app, "reminder").subject
    assert subject.startswith("【紧急】到期提醒：") and "温馨提醒" not in subject


def test_cases_say_when_hospitals_first_reported_and_name_them_with_codes(db_url, make_app):
    app = make_app(db_url)
    store_shortage(app, at("2024-10-08T09:00"), report_id="S-1", hospital_code="H1", reported_on=date(2024, 10, 5), distributor_code="D1")
    text = mail_of(app, "explanation_request").text
    assert "首次上报：2024年10月5日（星期六）" in text  # the hospital's date, not the day it reached the ledger
    assert "宁德市第1医院（H1）" in text
    assert "宁德市第1医院 (H1)" in mail_of(app, "explanation_request", "en").text


def test_a_reminder_tells_the_distributor_how_to_report_and_never_asks_for_a_reply_nobody_reads(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-10-14T10:00"))
    bare = mail_of(app, "written_reminder")
    assert "请按所在地医疗保障局规定的方式提交书面报告" in bare.text and "请勿直接回复本邮件" in bare.text
    assert "回复本邮件，" not in bare.text and "回复至" not in bare.text
    channels = report_channels_for(reply_to="baogao@ybj.example.gov.cn", inbox="sftp://upload.ybj.example.gov.cn/inbox/",
                                   portal_url="https://sw.ybj.example.gov.cn/")
    told = mail_of(app, "written_reminder", renderer=Renderer(reply_to="baogao@ybj.example.gov.cn", report_channels=channels)).text
    assert "登录 https://sw.ybj.example.gov.cn/ 在线填报" in told
    assert "上传至 sftp://upload.ybj.example.gov.cn/inbox/" in told
    assert "将书面报告发送至 baogao@ybj.example.gov.cn" in told
    assert "请勿直接回复本邮件" not in told and "如有疑问，请回复至 baogao@ybj.example.gov.cn" in told


@pytest.mark.parametrize("field", sorted(CHOICE_FIELDS))
def test_every_label_a_mail_shows_is_accepted_as_input(field):
    group = CHOICE_FIELDS[field]
    base = {"notice_id": "TZ-1", "manufacturer": "某某制药", "product_code": "XJ1", "product_name": "阿莫西林胶囊",
            "kind": "stoppage", "distributor_code": "D1", "notified_on": "2024-09-27"}
    kind = "stoppage_notice"
    if field in ("supply_status", "cause"):
        kind = "shortage_report"
        base = {"report_id": "S-1", "hospital_code": "H1", "product_code": "XJ1", "product_name": "阿莫西林胶囊",
                "reported_on": "2024-09-27", "supply_status": "short"}
    now = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
    for value in choice_values(group):
        for language in LABELS[group]:
            shown = LABELS[group][language][value]
            record, errors = validate_record(kind, {**base, field: shown}, row=2, now=now, tz=ZoneInfo("Asia/Shanghai"))
            assert errors == [] and getattr(record, field) == value, (shown, errors)
