"""deliver_due against a real SMTP server on loopback (aiosmtpd): what arrives, and the
states rows end in when the server refuses, defers or rejects."""

from __future__ import annotations

import datetime as dt
import email
from email.header import decode_header, make_header
from email.policy import compat32

from shortage_watch.clock import utc_now
from shortage_watch.services.deliver import deliver_due

from .conftest import WORKING_NOW, add_alerts, alert_rows, free_port


def test_messages_parse_back_with_recipients_chinese_subjects_both_parts_and_threading(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    # Two alerts about one case (same thread; different templates, so not one grouped message), one about another.
    ids = add_alerts(app, 1, email_for=lambda n: "huakang@example.com", thread_of=lambda n: "O77")
    ids += add_alerts(app, 1, template="reminder", email_for=lambda n: "huakang@example.com", thread_of=lambda n: "O77")
    ids += add_alerts(app, 1, template="receipt", email_for=lambda n: "other@example.com", thread_of=lambda n: "O78")

    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    assert (result.sent, result.dead, result.retried) == (3, 0, 0)
    received = smtp_sink.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == ["huakang@example.com", "huakang@example.com", "other@example.com"]
    first = next(r.message for r in received if r.rcpt_tos == ["huakang@example.com"])
    assert first["Subject"].startswith("书面提醒：宁德市华康医药有限公司逾期未报告注射用头孢曲松钠停产情况")
    assert first["From"].addresses[0].addr_spec == "alerts@sw.example.gov.cn"
    assert first["From"].addresses[0].display_name == "医保短缺监测"
    assert first["Reply-To"] == "office@sw.example.gov.cn"
    assert first["Auto-Submitted"] == "auto-generated"
    assert first["Date"] is not None
    assert first.get_content_type() == "multipart/alternative"
    text = first.get_body(("plain",)).get_content()
    html = first.get_body(("html",)).get_content()
    assert "2024年10月10日（星期四）17:30前" in text and "2024年10月10日（星期四）17:30前" in html
    assert "书面提醒" in html and "<html" in html
    # Threading: both mails of case O77 reference one root; the other case another.
    threads = {r.message["In-Reply-To"] for r in received if r.rcpt_tos == ["huakang@example.com"]}
    other = next(r.message for r in received if r.rcpt_tos == ["other@example.com"])
    assert len(threads) == 1 and threads != {other["In-Reply-To"]}
    assert all(r.message["References"] == r.message["In-Reply-To"] for r in received)
    rows = alert_rows(app)
    assert {rows[i].status for i in ids} == {"sent"}
    assert {rows[i].message_id for i in ids} == set(smtp_sink.handler.message_ids())
    assert all(rows[i].sent_at is not None and rows[i].lease_owner is None for i in ids)


def test_starttls_and_auth(make_app, tls_sink):
    app = make_app(
        mail={"transport": "smtp"},
        smtp={"port": tls_sink.port, "security": "starttls", "username": "bureau", "password": "密码-secret",
              "ca_file": str(tls_sink.cafile)},
    )
    ids = add_alerts(app, 3)

    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    assert result.sent == 3
    assert len(tls_sink.handler.received) == 3
    assert {alert_rows(app)[i].status for i in ids} == {"sent"}


def test_wrong_password_keeps_the_mail_for_later(make_app, tls_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": tls_sink.port, "security": "starttls", "username": "bureau",
                                                      "password": "wrong", "ca_file": str(tls_sink.cafile)})
    [alert_id] = add_alerts(app, 1)

    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    row = alert_rows(app)[alert_id]
    assert (result.sent, result.retried, row.status, row.attempts) == (0, 1, "pending", 1)
    assert "authentication failed" in row.last_error
    assert tls_sink.handler.received == []


def test_server_refusing_connections_leaves_rows_pending_with_backoff(make_app):
    port = free_port()  # nothing listens here
    app = make_app(mail={"transport": "smtp", "batch_size": 5}, smtp={"port": port})
    ids = add_alerts(app, 8)

    before = utc_now()
    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    rows = alert_rows(app)
    # The first batch met the refused connection; the rest of the outbox waits untouched.
    assert (result.sent, result.retried, result.batches) == (0, 5, 1)
    tried = [rows[i] for i in ids if rows[i].attempts == 1]
    assert len(tried) == 5 and all(r.status == "pending" for r in rows.values())
    for row in tried:
        assert "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error
        # back-off: between half and the whole of the first step (1 minute), real clock
        assert before + dt.timedelta(seconds=29) <= row.next_attempt_at <= utc_now() + dt.timedelta(seconds=61)


def test_421_then_250_is_retried_and_sent(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    smtp_sink.handler.data_replies.append("421 4.3.2 Service not available, closing channel")
    ids = add_alerts(app, 2)

    first = deliver_due(app.deliver_deps(), WORKING_NOW)
    rows = alert_rows(app)
    assert (first.sent, first.retried) == (1, 1), [r.last_error for r in rows.values()]
    retried = next(r for r in rows.values() if r.status == "pending")
    assert retried.attempts == 1 and retried.last_error.startswith("refused: 421")

    # Later (past the back-off): the server answers 250.
    second = deliver_due(app.deliver_deps(), retried.next_attempt_at + dt.timedelta(seconds=1))
    rows = alert_rows(app)
    assert second.sent == 1
    assert {rows[i].status for i in ids} == {"sent"} and rows[retried.id].attempts == 2
    assert len(smtp_sink.handler.received) == 2


def test_550_for_one_recipient_kills_only_that_alert(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    smtp_sink.handler.refuse_rcpt["gone@example.com"] = "550 5.1.1 <gone@example.com>: mailbox unavailable"
    good = add_alerts(app, 2)
    [bad] = add_alerts(app, 1, email_for=lambda n: "gone@example.com")

    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    rows = alert_rows(app)
    assert (result.sent, result.dead) == (2, 1)
    assert {rows[i].status for i in good} == {"sent"}
    assert rows[bad].status == "dead" and "550" in rows[bad].last_error
    assert [r.rcpt_tos for r in smtp_sink.handler.received] == [[rows[i].recipient_email] for i in good]


def test_451_for_one_recipient_retries_it(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    smtp_sink.handler.refuse_rcpt["busy@example.com"] = "451 4.7.1 greylisted, try again later"
    [alert_id] = add_alerts(app, 1, email_for=lambda n: "busy@example.com")

    deliver_due(app.deliver_deps(), WORKING_NOW)

    row = alert_rows(app)[alert_id]
    assert (row.status, row.attempts) == ("pending", 1) and "451" in row.last_error


def test_exhausted_retries_go_dead(make_app):
    app = make_app(mail={"transport": "smtp", "max_attempts": 2}, smtp={"port": free_port()})
    [alert_id] = add_alerts(app, 1)

    deliver_due(app.deliver_deps(), WORKING_NOW)
    row = alert_rows(app)[alert_id]
    deliver_due(app.deliver_deps(), row.next_attempt_at + dt.timedelta(seconds=1))

    row = alert_rows(app)[alert_id]
    assert (row.status, row.attempts) == ("dead", 2)
    assert row.last_error.startswith("gave up after 2 attempts")


def test_chinese_subject_is_rfc2047_encoded_on_the_wire(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    add_alerts(app, 1)
    deliver_due(app.deliver_deps(), WORKING_NOW)
    raw = smtp_sink.handler.received[0].message.as_bytes()
    on_the_wire = email.message_from_bytes(raw, policy=compat32)["Subject"]
    assert on_the_wire.isascii() and on_the_wire.lower().startswith("=?utf-8?")
    assert str(make_header(decode_header(on_the_wire))).startswith("书面提醒：")


def test_refused_sender_is_a_settings_problem_so_mail_waits(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp", "batch_size": 3}, smtp={"port": smtp_sink.port})
    smtp_sink.handler.refuse_sender = "550 5.7.1 <alerts@sw.example.gov.cn>: relaying denied"
    ids = add_alerts(app, 5)

    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    rows = alert_rows(app)
    assert (result.dead, result.retried, result.batches) == (0, 3, 1)
    assert all(rows[i].status == "pending" for i in ids)
    assert "relaying denied" in next(r.last_error for r in rows.values() if r.attempts)
