"""Grouped mail (SQLite and PostgreSQL, real SMTP server): alerts due for one recipient with the same
template and urgency go as one message listing every item; each item keeps its own row and state."""

from __future__ import annotations

import datetime as dt
import io
import re

from openpyxl import load_workbook

from shortage_watch.domain.grouping import group_message_key
from shortage_watch.services.deliver import deliver_due

from .conftest import WORKING_NOW, add_alerts, alert_rows

CASE = re.compile(r"SW-[OC]-\d{6}")
LATER = WORKING_NOW + dt.timedelta(seconds=60)  # past a bureau's group wait


def body_cases(message) -> list[str]:
    return CASE.findall(message.get_body(("plain",)).get_content())


def test_one_message_per_recipient_template_and_urgency_listing_every_item(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    county = add_alerts(app, 5, template="overdue_alert", role="insurance", urgent=True, email_for=lambda n: "ybj@county.example")
    city = add_alerts(app, 2, template="overdue_alert", role="insurance", urgent=True, email_for=lambda n: "ybj@city.example")
    other = add_alerts(app, 1, template="interview_recommendation", role="insurance", urgent=True, email_for=lambda n: "ybj@city.example")

    assert deliver_due(app.deliver_deps(), LATER).sent == 8
    received = {(r.rcpt_tos[0], r.message["Subject"]): r.message for r in smtp_sink.handler.received}
    assert len(received) == 3
    rows = alert_rows(app)
    grouped = received[("ybj@county.example", "【紧急】逾期预警：共5项")]
    assert sorted(body_cases(grouped)) == sorted(rows[i].context["case_number"] for i in county)
    assert {rows[i].message_id for i in county} == {grouped["Message-ID"]}  # every item sent, by this message
    assert grouped["In-Reply-To"].startswith("<sw.thread.") and "X-Shortage-Watch-Case" not in grouped
    assert {rows[i].status for i in county + city + other} == {"sent"}
    # The single interview recommendation stays the one-item mail it always was.
    single = next(m for (to, subject), m in received.items() if to == "ybj@city.example" and "共" not in subject)
    assert single["X-Shortage-Watch-Case"] == rows[other[0]].context["case_number"]


def test_the_same_items_resent_keep_the_grouped_message_id(make_app, smtp_sink):
    from sqlalchemy import update

    from shortage_watch.store.tables import Alert

    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    ids = add_alerts(app, 3, template="receipt", email_for=lambda n: "orders@huakang.example")
    deliver_due(app.deliver_deps(), WORKING_NOW)
    with app.sessions.begin() as session:  # as if the sender died before recording the batch
        session.execute(update(Alert).where(Alert.id.in_(ids)).values(status="pending", sent_at=None, message_id=None))
    deliver_due(app.deliver_deps(), WORKING_NOW)
    first, again = [r.message["Message-ID"] for r in smtp_sink.handler.received]
    assert first == again
    assert group_message_key([alert_rows(app)[i].dedup_key for i in ids]) != group_message_key([alert_rows(app)[ids[0]].dedup_key])


def test_bureau_group_waits_group_wait_for_more_items(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    first = add_alerts(app, 2, template="overdue_alert", role="insurance", urgent=True, email_for=lambda n: "ybj@county.example")
    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 0
    assert {alert_rows(app)[i].next_attempt_at for i in first} == {WORKING_NOW + dt.timedelta(seconds=60)}
    later = add_alerts(app, 3, template="overdue_alert", role="insurance", urgent=True, email_for=lambda n: "ybj@county.example",
                       due=WORKING_NOW + dt.timedelta(seconds=30))
    assert deliver_due(app.deliver_deps(), WORKING_NOW + dt.timedelta(seconds=59)).sent == 0
    assert deliver_due(app.deliver_deps(), LATER).sent == 5
    [message] = [r.message for r in smtp_sink.handler.received]
    assert len(body_cases(message)) == 5 and {alert_rows(app)[i].status for i in first + later} == {"sent"}


def test_a_group_larger_than_a_batch_is_one_message_with_the_items_attached(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp", "batch_size": 5}, smtp={"port": smtp_sink.port})
    ids = add_alerts(app, 23, template="receipt", email_for=lambda n: "orders@huakang.example")
    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 23
    [message] = [r.message for r in smtp_sink.handler.received]
    assert message["Subject"] == "登记回执：共23项"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename().endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(attachment.get_content())).active
    listed = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert sorted(listed) == sorted(alert_rows(app)[i].context["case_number"] for i in ids)
    assert sheet.cell(1, 1).value == "案件编号"


def test_a_refused_grouped_message_leaves_every_item_to_retry(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    smtp_sink.handler.data_replies.append("451 4.3.0 try again later")
    ids = add_alerts(app, 4, template="receipt", email_for=lambda n: "orders@huakang.example")
    result = deliver_due(app.deliver_deps(), WORKING_NOW)
    assert (result.sent, result.retried) == (0, 4)
    assert {alert_rows(app)[i].status for i in ids} == {"pending"}


def test_a_group_that_cannot_be_built_goes_dead_and_the_rest_of_the_batch_still_goes(make_app, smtp_sink):
    # A mistyped mail.item_url placeholder ({case} for {case_number}) fails only grouped mail.
    app = make_app(mail={"transport": "smtp", "item_url": "https://sw.example.gov.cn/items/{case}"}, smtp={"port": smtp_sink.port})
    grouped = add_alerts(app, 3, template="overdue_alert", role="insurance", urgent=True, email_for=lambda n: "ybj@county.example")
    single = add_alerts(app, 1, template="receipt", email_for=lambda n: "orders@huakang.example")

    result = deliver_due(app.deliver_deps(), LATER)
    assert (result.sent, result.dead) == (1, 3)
    rows = alert_rows(app)
    assert {rows[i].status for i in grouped} == {"dead"} and all("KeyError" in rows[i].last_error for i in grouped)
    assert rows[single[0]].status == "sent"
    assert [r.rcpt_tos for r in smtp_sink.handler.received] == [["orders@huakang.example"]]
