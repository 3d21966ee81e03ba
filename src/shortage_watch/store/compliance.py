"""Distributor compliance, defined once: the CLI `compliance`, the monthly summary and the dashboard count this way.

A distributor's report obligations (not cancelled) whose deadline falls in [due_from, due_to]:
on time (fulfilled), late (fulfilled_late), overdue now (open, past due at `now`) and not yet
due. `regions` narrows to obligations in those region codes (an empty set reads nothing);
None means every region. Working-day arithmetic (days to report) is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Collection, Sequence

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, ObligationState
from shortage_watch.store.tables import Obligation


def _compliance_sums(now: datetime) -> tuple[Any, ...]:
    """obligations, on time, late, overdue now, not yet due."""
    open_ = Obligation.state.in_(OBLIGATION_IN_FLIGHT)
    return (
        func.count().label("obligations"),
        func.coalesce(func.sum(case((Obligation.state == ObligationState.FULFILLED, 1), else_=0)), 0).label("on_time"),
        func.coalesce(func.sum(case((Obligation.state == ObligationState.FULFILLED_LATE, 1), else_=0)), 0).label("late"),
        func.coalesce(func.sum(case((and_(open_, Obligation.due_at < now), 1), else_=0)), 0).label("overdue"),
        func.coalesce(func.sum(case((and_(open_, Obligation.due_at >= now), 1), else_=0)), 0).label("open"),
    )


def _compliance_scope(regions: Collection[str] | None, due_from: date | None, due_to: date | None,
                      distributor: str | None = None) -> list[Any]:
    """Report obligations (not cancelled) of the regions (None: all), due within the range."""
    where: list[Any] = [Obligation.kind == "report", Obligation.state != ObligationState.CANCELLED]
    if regions is not None:
        where.append(Obligation.region_code.in_(list(regions)))
    if due_from is not None:
        where.append(Obligation.due_on >= due_from)
    if due_to is not None:
        where.append(Obligation.due_on <= due_to)
    if distributor:
        where.append(Obligation.party_code == distributor)
    return where


def on_time_rate(on_time: int, late: int, overdue: int) -> float | None:
    """On-time reports among those that fell due (on time + late + overdue now); None when none did."""
    decided = on_time + late + overdue
    return on_time / decided if decided else None


@dataclass(frozen=True)
class ComplianceRow:
    """One distributor's report obligations due in a period: the monthly summary's table row."""

    distributor_code: str
    obligations: int
    on_time: int
    late: int
    overdue: int
    open: int

    @property
    def on_time_rate(self) -> float | None:
        return on_time_rate(self.on_time, self.late, self.overdue)


def compliance_by_distributor(
    session: Session, regions: Collection[str] | None, *, due_from: date | None, due_to: date | None, now: datetime,
    distributor: str | None = None,
) -> list[ComplianceRow]:
    """Per distributor, its report obligations due in [due_from, due_to]; most overdue, then most late, first."""
    if regions is not None and not regions:
        return []
    query = (select(Obligation.party_code, *_compliance_sums(now))
             .where(*_compliance_scope(regions, due_from, due_to, distributor)).group_by(Obligation.party_code))
    rows = [ComplianceRow(r.party_code, r.obligations, r.on_time, r.late, r.overdue, r.open) for r in session.execute(query)]
    return sorted(rows, key=lambda r: (-r.overdue, -r.late, r.distributor_code))


@dataclass(frozen=True)
class ReportTurnaround:
    """One fulfilled report obligation of the compliance scope: when it was owed from and when it was met."""

    distributor_code: str
    received_on: date
    fulfilled_at: datetime


def report_turnarounds(
    session: Session, regions: Collection[str] | None, *, due_from: date | None, due_to: date | None,
) -> list[ReportTurnaround]:
    """The fulfilled report obligations counted by `compliance_by_distributor`, for days-to-report figures."""
    if regions is not None and not regions:
        return []
    query = (select(Obligation.party_code, Obligation.received_on, Obligation.fulfilled_at)
             .where(*_compliance_scope(regions, due_from, due_to), Obligation.fulfilled_at.is_not(None))
             .order_by(Obligation.party_code, Obligation.id))
    return [ReportTurnaround(code, received_on, fulfilled_at) for code, received_on, fulfilled_at in session.execute(query)]


@dataclass(frozen=True)
class MonthRate:
    first: date
    last: date
    on_time: int
    late: int
    overdue: int

    @property
    def on_time_rate(self) -> float | None:
        return on_time_rate(self.on_time, self.late, self.overdue)


def on_time_by_month(session: Session, regions: Collection[str], months: Sequence[tuple[date, date]], now: datetime) -> list[MonthRate]:
    """For each (first, last) month, its report obligations counted as in `compliance_by_distributor`."""
    if not months:
        return []
    if not regions:
        return [MonthRate(first, last, 0, 0, 0) for first, last in months]
    sums = _compliance_sums(now)
    query = (
        select(Obligation.due_on, sums[1], sums[2], sums[3])
        .where(*_compliance_scope(regions, min(m[0] for m in months), max(m[1] for m in months)))
        .group_by(Obligation.due_on)
    )
    per_day = session.execute(query).all()
    out = []
    for first, last in months:
        inside = [r for r in per_day if first <= r.due_on <= last]
        out.append(MonthRate(first, last, sum(r.on_time for r in inside), sum(r.late for r in inside), sum(r.overdue for r in inside)))
    return out
