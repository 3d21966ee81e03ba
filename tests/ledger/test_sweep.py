"""The sweep on SQLite and PostgreSQL: a bad row is pushed back, concurrent sweepers write each alert once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Alert, AuditEvent, Obligation
from tests.ledger.conftest import at, store_notice


def test_a_row_that_raises_is_pushed_back_and_the_sweep_goes_on(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"), notice_id="BAD")
    store_notice(app, at("2024-09-27T10:00"), notice_id="GOOD")
    with app.sessions.begin() as session:
        session.execute(update(Obligation).where(Obligation.subject_key == "N:BAD:D1").values(policy={"kind": "report"}))
    now = at("2024-10-09T09:00")
    result = sweep(app.sweep_deps(), now)
    assert result.obligations == 1 and result.alerts == 1
    assert len(result.failed) == 1 and result.failed[0].startswith("O1: KeyError")
    with app.sessions() as session:
        bad = session.scalars(select(Obligation).where(Obligation.subject_key == "N:BAD:D1")).one()
    assert bad.next_action_at == now + timedelta(minutes=15)
    assert bad.claimed_by is None and bad.claimed_until is None
    assert sweep(app.sweep_deps(), now).failed == []  # not retried before its time


def test_a_row_claimed_by_a_live_worker_is_left_alone(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    from shortage_watch.clock import utc_now

    with app.sessions.begin() as session:
        session.execute(update(Obligation).values(claimed_by="other", claimed_until=utc_now() + timedelta(minutes=5)))
    result = sweep(app.sweep_deps(), at("2024-10-09T09:00"))
    assert result.obligations == 0 and result.alerts == 0


def test_two_workers_sweeping_at_once_write_every_alert_exactly_once(db_url, make_app):
    first = make_app(db_url)
    for n in range(40):
        store_notice(first, at("2024-09-27T10:00"), notice_id=f"N{n:03d}")
    second = make_app(db_url)
    now = at("2024-10-14T09:00")  # written reminder, county alert and city interview due for each
    results = []
    barrier = threading.Barrier(2)

    def work(app):
        barrier.wait()
        results.append(sweep(app.sweep_deps(), now))

    threads = [threading.Thread(target=work, args=(app,)) for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2 and all(r.failed == [] for r in results)
    assert sum(r.obligations for r in results) == 40  # each row handled by exactly one worker
    with first.sessions() as session:
        due_levels = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.level.in_(["written_reminder", "overdue", "interview"]))
        )
        distinct = session.scalar(select(func.count(func.distinct(Alert.dedup_key))))
        total = session.scalar(select(func.count()).select_from(Alert))
    assert due_levels == 120 == sum(r.alerts for r in results)
    assert distinct == total


def test_due_rows_are_read_through_the_next_action_at_index(sqlite_url, make_app):
    from shortage_watch.store.sweep import STEP_COLUMNS, due_query
    from shortage_watch.store.tables import ShortageCase

    app = make_app(sqlite_url)
    now = at("2024-10-09T09:00")
    with app.engine.connect() as conn:
        # What the sweep locks: obligations with what stepping them reads, case ids.
        for table, index, columns in ((Obligation, "ix_obligations_next_action_at", STEP_COLUMNS),
                                      (ShortageCase, "ix_shortage_cases_next_action_at", None)):
            compiled = due_query(table, now, now, 500, columns).compile(app.engine)
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[k] for k in compiled.positiontup)))
            assert index in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.postgres
def test_postgresql_takes_due_rows_in_index_order_without_sorting_every_due_row(pg_url, make_app):
    from shortage_watch.store.claims import lock_batch
    from shortage_watch.store.sweep import STEP_COLUMNS, due_query

    app = make_app(pg_url)
    now = at("2024-10-09T09:00")
    locking = due_query(Obligation, now, now, 500, STEP_COLUMNS).with_for_update(skip_locked=True)
    compiled = locking.compile(app.engine)
    with app.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")  # an empty table: ask what the index can do
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
    assert "ix_obligations_next_action_at" in plan and "Sort" not in plan, plan
    with app.sessions.begin() as session:  # and it is what the sweep runs
        assert lock_batch(session, due_query(Obligation, now, now, 500, STEP_COLUMNS)) == []


def test_sweep_pages_through_more_due_rows_than_one_batch(db_url, make_app):
    app = make_app(db_url, sweep_batch=2)
    for n in range(5):
        store_notice(app, at(f"2024-09-27T1{n}:00"), notice_id=f"P{n}")
    with app.sessions.begin() as session:  # two share one instant: the keyset must not skip either
        session.execute(update(Obligation).where(Obligation.id.in_([2, 3])).values(next_action_at=at("2024-10-09T00:00")))
    result = sweep(app.sweep_deps(), at("2024-10-09T09:00"))
    assert result.obligations == 5 and result.alerts == 5 and result.skipped == 0


def _due_obligations(app, count: int, *, received: str = "2024-09-27") -> None:
    """`count` open report obligations of D1 received on `received`, the levels at opening done, in one statement."""
    from shortage_watch.domain.deadline import report_deadline
    from datetime import date

    deadline = report_deadline(app.calendar, date.fromisoformat(received), 5)
    opened = at(f"{received}T10:00")
    ladder = app.policy.ladder_for("report")
    rows = [
        dict(kind="report", subject_key=f"N:B{n}:D1", party_code="D1", region_code="350902", product_code="XA01", priority=False,
             received_on=deadline.received, due_on=deadline.due, due_at=deadline.due_at, calendar_status=deadline.calendar,
             state="open", level=sum(1 for level in ladder.levels if level.offset is None), policy=ladder.as_json(), next_action_at=at("2024-10-09T00:00"), opened_at=opened, updated_at=opened)
        for n in range(count)
    ]
    with app.sessions.begin() as session:
        session.execute(Obligation.__table__.insert(), rows)


def test_a_batch_of_due_obligations_is_stepped_in_a_handful_of_statements(db_url, make_app):
    from sqlalchemy import event

    app = make_app(db_url, sweep_batch=500)
    _due_obligations(app, 1000)
    statements: list[str] = []
    event.listen(app.engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    result = sweep(app.sweep_deps(), at("2024-10-09T09:00"))  # the reminder of each is due
    assert (result.obligations, result.alerts, result.failed) == (1000, 1000, [])
    obligation_statements = [s for s in statements if "shortage_cases" not in s]
    # Per batch: claim, read rows, notices, reports, mailed steps, alerts, audit events, next steps; row by row it was ~10 per obligation.
    assert len(obligation_statements) <= 2 * 12 + 4, obligation_statements[:30]


def test_a_row_that_raises_in_a_batch_is_pushed_back_and_the_rest_of_its_batch_swept(db_url, make_app, caplog):
    app = make_app(db_url, sweep_batch=50)
    _due_obligations(app, 30)
    with app.sessions.begin() as session:
        session.execute(update(Obligation).where(Obligation.subject_key == "N:B17:D1").values(policy={"kind": "report"}))
    now = at("2024-10-09T09:00")
    result = sweep(app.sweep_deps(), now)
    assert (result.obligations, result.alerts) == (29, 29)
    assert result.failed == ["O18: KeyError: 'levels'"]
    assert "O18 failed" in caplog.text
    with app.sessions() as session:
        rows = {o.subject_key: o for o in session.scalars(select(Obligation))}
        stepped = session.scalars(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "levels")).one()
    opening = sum(1 for level in app.policy.ladder_for("report").levels if level.offset is None)
    assert rows["N:B17:D1"].next_action_at == now + timedelta(minutes=15) and rows["N:B17:D1"].level == opening
    assert all(o.level == opening + 1 and o.claimed_by is None for key, o in rows.items() if key != "N:B17:D1")
    assert stepped == 29


@pytest.mark.postgres
def test_two_postgresql_sweepers_on_20000_due_rows_write_every_alert_exactly_once(pg_url, make_app):
    first, second = make_app(pg_url), make_app(pg_url)
    _due_obligations(first, 20_000)
    now = at("2024-10-09T09:00")
    results = []
    barrier = threading.Barrier(2)

    def work(app):
        barrier.wait()
        results.append(sweep(app.sweep_deps(), now))

    threads = [threading.Thread(target=work, args=(app,)) for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert len(results) == 2 and all(r.failed == [] for r in results)
    assert all(r.obligations > 0 for r in results)  # both took part: disjoint batches, not one waiting for the other
    assert sum(r.obligations for r in results) == 20_000
    with first.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Alert))
        stepped_twice = session.scalar(
            select(func.count()).select_from(
                select(AuditEvent.entity_id).where(AuditEvent.action == "levels").group_by(AuditEvent.entity_id)
                .having(func.count() > 1).subquery()
            )
        )
    assert total == 20_000 == sum(r.alerts for r in results)
    assert stepped_twice == 0


def test_a_case_that_raises_in_a_batch_is_pushed_back_and_the_rest_of_its_batch_swept(db_url, make_app, caplog):
    from datetime import date

    from shortage_watch.store.tables import ShortageCase
    from tests.ledger.conftest import store_shortage

    app = make_app(db_url)
    for product in ("XB02", "XB03"):  # two regional cases, due together
        for n, day in ((1, 8), (2, 9), (3, 10)):
            store_shortage(app, at(f"2024-10-{day:02d}T10:00"), report_id=f"S{product}{n}", hospital_code=f"H{n}", product_code=product,
                           region_code="350902" if n % 2 else "350981", reported_on=date(2024, 10, day))
    with app.sessions.begin() as session:
        cases = {c.product_code: c.id for c in session.scalars(select(ShortageCase))}
        session.execute(update(ShortageCase).where(ShortageCase.id == cases["XB03"]).values(policy={"kind": "case"}))
    now = at("2024-10-24T08:00")
    result = sweep(app.sweep_deps(), now)
    assert (result.cases, result.alerts) == (1, 2)
    assert result.failed == [f"C{cases['XB03']}: KeyError: 'ladder'"]
    assert f"C{cases['XB03']} failed" in caplog.text
    with app.sessions() as session:
        good, bad = session.get(ShortageCase, cases["XB02"]), session.get(ShortageCase, cases["XB03"])
    assert good.state == "escalated" and good.claimed_by is None
    assert bad.state == "regional" and bad.next_action_at == now + timedelta(minutes=15) and bad.claimed_by is None


def test_obligations_stepped_together_keep_their_own_number_notice_and_state_in_their_mail(db_url, make_app):
    import json

    from sqlalchemy import Text, cast

    from shortage_watch.domain.obligations import case_number

    app = make_app(db_url, sweep_batch=500)
    for n in range(3):  # one notice day: one step and one plan for all three, three notices
        store_notice(app, at("2024-09-27T10:00"), notice_id=f"SAME{n}", reason=f"停产 {n}")
    _due_obligations(app, 4)  # and four without a notice, alike but for their number
    result = sweep(app.sweep_deps(), at("2024-10-14T09:00"))  # overdue: the state moves too
    assert result.failed == [] and result.obligations == 7
    with app.sessions() as session:
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
        obligations = {o.id: o for o in session.scalars(select(Obligation))}
        stored = dict(session.execute(select(Alert.id, cast(Alert.context, Text))).all())
    assert {a.obligation_id for a in alerts} == set(obligations)
    for alert in alerts:
        obligation = obligations[alert.obligation_id]
        assert alert.context["case_number"] == case_number("O", obligation.id)
        assert alert.context["thread_key"] == alert.thread_key == f"O{obligation.id}"
        notice = alert.context["notice"]
        assert (notice and notice["notice_id"]) == (obligation.subject_key.split(":")[1] if obligation.notice_pk else None)
        if notice:
            assert notice["reason"] == f"停产 {notice['notice_id'][-1]}"
        assert json.loads(stored[alert.id]) == alert.context
    assert {o.state for o in obligations.values()} == {"overdue"}
    # Alike obligations get the same mail but for their number.
    by_level: dict[tuple[str, str], list[dict]] = {}
    for alert in alerts:
        if alert.context["notice"] is None:
            by_level.setdefault((alert.level, alert.recipient_email), []).append(dict(alert.context, case_number=None, thread_key=None))
    assert by_level and all(len(same) == 4 and all(c == same[0] for c in same) for same in by_level.values())


def test_obligations_of_one_party_swept_batch_by_batch_each_mail_their_own_notice(db_url, make_app):
    """What alike obligations share is kept for the whole sweep, not one batch: obligations of one party and
    notice day, swept one per batch, each still say their own notice's product, manufacturer and kind."""
    import json

    from sqlalchemy import Text, cast

    from shortage_watch.store.tables import StoppageNotice

    app = make_app(db_url, sweep_batch=1)
    kinds = ("stoppage", "interruption", "reduction")
    for n in range(3):
        store_notice(app, at("2024-09-27T10:00"), notice_id=f"OWN{n}", product_code=f"P{n}", product_name=f"药品{n}", manufacturer=f"制药{n}",
                     kind=kinds[n], specification=f"{n}mg")
    result = sweep(app.sweep_deps(), at("2024-10-14T09:00"))
    assert result.failed == [] and result.obligations == 3
    with app.sessions() as session:
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
        notice_of = {o.id: o.notice_pk for o in session.scalars(select(Obligation))}
        notices = {n.id: n for n in session.scalars(select(StoppageNotice))}
        stored = dict(session.execute(select(Alert.id, cast(Alert.context, Text))).all())
    assert {a.obligation_id for a in alerts} == set(notice_of)
    for alert in alerts:
        notice = notices[notice_of[alert.obligation_id]]
        assert alert.context["product"] == {"code": notice.product_code, "name": notice.product_name, "specification": notice.specification}
        assert alert.context["manufacturer"] == notice.manufacturer
        assert (alert.context["notice"]["notice_id"], alert.context["notice"]["kind"]) == (notice.notice_id, notice.kind)
        assert json.loads(stored[alert.id]) == alert.context


def test_what_was_mailed_is_read_through_the_obligations_index_not_every_sent_alert(sqlite_url, make_app):
    """A ledger holds 3-4 sent alerts per obligation ever opened: a sweep batch reads its own obligations' alerts only."""
    from sqlalchemy import event

    from shortage_watch.services.alert_routing import mailed_steps_of

    app = make_app(sqlite_url)
    statements = []
    event.listen(app.engine, "before_cursor_execute", lambda conn, cursor, sql, params, context, many: statements.append((sql, params)))
    with app.sessions() as session:
        assert mailed_steps_of(session, [1, 2, 3], at("2024-10-09T09:00")) == {}
    [(sql, params)] = [(sql, params) for sql, params in statements if "FROM alerts" in sql]
    with app.engine.connect() as conn:
        plan = " ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
    assert "ix_alerts_obligation" in plan and "ix_alerts_status" not in plan, plan
