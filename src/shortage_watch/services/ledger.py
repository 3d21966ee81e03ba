"""The ledger: accepted records open, fulfil and move obligations and join shortage cases.

`LedgerListener.records_stored` runs inside the ingest transaction that stored the rows,
so a record and the obligations, cases, audit events and on-open alerts it causes
commit together or not at all. Levels after opening are the sweep's (services/escalate.py):
each matter's `next_action_at` says when it next needs it. What each kind of record does
is services/obligations.py's (notices, distributor reports) and services/cases.py's
(hospital shortage reports); their alerts are routed and written by services/alert_routing.py.
"""

from __future__ import annotations

import logging
from datetime import datetime
from sqlalchemy.orm import Session

from shortage_watch.services.cases import shortage_reports_stored
from shortage_watch.services.ledger_deps import LedgerDeps
from shortage_watch.services.obligations import OpeningPlans, notice_stored, notices_revised, notices_stored
from shortage_watch.services.report_fulfilment import distributor_reports_stored
from shortage_watch.store.tables import RecordRow

log = logging.getLogger(__name__)


class LedgerListener:
    """Called by ingest for each new or revised current row, inside the storing transaction."""

    def __init__(self, deps: LedgerDeps) -> None:
        self.deps = deps
        self.opening_plans = OpeningPlans()

    def records_stored(self, session: Session, kind: str, rows: list[RecordRow], now: datetime) -> None:
        """New rows of one kind, in file order, in sets: notices (`notices_stored`), distributor reports
        (`distributor_reports_stored`) and hospital reports (`shortage_reports_stored`)."""
        if kind == "stoppage_notice":
            notices_stored(session, self.deps, rows, now, plans=self.opening_plans)
            return
        if kind == "distributor_report":
            distributor_reports_stored(session, self.deps, rows, now)
            return
        if kind == "shortage_report":
            shortage_reports_stored(session, self.deps, rows, now)
            return
        for row in rows:
            self.record_stored(session, kind, row, None, now)

    def records_revised(self, session: Session, kind: str, revised: list[tuple[RecordRow, dict | None]], now: datetime) -> None:
        """Revised rows of one kind (distinct records) with their previous data, in file order, in sets."""
        if kind == "distributor_report":
            distributor_reports_stored(session, self.deps, [row for row, _ in revised], now, revised=True)
        elif kind == "stoppage_notice":
            notices_revised(session, self.deps, revised, now)
        elif kind == "shortage_report":
            shortage_reports_stored(session, self.deps, [row for row, _ in revised], now,
                                    previous={row.id: previous for row, previous in revised})
        else:
            log.warning("ledger: ignoring unknown record kind %r", kind)

    def record_stored(self, session: Session, kind: str, row: RecordRow, previous: dict | None, now: datetime) -> None:
        """One new (`previous` None) or revised row."""
        if kind == "stoppage_notice":
            notice_stored(session, self.deps, row, previous, now)
        elif kind == "distributor_report":
            distributor_reports_stored(session, self.deps, [row], now, revised=previous is not None)
        elif kind == "shortage_report":
            shortage_reports_stored(session, self.deps, [row], now)
        else:
            log.warning("ledger: ignoring unknown record kind %r", kind)
