"""Read queries behind the officer commands (`obligations list|show`, `cases list|show`): typed results.

Region filters are sets of codes (`Directory.region_and_below`), applied in SQL; None means
every region. Rows are returned detached-safe (sessions do not expire on commit), so a
command may format them after its read session closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shortage_watch.domain.states import CaseState
from shortage_watch.store.tables import (
    Alert,
    AuditEvent,
    DistributorReport,
    Obligation,
    ShortageCase,
    ShortageReport,
    StoppageNotice,
)
from shortage_watch.store.trail_queries import audit_trail, case_alerts, obligation_alerts


@dataclass(frozen=True)
class ObligationView:
    """An obligation with the notice that opened it and the case it is about (either may be absent)."""

    obligation: Obligation
    notice: StoppageNotice | None
    case: ShortageCase | None


def _obligation_views() -> Any:
    return (select(Obligation, StoppageNotice, ShortageCase)
            .outerjoin(StoppageNotice, StoppageNotice.id == Obligation.notice_pk)
            .outerjoin(ShortageCase, ShortageCase.id == Obligation.case_id))


def list_obligations(
    session: Session, *, states: Sequence[str] | None = None, distributor: str | None = None,
    regions: Collection[str] | None = None, limit: int,
) -> list[ObligationView]:
    """Obligations in `states` (None: any) of `distributor` and `regions` (None: all), earliest deadline first."""
    query = _obligation_views().order_by(Obligation.due_at, Obligation.id).limit(limit)
    if states:
        query = query.where(Obligation.state.in_(list(states)))
    if distributor:
        query = query.where(Obligation.party_code == distributor)
    if regions is not None:
        query = query.where(Obligation.region_code.in_(list(regions)))
    return [ObligationView(ob, notice, case) for ob, notice, case in session.execute(query)]


@dataclass(frozen=True)
class ObligationDetail:
    view: ObligationView
    report: DistributorReport | None
    alerts: list[Alert]  # in the order written
    events: list[AuditEvent]  # the obligation's audit trail, in time order


def read_obligation(session: Session, obligation_id: int) -> ObligationDetail | None:
    """One obligation with its record, the report that met it, its alerts and audit events; None if absent."""
    found = session.execute(_obligation_views().where(Obligation.id == obligation_id)).first()
    if found is None:
        return None
    ob, notice, case = found
    return ObligationDetail(
        view=ObligationView(ob, notice, case),
        report=session.get(DistributorReport, ob.report_pk) if ob.report_pk else None,
        alerts=obligation_alerts(session, ob.id),
        events=audit_trail(session, "obligation", ob.id),
    )


@dataclass(frozen=True)
class UndeliverableAlert:
    """An alert that had no address at all, with the obligation it chased (if any)."""

    alert: Alert
    obligation: Obligation | None


def undeliverable_alerts(session: Session, *, limit: int) -> list[UndeliverableAlert]:
    """Alerts in state 'undeliverable', oldest first."""
    rows = session.execute(
        select(Alert, Obligation).outerjoin(Obligation, Obligation.id == Alert.obligation_id)
        .where(Alert.status == "undeliverable").order_by(Alert.id).limit(limit))
    return [UndeliverableAlert(alert, ob) for alert, ob in rows]


def list_cases(session: Session, *, states: Sequence[str] | None, regions: Collection[str] | None = None) -> list[ShortageCase]:
    """Cases in `states` (None: every case not resolved), oldest first; with `regions`, those whose city
    lies in them or with a hospital report from them (a county sees its city's cases)."""
    query = select(ShortageCase).order_by(ShortageCase.id)
    query = query.where(ShortageCase.state != CaseState.RESOLVED if states is None else ShortageCase.state.in_(list(states)))
    if regions is not None:
        codes = list(regions)
        reported_in = select(ShortageReport.case_id).where(ShortageReport.region_code.in_(codes),
                                                            ShortageReport.case_id.is_not(None))
        query = query.where(or_(ShortageCase.city_code.in_(codes), ShortageCase.id.in_(reported_in)))
    return list(session.scalars(query))


@dataclass(frozen=True)
class CaseDetail:
    case: ShortageCase
    reports: list[ShortageReport]  # by report date
    notices: list[StoppageNotice]  # stoppage notices for the case's product, by notification date
    obligations: list[Obligation]  # explanations owed about the case
    alerts: list[Alert]
    events: list[AuditEvent]  # the case's audit trail


def read_case(session: Session, case_id: int) -> CaseDetail | None:
    """One case with its hospital reports, the product's notices, its obligations, alerts and history."""
    case = session.get(ShortageCase, case_id)
    if case is None:
        return None
    return CaseDetail(
        case=case,
        reports=list(session.scalars(select(ShortageReport).where(ShortageReport.case_id == case.id)
                                     .order_by(ShortageReport.reported_on, ShortageReport.id))),
        notices=list(session.scalars(select(StoppageNotice).where(StoppageNotice.product_code == case.product_code)
                                     .order_by(StoppageNotice.notified_on))),
        obligations=list(session.scalars(select(Obligation).where(Obligation.case_id == case.id).order_by(Obligation.id))),
        alerts=case_alerts(session, case.id),
        events=audit_trail(session, "case", case.id),
    )
