"""Every template rendered from real ledger state, never from preview samples: no `None`, no empty fact, no `{{`.

A story on a real database (SQLite and PostgreSQL) reaches every template: a notice walked up the
whole ladder, a priority notice reported late, a report for a notice never seen, a notice reaching
the ledger long after its deadline, an unexplained shortage walked up the explanation ladder, a
possible false shortage, a regional shortage escalated, the daily digest and the monthly summary, and
a deadline the published 2027 arrangement moves.
Each outbox row is rendered in Chinese and English (subject, text, HTML). `make demo`'s mail too.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from shortage_watch.cli import main
from shortage_watch.daemon import Daemon
from shortage_watch.mail.names import ALERT_TEMPLATES, LANGUAGES
from shortage_watch.mail.render import Renderer
from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.digests import send_daily_digests, send_monthly_summaries
from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Alert
from tests.ledger.conftest import POLICY, SHANGHAI, at, store_notice, store_report, store_shortage
from tests.ledger.test_calendar_redating import publish_2027

RENDERER = Renderer(reply_to="bureau@example.org")
# A fact that rendered as nothing: a label followed by no value, a count with no number, empty brackets or quotes.
EMPTY_FACT = re.compile(r"(?m)^[^\n：]{1,16}：\n(?!\n)|(?<![0-9])个工作日|（）|“”|\(\)")


def problems(where: str, text: str) -> list[str]:
    found = [f"{where}: {bad!r}" for bad in ("None", "{{", "}}", "{%", "%}") if bad in text]
    found += [f"{where}: empty fact {m.group(0)!r}" for m in EMPTY_FACT.finditer(text)]
    return found


def play_story(app) -> None:
    """Ledger time walks from the Friday before National Day 2024 to the first working day of November."""
    store_notice(app, at("2024-09-27T10:00"))  # D1, walks the whole ladder
    store_notice(app, at("2024-09-27T10:00"), notice_id="N-PRIO", distributor_code="D2", distributor_name="万州医药物流",
                 product_code="XA02", product_name="阿莫西林胶囊", region_code="500101", priority_class="winning_bid", kind="interruption")
    store_report(app, at("2024-10-09T15:00"), report_id="R-UNSEEN", notice_id=None, manufacturer="某某制药", product_code="XA09",
                 product_name="葡萄糖酸钙注射液", kind="reduction", notified_on=date(2024, 10, 8))
    day = date(2024, 10, 8)
    while day <= date(2024, 11, 1):
        if app.calendar.is_working_day(day):
            sweep(app.sweep_deps(), at(f"{day}T00:00"))
            if day == date(2024, 10, 8):
                store_shortage(app, at("2024-10-08T09:00"), report_id="S-1", hospital_code="H1", distributor_code="D1")
                store_shortage(app, at("2024-10-08T09:05"), report_id="S-2", hospital_code="H2", hospital_name="宁德市第2医院",
                               region_code="350981", cause="procurement")
                store_shortage(app, at("2024-10-08T09:10"), report_id="S-3", hospital_code="H3", hospital_name="宁德市第3医院",
                               stock_days=3.0, monthly_demand=120.0, demand_unit="盒", substitute_in_use="单硝酸异山梨酯片")
                store_shortage(app, at("2024-10-08T09:15"), report_id="S-4", hospital_code="H5", hospital_name="宁德市第5医院",
                               supply_status="severe")
            if day == date(2024, 10, 12):
                store_report(app, at("2024-10-12T10:00"), report_id="R-PRIO", distributor_code="D2", notice_id="N-PRIO")
            if day == date(2024, 10, 21):
                store_notice(app, at("2024-10-21T10:00"), notice_id="N-LATE", product_code="XA03", product_name="注射用青霉素钠",
                             notified_on=date(2024, 9, 20))
            send_daily_digests(app.digest_deps(), at(f"{day}T08:00"))
            deliver_due(app.deliver_deps(), at(f"{day}T09:00"))
        day += timedelta(days=1)
    send_monthly_summaries(app.digest_deps(), at("2024-11-01T09:00"))
    # Received while 2027 is estimated; the year's arrangement, published, moves its deadline earlier.
    daemon = Daemon(app)
    store_notice(app, at("2027-01-29T10:00"), notice_id="N-2027", product_code="XA04", product_name="硝酸甘油片",
                 notified_on=date(2027, 1, 29))
    publish_2027(app, daemon)
    sweep(app.sweep_deps(), at("2027-01-29T11:00"))


def test_every_template_renders_true_facts_from_real_ledger_state(db_url, make_app):
    app = make_app(db_url)
    play_story(app)
    with app.sessions() as session:
        rows = session.scalars(select(Alert).order_by(Alert.id)).all()
    assert {r.template for r in rows} >= set(ALERT_TEMPLATES) | {"digest", "monthly_summary"}
    found: list[str] = []
    for row in rows:
        for lang in LANGUAGES:
            mail = RENDERER.render(row.template, row.context, lang)
            where = f"{row.dedup_key} [{lang}]"
            found += problems(where + " subject", mail.subject) + problems(where + " text", mail.text) + problems(where + " html", mail.html)
    assert found == [], "\n".join(found)
    escalation = next(r for r in rows if r.template == "regional_escalation")
    # Regional on Tuesday 10-08, escalated at the start of 10-22: ten whole working days (10-12 a make-up Saturday).
    assert "自2024年10月8日（星期二）09:15认定以来，已10个工作日未解决" in RENDERER.render(escalation.template, escalation.context).text


def test_the_demo_mails_no_none_and_no_empty_fact(write_config, tmp_path: Path, capsys):
    config = write_config({"escalation": {"policy": str(POLICY)}})
    mail_dir = tmp_path / "demo-mail"
    assert main(["--config", str(config), "demo", "--mail-dir", str(mail_dir)]) == 0
    capsys.readouterr()
    found: list[str] = []
    mails = sorted(mail_dir.glob("*.eml"))
    assert mails
    for path in mails:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found += problems(f"{path.name} subject", str(message["Subject"]))
        for part in ("plain", "html"):
            found += problems(f"{path.name} {part}", message.get_body((part,)).get_content())
    assert found == [], "\n".join(found)


def test_the_checker_catches_what_the_regional_escalation_said_before():
    assert problems("x", "逐级上报：宁德市硝酸甘油片区域性短缺已None个工作日未解决")
    assert problems("x", "已个工作日未解决") and problems("x", "药品名称：\n生产企业：某某") and problems("x", "{{ x }}")
    assert problems("x", "蕉城区医疗保障局：\n\n正文") == []
    assert SHANGHAI  # the ledger conftest's zone, shared
