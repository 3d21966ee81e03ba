"""The outbox sender's rules: injection-proof mail, working hours, leases, concurrent senders."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
from zoneinfo import ZoneInfo

from sqlalchemy import update

from shortage_watch.app import App
from shortage_watch.clock import utc_now
from shortage_watch.services.deliver import AlertOutcome, SendPace, backoff_delay, claim_due_alerts, deliver_due, record_outcomes, renew_claims
from shortage_watch.store.tables import Alert

from .conftest import WORKING_NOW, add_alerts, alert_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_record_text_cannot_add_a_header_or_inject_html(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    evil = '头孢\r\nBcc: x@example.com<script>alert("x")</script>'
    [alert_id] = add_alerts(app, 1, product_name=evil)

    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 1

    [received] = smtp_sink.handler.received
    assert received.rcpt_tos == [alert_rows(app)[alert_id].recipient_email]  # nobody else got it
    msg = received.message
    assert msg["Bcc"] is None and "x@example.com" not in msg["To"]
    assert "Bcc" not in [k for k in msg.keys()]
    assert "\n" not in msg["Subject"] and "头孢 Bcc: x@example.com<script>" in msg["Subject"]
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_bad_recipient_address_goes_dead_not_elsewhere(make_app, smtp_sink):
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    [alert_id] = add_alerts(app, 1, email_for=lambda n: "a@example.com\r\nBcc: x@example.com")

    result = deliver_due(app.deliver_deps(), WORKING_NOW)

    row = alert_rows(app)[alert_id]
    assert (result.dead, row.status) == (1, "dead") and "not one mail address" in row.last_error
    assert smtp_sink.handler.received == []


def test_non_urgent_bureau_mail_waits_for_the_makeup_saturday_morning(make_app):
    # Friday 2024-10-11 20:00 in Shanghai; Saturday 12 October is a make-up working day (调休).
    evening = dt.datetime(2024, 10, 11, 20, 0, tzinfo=SHANGHAI)
    app = make_app()
    [bureau] = add_alerts(app, 1, template="overdue_alert", role="insurance", due=evening)
    [urgent] = add_alerts(app, 1, template="interview_recommendation", role="insurance", urgent=True, due=evening)
    [distributor] = add_alerts(app, 1, template="written_reminder", role="distributor", due=evening)

    # A minute on: the urgent bureau alert's group wait (mail.group_wait) is over.
    result = deliver_due(app.deliver_deps(), evening + dt.timedelta(seconds=60))

    rows = alert_rows(app)
    assert (result.sent, result.deferred) == (2, 1)
    assert rows[urgent].status == rows[distributor].status == "sent"
    assert rows[bureau].status == "pending" and rows[bureau].attempts == 0
    assert rows[bureau].next_attempt_at == dt.datetime(2024, 10, 12, 8, 30, tzinfo=SHANGHAI)
    # At 08:30 on the Saturday it goes.
    assert deliver_due(app.deliver_deps(), dt.datetime(2024, 10, 12, 8, 30, tzinfo=SHANGHAI)).sent == 1
    assert alert_rows(app)[bureau].status == "sent"


def test_bureau_mail_on_a_holiday_waits_for_the_next_working_day(make_app):
    national_day = dt.datetime(2024, 10, 3, 10, 0, tzinfo=SHANGHAI)
    app = make_app()
    [bureau] = add_alerts(app, 1, template="notice_opened", role="health", due=national_day)
    deliver_due(app.deliver_deps(), national_day)
    assert alert_rows(app)[bureau].next_attempt_at == dt.datetime(2024, 10, 8, 8, 30, tzinfo=SHANGHAI)


def test_only_due_pending_rows_are_sent(make_app):
    app = make_app()
    [later] = add_alerts(app, 1, due=WORKING_NOW + dt.timedelta(hours=1))
    [digest] = add_alerts(app, 1, status="digest")
    [undeliverable] = add_alerts(app, 1, status="undeliverable")
    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 0
    rows = alert_rows(app)
    assert (rows[later].status, rows[digest].status, rows[undeliverable].status) == ("pending", "digest", "undeliverable")


def test_expired_lease_of_a_dead_sender_is_claimed_again_but_a_live_one_is_not(make_app):
    app = make_app()
    [abandoned, held] = add_alerts(app, 2)
    with app.sessions.begin() as s:
        s.execute(update(Alert).where(Alert.id == abandoned).values(status="sending", lease_owner="killed:1", lease_until=utc_now() - dt.timedelta(seconds=1)))
        s.execute(update(Alert).where(Alert.id == held).values(status="sending", lease_owner="alive:2", lease_until=utc_now() + dt.timedelta(minutes=2)))

    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 1

    rows = alert_rows(app)
    assert rows[abandoned].status == "sent"
    assert (rows[held].status, rows[held].lease_owner) == ("sending", "alive:2")


def test_a_failure_is_not_recorded_over_a_claim_another_sender_took(make_app):
    app = make_app()
    [alert_id] = add_alerts(app, 1)
    with app.sessions.begin() as s:
        claim_due_alerts(s, WORKING_NOW, "slow:1", 10, dt.timedelta(seconds=30))
    with app.sessions.begin() as s:  # the lease ran out and another sender claimed the row
        s.execute(update(Alert).where(Alert.id == alert_id).values(lease_owner="fast:2"))
    with app.sessions.begin() as s:
        result = record_outcomes(s, [AlertOutcome(alert_id, "transient", error="421 busy")], "slow:1", 8, {alert_id: 0})
    assert result.lost_claims == 1
    assert (alert_rows(app)[alert_id].status, alert_rows(app)[alert_id].lease_owner) == ("sending", "fast:2")


def test_an_acknowledged_send_is_recorded_even_after_another_sender_took_the_claim(make_app):
    app = make_app()
    [alert_id] = add_alerts(app, 1)
    with app.sessions.begin() as s:
        claim_due_alerts(s, WORKING_NOW, "slow:1", 10, dt.timedelta(seconds=30))
    with app.sessions.begin() as s:  # the lease ran out and another sender claimed the row
        s.execute(update(Alert).where(Alert.id == alert_id).values(lease_owner="fast:2"))
    with app.sessions.begin() as s:
        result = record_outcomes(s, [AlertOutcome(alert_id, "sent", message_id="<x@y>")], "slow:1", 8, {alert_id: 0})
    assert result.sent == 1
    # The other sender's renewal now finds the row sent: it does not send it again.
    with app.sessions.begin() as s:
        assert renew_claims(s, [alert_id], "fast:2", utc_now() + dt.timedelta(seconds=30)) == set()
    assert alert_rows(app)[alert_id].status == "sent"


def test_claims_are_sized_to_what_half_the_lease_can_send_at_the_measured_pace():
    pace = SendPace()
    lease = dt.timedelta(seconds=120)
    assert pace.batch_limit(50, lease) == 50  # nothing measured yet: the configured size
    pace.observe(2.6)  # a server answering each DATA after 2.6 s
    assert pace.batch_limit(50, lease) == 23
    slow = SendPace()
    slow.observe(300.0)
    assert slow.batch_limit(50, lease) == 1


def test_file_transport_writes_one_eml_per_message_and_a_resend_lands_beside_it(make_app, tmp_path):
    app = make_app()
    ids = add_alerts(app, 3)
    deliver_due(app.deliver_deps(), WORKING_NOW)
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 3
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"].startswith("书面提醒")
    # Requeue one (as `outbox retry` does) and send again: a second copy, the first kept.
    before = {p.name: p.read_bytes() for p in files}
    with app.sessions.begin() as s:
        s.execute(update(Alert).where(Alert.id == ids[0]).values(status="pending"))
    deliver_due(app.deliver_deps(), WORKING_NOW)
    after = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(after) == 4 and {p.name: p.read_bytes() for p in after if p.name in before} == before
    [copy] = [p for p in after if p.name not in before]
    assert copy.name.endswith(".2.eml")


def test_two_senders_at_once_send_every_alert_exactly_once(make_app, smtp_sink):
    apps = [make_app(mail={"transport": "smtp", "batch_size": 10}, smtp={"port": smtp_sink.port}) for _ in range(2)]
    add_alerts(apps[0], 120)
    results = []

    def run(app: App) -> None:
        results.append(deliver_due(app.deliver_deps(), WORKING_NOW))

    threads = [threading.Thread(target=run, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    ids = smtp_sink.handler.message_ids()
    assert len(ids) == 120 and len(set(ids)) == 120
    assert sum(r.sent for r in results) == 120
    assert {r.status for r in alert_rows(apps[0]).values()} == {"sent"}


def test_backoff_doubles_with_jitter_and_is_capped():
    import random

    rng = random.Random(7)
    first = [backoff_delay(1, rng) for _ in range(50)]
    assert all(dt.timedelta(seconds=30) <= d <= dt.timedelta(seconds=60) for d in first)
    assert len(set(first)) > 1  # jitter
    assert all(dt.timedelta(seconds=120) <= backoff_delay(3, rng) <= dt.timedelta(seconds=240) for _ in range(20))
    assert backoff_delay(40, rng) <= dt.timedelta(hours=6)
