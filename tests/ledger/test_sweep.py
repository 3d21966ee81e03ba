"""The sweep on SQLite and PostgreSQL: a bad row is pushed back, concurrent sweepers write each alert once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Alert, Obligation
from tests.ledger.conftest import at, store_notice


def test_a_row_that_raises_is_pushed_back_and_the_sweep_goes_on(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"), notice_id="BAD")
    store_notice(app, at("2024-09-27T10:00"), notice_id="GOOD")
    with app.sessions.begin() as session:
        session.execute(update(Obligation).where(Obligation.subject_key == "N:BAD:D1").values(policy={"kind": "report"}))
    now = at("2024-10-09T09:00")
    result = sweep(app, now)
    assert result.obligations == 1 and result.alerts == 1
    assert len(result.failed) == 1 and result.failed[0].startswith("O1: KeyError")
    with app.sessions() as session:
        bad = session.scalars(select(Obligation).where(Obligation.subject_key == "N:BAD:D1")).one()
    assert bad.next_action_at == now + timedelta(minutes=15)
    assert bad.claimed_by is None and bad.claimed_until is None
    assert sweep(app, now).failed == []  # not retried before its time


def test_a_row_claimed_by_a_live_worker_is_left_alone(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    from shortage_watch.clock import utc_now

    with app.sessions.begin() as session:
        session.execute(update(Obligation).values(claimed_by="other", claimed_until=utc_now() + timedelta(minutes=5)))
    result = sweep(app, at("2024-10-09T09:00"))
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
        results.append(sweep(app, now))

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
    from shortage_watch.services.escalate import due_query
    from shortage_watch.store.tables import ShortageCase

    app = make_app(sqlite_url)
    now = at("2024-10-09T09:00")
    with app.engine.connect() as conn:
        for table, index in ((Obligation, "ix_obligations_next_action_at"), (ShortageCase, "ix_shortage_cases_next_action_at")):
            for after in (None, (now, 7)):
                compiled = due_query(table, now, now, 500, after).compile(app.engine)
                plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[k] for k in compiled.positiontup)))
                assert index in plan and "TEMP B-TREE" not in plan, plan


def test_sweep_pages_through_more_due_rows_than_one_batch(db_url, make_app):
    app = make_app(db_url, sweep_batch=2)
    for n in range(5):
        store_notice(app, at(f"2024-09-27T1{n}:00"), notice_id=f"P{n}")
    with app.sessions.begin() as session:  # two share one instant: the keyset must not skip either
        session.execute(update(Obligation).where(Obligation.id.in_([2, 3])).values(next_action_at=at("2024-10-09T00:00")))
    result = sweep(app, at("2024-10-09T09:00"))
    assert result.obligations == 5 and result.alerts == 5 and result.skipped == 0
