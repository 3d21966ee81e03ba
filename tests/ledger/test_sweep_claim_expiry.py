"""An obligation claimed by a sweeper that died is swept once the claim expires."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from shortage_watch.clock import utc_now
from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import Obligation
from tests.ledger.conftest import at, make_app, store_notice  # noqa: F401  (make_app is a fixture)


def test_an_obligation_claimed_by_a_dead_sweeper_is_swept_once_the_claim_expires(db_url, make_app) -> None:  # noqa: F811
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    with app.sessions.begin() as session:  # a sweeper that died holding the row; its claim ran out a second ago
        session.execute(update(Obligation).values(claimed_by="dead-replica", claimed_until=utc_now() - timedelta(seconds=1)))
    result = sweep(app.sweep_deps(), at("2024-10-09T09:00"))  # the reminder is due
    assert (result.obligations, result.alerts) == (1, 1)
    with app.sessions() as session:
        row = session.scalars(select(Obligation)).one()
    assert row.claimed_by is None and row.next_action_at > at("2024-10-09T09:00")
