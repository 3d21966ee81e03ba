"""Report obligations on a real database (SQLite and PostgreSQL): open, remind, overdue, fulfil."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Alert, AuditEvent, Obligation
from tests.ledger.conftest import alert_keys, alerts, at, revise_notice, store_notice, store_report

O = "O1"


def test_notice_opens_obligation_due_after_national_day_with_receipt_and_bureau_notice(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    assert ob.state == "open"
    assert ob.due_on == date(2024, 10, 10)
    assert ob.next_action_at == at("2024-10-09T00:00")
    assert ob.policy["kind"] == "report"
    assert alert_keys(app) == {
        f"{O}:receipt:d1@dist.example",
        f"{O}:notice_opened:ybj@jiaocheng.example",
        f"{O}:notice_opened:wjj@jiaocheng.example",
    }
    receipt = next(a for a in alerts(app) if a.template == "receipt")
    assert receipt.context["deadline"]["due_on"] == "2024-10-10"
    assert receipt.context["recipient"]["role"] == "distributor"
    assert receipt.status == "pending" and receipt.thread_key == O


def test_sweep_walks_the_ladder_and_twice_at_one_instant_writes_nothing_new(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    assert sweep(app.sweep_deps(), at("2024-10-08T23:00")).alerts == 0
    assert sweep(app.sweep_deps(), at("2024-10-09T08:00")).alerts == 1  # reminder
    result = sweep(app.sweep_deps(), at("2024-10-11T00:00:01"))
    assert result.alerts == 2  # written reminder + county bureau
    assert sweep(app.sweep_deps(), at("2024-10-11T00:00:01")).alerts == 0
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
        assert ob.state == "overdue"
        assert ob.next_action_at == at("2024-10-14T00:00")  # +3 working days counts make-up Saturday 10-12
        written = session.scalars(select(Alert).where(Alert.template == "written_reminder")).one()
        assert written.urgent and written.context["overdue_working_days"] == 1
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity == "obligation")).all()
    assert "overdue" in actions


def test_report_on_time_fulfils_and_stops_the_ladder(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    store_report(app, at("2024-10-10T23:00"))
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    assert ob.state == "fulfilled" and ob.late_working_days is None and ob.next_action_at is None
    assert sweep(app.sweep_deps(), at("2024-11-30T00:00")).alerts == 0


def test_late_report_counts_working_days_late_and_alerts_county_bureau(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    sweep(app.sweep_deps(), at("2024-10-14T09:00"))
    store_report(app, at("2024-10-15T10:00"))
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
        late = session.scalars(select(Alert).where(Alert.template == "late_report")).one()
    assert ob.state == "fulfilled_late" and ob.late_working_days == 4  # 10-11, 10-12 (make-up), 10-14, 10-15
    assert late.recipient_email == "ybj@jiaocheng.example"
    assert late.context["report"]["late_working_days"] == 4


def test_report_for_unknown_notice_opens_and_fulfils_in_one_step(db_url, make_app):
    app = make_app(db_url)
    store_report(
        app,
        at("2024-10-08T09:00"),
        notice_id=None,
        manufacturer="某某制药",
        product_code="XC03",
        product_name="阿莫西林胶囊",
        kind="interruption",
        notified_on=date(2024, 9, 20),
    )
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    assert ob.subject_key == "P:D1:XC03:2024-09-20"
    assert ob.due_on == date(2024, 9, 27) and ob.state == "fulfilled_late"
    assert ob.late_working_days == 3  # 09-29 (make-up Sunday), 09-30 and 10-08
    keys = alert_keys(app)
    assert "O1:late_report:ybj@jiaocheng.example" in keys
    assert "O1:notice_opened:ybj@jiaocheng.example" in keys
    assert not any(":receipt:" in key for key in keys)
    with app.sessions() as session:
        opened = session.scalars(select(Alert).where(Alert.template == "notice_opened")).first()
    assert opened is not None and opened.context["product"]["name"] == "阿莫西林胶囊"


def test_revision_moving_notified_on_moves_deadline_with_audit(db_url, make_app):
    app = make_app(db_url)
    pk = store_notice(app, at("2024-09-27T10:00"))
    revise_notice(app, pk, at("2024-09-28T10:00"), notified_on=date(2024, 9, 30), region_code="350981")
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
        moved = session.scalars(select(AuditEvent).where(AuditEvent.action == "deadline_moved")).one()
    assert ob.due_on == date(2024, 10, 12)  # the make-up Saturday is the 5th working day
    assert moved.detail["notified_on_from"] == "2024-09-27" and moved.detail["notified_on_to"] == "2024-09-30"
    assert ob.region_code == "350981" and ob.next_action_at == at("2024-10-11T00:00")  # reminder 1 working day before 10-12


def test_priority_product_climbs_faster(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"), priority_class="winning_bid")
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    assert ob.priority and ob.policy["kind"] == "report_priority"
    assert ob.next_action_at == at("2024-10-08T00:00")  # reminder 2 working days before
    assert "O1:notice_opened:ybj@ningde.example" in alert_keys(app)


def test_a_report_corrected_to_answer_another_notice_leaves_the_first_owed_again(db_url, make_app):
    from shortage_watch.store.tables import DistributorReport

    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    store_notice(app, at("2024-09-27T10:00"), notice_id="N-2024-002", product_code="XB03", product_name="地高辛片")
    pk = store_report(app, at("2024-09-30T10:00"))  # names N-2024-001 by mistake
    now = at("2024-10-11T10:00")  # after both deadlines (10-10)
    with app.sessions.begin() as session:  # the distributor corrects it to the notice it reported
        row = session.get(DistributorReport, pk)
        row.notice_id, row.version, row.updated_at = "N-2024-002", 2, now
        session.flush()
        app.record_listener.record_stored(session, "distributor_report", row, {"notice_id": "N-2024-001"}, now)

    with app.sessions() as session:
        first, second = session.scalars(select(Obligation).order_by(Obligation.id)).all()
        assert (second.state, second.report_pk) == ("fulfilled", pk)
        assert (first.state, first.report_pk, first.fulfilled_at) == ("overdue", None, None)
        assert session.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == first.id, AuditEvent.action == "reopened")).one()
    sweep(app.sweep_deps(), now)
    assert {f"{O}:written_reminder:d1@dist.example", f"{O}:overdue:ybj@jiaocheng.example"} <= alert_keys(app)


def test_a_late_report_that_reaches_the_ledger_days_after_it_was_submitted_is_in_the_next_daily_digest(db_url, make_app):
    from shortage_watch.services.digests import send_daily_digests

    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))  # due 2024-10-10
    assert send_daily_digests(app.digest_deps(), at("2024-10-14T08:30")) >= 1  # lists it overdue
    # Submitted on the 11th, in a file picked up on the 14th after that morning's digest.
    store_report(app, at("2024-10-14T09:00"), submitted_at=at("2024-10-11T10:00"))
    assert send_daily_digests(app.digest_deps(), at("2024-10-15T08:30")) >= 1

    with app.sessions() as session:
        digest = session.scalars(select(Alert).where(Alert.template == "digest", Alert.recipient_email == "wjw@ningde.example")
                                 .order_by(Alert.id.desc())).first()
    assert digest.context["digest_date"] == "2024-10-15"
    assert [(late["case_number"], late["late_working_days"]) for late in digest.context["late_reports"]] == [("SW-O-000001", 1)]
