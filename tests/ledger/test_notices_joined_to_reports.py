"""A notice that arrives after its distributor's report, and joins the obligation the report opened
describing it (distributor, product, date; no notice id), keeps that one obligation: when the notice is
revised (even its date), and when a later report names the notice by its id. A second obligation would
mail the bureaus of the stoppage again and chase a report already made, up to the province."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from shortage_watch.store.tables import Alert, Obligation, StoppageNotice
from tests.ledger.test_ledger_in_sets import ingest
from tests.ledger.test_notice_revisions_in_sets import notice_after_its_report, opening_report

J = 4  # opening_report(J) only describes its notice, and the notice has the date the report gave (J % 3 != 0)


def _joined(make_app: Any, db_url: str) -> tuple[Any, dict[str, Any]]:
    """A ledger where notice Y4 arrived after the report describing it and joined its obligation."""
    app = make_app(db_url, now="2024-10-21T10:00")
    arrived = notice_after_its_report(J)
    ingest(app, "report.json", [opening_report(J)])
    ingest(app, "notice.json", [arrived])
    return app, arrived


def _ledger(app: Any, notice_id: str) -> tuple[list[tuple[Any, ...]], int, list[str]]:
    """The report obligations (described?, notice, state, received on, region), the notice's row id, and the
    alerts written (dedup keys)."""
    with app.sessions() as session:
        obligations = [(o.subject_key.startswith("P:"), o.notice_pk, o.state, o.received_on.isoformat(), o.region_code)
                       for o in session.scalars(select(Obligation).where(Obligation.kind == "report").order_by(Obligation.id))]
        notice_pk = session.scalars(select(StoppageNotice.id).where(StoppageNotice.notice_id == notice_id)).one()
        alerts = list(session.scalars(select(Alert.dedup_key).order_by(Alert.id)))
    return obligations, notice_pk, alerts


def test_a_revised_notice_keeps_the_obligation_it_joined(db_url, make_app):
    app, arrived = _joined(make_app, db_url)
    _, notice_pk, alerts_before = _ledger(app, arrived["notice_id"])

    ingest(app, "reworded.json", [{**arrived, "reason": "设备改造"}])  # the text alone changes
    earlier = (date.fromisoformat(arrived["notified_on"]) - timedelta(days=1)).isoformat()
    ingest(app, "redated.json", [{**arrived, "reason": "设备改造", "notified_on": earlier}])
    # Revised again: its obligation is now described by no version but the first.
    ingest(app, "corrected.json", [{**arrived, "reason": "原料短缺", "notified_on": earlier, "region_code": "350981"}])

    obligations, _, alerts_after = _ledger(app, arrived["notice_id"])
    assert obligations == [(True, notice_pk, "fulfilled_late", earlier, "350981")]
    # Judged again on the earlier date, the report is late: the insurance bureau of the region it had then
    # hears of it; nobody hears of the stoppage again.
    assert alerts_after == [*alerts_before, "O1:late_report:ybj@cq.example"]
    assert all(key.startswith("O1:") for key in alerts_after)


def test_a_later_report_naming_the_notice_answers_the_obligation_it_joined(db_url, make_app):
    app, arrived = _joined(make_app, db_url)
    obligations_before, notice_pk, alerts_before = _ledger(app, arrived["notice_id"])

    named = {**opening_report(J), "report_id": "B4-again", "notice_id": arrived["notice_id"]}
    ingest(app, "named.json", [named])
    ingest(app, "both.json", [{**named, "report_id": "B4-third"}, {**arrived, "reason": "设备改造"}])

    obligations, _, alerts_after = _ledger(app, arrived["notice_id"])
    assert obligations == obligations_before == [(True, notice_pk, "fulfilled", arrived["notified_on"], "500101")]
    assert alerts_after == alerts_before  # the bureaus are not told of the stoppage a second time
