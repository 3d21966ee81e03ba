"""Read queries behind the bureau dashboard, scoped to a set of region codes.

Every function takes `regions`, the officer's region and every region below it (see
`Directory.region_and_below`), and filters in SQL with `region_code IN (...)`: a row
outside the set is never read, so it can never be shown, charted or exported. An
empty set reads nothing. A case belongs to the regions of its hospitals' reports, so a
county officer sees the cases its county's hospitals reported and only those reports.

Callers pass instants and dates (`now`, the end of the "due soon" window, month
bounds): working-day arithmetic is the calendar's, done before calling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Collection, Generic, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Select, and_, case, distinct, func, or_, select, union_all
from sqlalchemy.orm import Session

from shortage_watch.domain.obligations import case_number
from shortage_watch.domain.states import CASE_ACTIVE, CASE_ON_LADDER, OBLIGATION_IN_FLIGHT, ObligationState
from shortage_watch.store.compliance import compliance_by_distributor
from shortage_watch.store.tables import (
    Alert,
    AuditEvent,
    DistributorReport,
    Obligation,
    ShortageCase,
    ShortageReport,
    StoppageNotice,
)
from shortage_watch.store.trail_queries import addressed_within, audit_trail, case_alerts, obligation_alerts

T = TypeVar("T")

@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


# ---------------------------------------------------------------- overview


@dataclass(frozen=True)
class Overview:
    open_obligations: int
    overdue_now: int
    due_soon: int  # open and due between now and `due_soon_until`
    open_cases: int
    regional_cases: int
    distributors_late: int  # with a report due in the month that came late or is overdue now


def _cases_of(regions: Collection[str]):
    """Ids of cases with at least one hospital report from the regions."""
    return select(ShortageReport.case_id).where(ShortageReport.region_code.in_(list(regions)), ShortageReport.case_id.is_not(None))


def read_overview(
    session: Session, regions: Collection[str], *, now: datetime, due_soon_until: datetime, month: tuple[date, date]
) -> Overview:
    """The overview cards' figures for the regions."""
    if not regions:
        return Overview(0, 0, 0, 0, 0, 0)
    obligations = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Obligation.due_at < now, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(Obligation.due_at >= now, Obligation.due_at <= due_soon_until), 1), else_=0)), 0),
        ).where(Obligation.state.in_(OBLIGATION_IN_FLIGHT), Obligation.region_code.in_(list(regions)))
    ).one()
    cases = session.execute(
        select(func.count(), func.coalesce(func.sum(case((ShortageCase.state.in_(CASE_ON_LADDER), 1), else_=0)), 0)).where(
            ShortageCase.state.in_(CASE_ACTIVE), ShortageCase.id.in_(_cases_of(regions))
        )
    ).one()
    late = compliance_by_distributor(session, regions, due_from=month[0], due_to=month[1], now=now)
    return Overview(
        open_obligations=obligations[0],
        overdue_now=obligations[1],
        due_soon=obligations[2],
        open_cases=cases[0],
        regional_cases=cases[1],
        distributors_late=sum(1 for r in late if r.late or r.overdue),
    )


def _overdue_at(t: datetime, state=Obligation.state, due_at=Obligation.due_at, fulfilled_at=Obligation.fulfilled_at):
    """Overdue as it stood at t: fell due before t and not fulfilled by t (open now, or fulfilled late after t)."""
    return and_(due_at < t, or_(state.in_(OBLIGATION_IN_FLIGHT), and_(state == ObligationState.FULFILLED_LATE, fulfilled_at > t)))


@dataclass(frozen=True)
class WeekPoint:
    at: datetime  # the end of the week: figures are as they stood at this instant
    open_shortages: int
    overdue_obligations: int


def _points_before(column, points: Sequence[datetime], *, inclusive: bool):
    """How many of the ascending `points` lie before the column's value (or at it, when inclusive): one CASE cascade."""
    whens = [((column < t) if inclusive else (column <= t), k) for k, t in enumerate(points)]
    return case(*whens, else_=len(points))


def _spans_to_counts(spans: Iterable[tuple[int, int, int]], n: int) -> list[int]:
    """Counts per point from (first point inside, first point after, rows) spans."""
    counts = [0] * n
    for first, after, rows in spans:
        for k in range(first, min(after, n)):
            counts[k] += rows
    return counts


def weekly_series(session: Session, regions: Collection[str], week_ends: Sequence[datetime]) -> list[WeekPoint]:
    """Open shortage cases and overdue obligations as they stood at each instant of `week_ends`.

    An obligation was overdue at t when it fell due before t and was not fulfilled by t:
    it is open now, or it was fulfilled late after t (`_overdue_at`). On-time ones never
    were, and the ledger keeps no instant for a cancellation, so cancelled ones are left
    out. Each row is read once and placed in the span of points where it counted.
    """
    if not week_ends:
        return []
    points = sorted(week_ends)
    n = len(points)
    if not regions:
        return [WeekPoint(t, 0, 0) for t in points]
    start, end = points[0], points[-1]
    codes = list(regions)
    # Only rows overdue at some point of the window are read, each set through its own index:
    # open ones due before its end, and those fulfilled late within it.
    columns = (Obligation.due_at, Obligation.fulfilled_at)
    candidates = union_all(
        select(*columns).where(Obligation.state.in_(OBLIGATION_IN_FLIGHT), Obligation.region_code.in_(codes), Obligation.due_at < end),
        select(*columns).where(Obligation.state == ObligationState.FULFILLED_LATE, Obligation.region_code.in_(codes), Obligation.fulfilled_at > start),
    ).subquery()
    # Overdue at t_k: due_at < t_k (k >= points at or before due_at) and not fulfilled by t_k (k < points before fulfilled_at).
    first = _points_before(candidates.c.due_at, points, inclusive=True).label("first")
    after = case((candidates.c.fulfilled_at.is_(None), n), else_=_points_before(candidates.c.fulfilled_at, points, inclusive=False)).label("after")
    overdue = _spans_to_counts(session.execute(select(first, after, func.count()).select_from(candidates).group_by(first, after)), n)
    # Open at t_k: opened_at <= t_k and not resolved by t_k.
    opened = _points_before(ShortageCase.opened_at, points, inclusive=False).label("first")
    resolved = case((ShortageCase.resolved_at.is_(None), n), else_=_points_before(ShortageCase.resolved_at, points, inclusive=False)).label("after")
    shortages = _spans_to_counts(session.execute(
        select(opened, resolved, func.count())
        .where(
            ShortageCase.id.in_(_cases_of(regions)),
            ShortageCase.opened_at <= end,
            or_(ShortageCase.resolved_at.is_(None), ShortageCase.resolved_at > start),
        )
        .group_by(opened, resolved)
    ), n)
    return [WeekPoint(t, shortages[k], overdue[k]) for k, t in enumerate(points)]


# ---------------------------------------------------------------- obligations


@dataclass(frozen=True)
class ObligationFilter:
    """What an officer narrows the obligations list to; None means any."""

    state: str | None = None  # open | overdue (overdue now) | due_soon | fulfilled | fulfilled_late | cancelled
    distributor: str | None = None
    drug: str | None = None  # product code, or part of the product name
    due_from: date | None = None
    due_to: date | None = None
    priority_class: str | None = None  # negotiated | winning_bid | shortage_list | other | priority (any priority)
    due_soon_until: datetime | None = None  # the end of the "due soon" window, for state due_soon
    overdue_at: datetime | None = None  # overdue as it stood at this past instant (a chart point)


OBLIGATION_STATES = ("open", "overdue", "due_soon", "fulfilled", "fulfilled_late", "cancelled")
OBLIGATION_SORTS = {
    "due": Obligation.due_at,
    "received": Obligation.received_on,
    "distributor": Obligation.party_code,
    "region": Obligation.region_code,
    "state": Obligation.state,
    "number": Obligation.id,
}


@dataclass(frozen=True)
class ObligationRow:
    id: int
    number: str
    kind: str
    party_code: str
    region_code: str | None
    product_code: str | None
    product_name: str | None
    manufacturer: str | None
    notice_id: str | None
    priority: bool
    priority_class: str | None
    received_on: date
    due_on: date
    due_at: datetime
    calendar_status: str
    state: str
    overdue_now: bool
    level: int
    fulfilled_at: datetime | None
    late_working_days: int | None


def _obligation_select(regions: Collection[str], flt: ObligationFilter, now: datetime) -> Select:
    product_name = func.coalesce(StoppageNotice.product_name, ShortageCase.product_name)
    query = (
        select(Obligation, product_name.label("product_name"), StoppageNotice.manufacturer, StoppageNotice.notice_id, StoppageNotice.priority_class)
        .outerjoin(StoppageNotice, StoppageNotice.id == Obligation.notice_pk)
        .outerjoin(ShortageCase, ShortageCase.id == Obligation.case_id)
        .where(Obligation.region_code.in_(list(regions)))
    )
    if flt.state == "open":
        query = query.where(Obligation.state.in_(OBLIGATION_IN_FLIGHT))
    elif flt.state == "overdue":
        query = query.where(Obligation.state.in_(OBLIGATION_IN_FLIGHT), Obligation.due_at < now)
    elif flt.state == "due_soon":
        query = query.where(Obligation.state.in_(OBLIGATION_IN_FLIGHT), Obligation.due_at >= now, Obligation.due_at <= (flt.due_soon_until or now))
    elif flt.state:
        query = query.where(Obligation.state == flt.state)
    if flt.overdue_at:
        query = query.where(_overdue_at(flt.overdue_at))
    if flt.distributor:
        query = query.where(Obligation.party_code == flt.distributor)
    if flt.drug:
        query = query.where(or_(Obligation.product_code == flt.drug, product_name.contains(flt.drug, autoescape=True)))
    if flt.due_from:
        query = query.where(Obligation.due_on >= flt.due_from)
    if flt.due_to:
        query = query.where(Obligation.due_on <= flt.due_to)
    if flt.priority_class == "priority":
        query = query.where(Obligation.priority.is_(True))
    elif flt.priority_class:
        query = query.where(StoppageNotice.priority_class == flt.priority_class)
    return query


def _obligation_row(row, now: datetime) -> ObligationRow:
    ob: Obligation = row[0]
    return ObligationRow(
        id=ob.id,
        number=case_number("O", ob.id),
        kind=ob.kind,
        party_code=ob.party_code,
        region_code=ob.region_code,
        product_code=ob.product_code,
        product_name=row.product_name,
        manufacturer=row.manufacturer,
        notice_id=row.notice_id,
        priority=ob.priority,
        priority_class=row.priority_class,
        received_on=ob.received_on,
        due_on=ob.due_on,
        due_at=ob.due_at,
        calendar_status=ob.calendar_status,
        state=ob.state,
        overdue_now=ob.state in OBLIGATION_IN_FLIGHT and ob.due_at < now,
        level=ob.level,
        fulfilled_at=ob.fulfilled_at,
        late_working_days=ob.late_working_days,
    )


def _ordered(query: Select, sorts: dict, sort: str, descending: bool, tiebreak) -> Select:
    column = sorts.get(sort, next(iter(sorts.values())))
    return query.order_by(column.desc() if descending else column.asc(), tiebreak.desc() if descending else tiebreak.asc())


def _paged(session: Session, query: Select, page: int, page_size: int) -> tuple[list, int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = max(1, page)
    # A page past the end is empty; the offset stops at the end so a page number of any size fits the database's integer.
    rows = session.execute(query.limit(page_size).offset(min((page - 1) * page_size, total))).all()
    return rows, total


def list_obligations(
    session: Session, regions: Collection[str], flt: ObligationFilter, *, now: datetime, sort: str = "due", descending: bool = False, page: int = 1, page_size: int = 50
) -> Page[ObligationRow]:
    """One page of the regions' obligations matching `flt`, in the order asked (then by number)."""
    if not regions:
        return Page([], 0, 1, page_size)
    # Page through ids alone (an index-only scan for the usual filters), then read the page's rows.
    ids = _ordered(_obligation_select(regions, flt, now).with_only_columns(Obligation.id), OBLIGATION_SORTS, sort, descending, Obligation.id)
    found, total = _paged(session, ids, page, page_size)
    wanted = [r[0] for r in found]
    rows = {r[0].id: r for r in session.execute(_obligation_select(regions, ObligationFilter(), now).where(Obligation.id.in_(wanted)))} if wanted else {}
    return Page([_obligation_row(rows[i], now) for i in wanted], total, max(1, page), page_size)


def iter_obligations(
    session: Session, regions: Collection[str], flt: ObligationFilter, *, now: datetime, sort: str = "due", descending: bool = False
) -> Iterator[ObligationRow]:
    """Every obligation `list_obligations` would page through, in the same order (for exports)."""
    if not regions:
        return
    query = _ordered(_obligation_select(regions, flt, now), OBLIGATION_SORTS, sort, descending, Obligation.id)
    for row in session.execute(query.execution_options(yield_per=2000)):
        yield _obligation_row(row, now)


# ---------------------------------------------------------------- shortage cases


@dataclass(frozen=True)
class CaseFilter:
    status: str | None = None  # open | regional | escalated | resolved | active (not resolved)
    drug: str | None = None
    city: str | None = None
    regional: bool | None = None  # became a regional shortage (or not)
    false_shortage: bool | None = None  # a hospital gave procurement as the cause (possible 假短缺)
    open_at: datetime | None = None  # open as it stood at this past instant (a chart point)


CASE_STATUSES = ("active", "open", "regional", "escalated", "resolved")
CASE_SORTS = {
    "opened": ShortageCase.opened_at,
    "drug": ShortageCase.product_name,
    "city": ShortageCase.city_code,
    "status": ShortageCase.state,
    "number": ShortageCase.id,
}


@dataclass(frozen=True)
class CaseRow:
    id: int
    number: str
    product_code: str
    product_name: str
    city_code: str
    state: str
    opened_at: datetime
    regional_at: datetime | None
    resolved_at: datetime | None
    resolution_note: str | None
    hospitals: int  # distinct hospitals of the regions that reported
    false_shortage_reports: int  # of those reports, how many cite procurement


def _case_select(regions: Collection[str], flt: CaseFilter) -> Select:
    codes = list(regions)
    query = select(ShortageCase).where(ShortageCase.id.in_(_cases_of(codes)))
    if flt.status == "active":
        query = query.where(ShortageCase.state.in_(CASE_ACTIVE))
    elif flt.status:
        query = query.where(ShortageCase.state == flt.status)
    if flt.open_at:
        query = query.where(ShortageCase.opened_at <= flt.open_at, or_(ShortageCase.resolved_at.is_(None), ShortageCase.resolved_at > flt.open_at))
    if flt.drug:
        query = query.where(or_(ShortageCase.product_code == flt.drug, ShortageCase.product_name.contains(flt.drug, autoescape=True)))
    if flt.city:
        query = query.where(ShortageCase.city_code == flt.city)
    if flt.regional is True:
        query = query.where(ShortageCase.regional_at.is_not(None))
    elif flt.regional is False:
        query = query.where(ShortageCase.regional_at.is_(None))
    if flt.false_shortage is not None:
        procurement = select(ShortageReport.case_id).where(ShortageReport.cause == "procurement", ShortageReport.region_code.in_(codes))
        query = query.where(ShortageCase.id.in_(procurement) if flt.false_shortage else ShortageCase.id.not_in(procurement))
    return query


def _case_rows(session: Session, regions: Collection[str], cases: list[ShortageCase]) -> list[CaseRow]:
    if not cases:
        return []
    counts = {
        r.case_id: r
        for r in session.execute(
            select(
                ShortageReport.case_id,
                func.count(distinct(ShortageReport.hospital_code)).label("hospitals"),
                func.coalesce(func.sum(case((ShortageReport.cause == "procurement", 1), else_=0)), 0).label("false_reports"),
            )
            .where(ShortageReport.case_id.in_([c.id for c in cases]), ShortageReport.region_code.in_(list(regions)))
            .group_by(ShortageReport.case_id)
        )
    }
    return [
        CaseRow(
            c.id, case_number("C", c.id), c.product_code, c.product_name, c.city_code, c.state, c.opened_at, c.regional_at, c.resolved_at,
            c.resolution_note, counts[c.id].hospitals if c.id in counts else 0, counts[c.id].false_reports if c.id in counts else 0,
        )
        for c in cases
    ]


def list_cases(
    session: Session, regions: Collection[str], flt: CaseFilter, *, sort: str = "opened", descending: bool = True, page: int = 1, page_size: int = 50
) -> Page[CaseRow]:
    """One page of the cases the regions' hospitals reported, matching `flt`."""
    if not regions:
        return Page([], 0, 1, page_size)
    query = _ordered(_case_select(regions, flt), CASE_SORTS, sort, descending, ShortageCase.id)
    rows, total = _paged(session, query, page, page_size)
    return Page(_case_rows(session, regions, [r[0] for r in rows]), total, max(1, page), page_size)


def iter_cases(session: Session, regions: Collection[str], flt: CaseFilter, *, sort: str = "opened", descending: bool = True) -> Iterator[CaseRow]:
    """Every case `list_cases` would page through, in the same order (for exports)."""
    if not regions:
        return
    query = _ordered(_case_select(regions, flt), CASE_SORTS, sort, descending, ShortageCase.id)
    batch: list[ShortageCase] = []
    for (row,) in session.execute(query):
        batch.append(row)
        if len(batch) == 500:
            yield from _case_rows(session, regions, batch)
            batch = []
    yield from _case_rows(session, regions, batch)


# ---------------------------------------------------------------- stoppage notices


@dataclass(frozen=True)
class NoticeFilter:
    drug: str | None = None
    distributor: str | None = None
    manufacturer: str | None = None  # part of the name
    kind: str | None = None  # stoppage | interruption | reduction
    priority_class: str | None = None
    notified_from: date | None = None
    notified_to: date | None = None


NOTICE_SORTS = {
    "notified": StoppageNotice.notified_on,
    "drug": StoppageNotice.product_name,
    "distributor": StoppageNotice.distributor_code,
    "manufacturer": StoppageNotice.manufacturer,
}


@dataclass(frozen=True)
class NoticeRow:
    id: int
    notice_id: str
    distributor_code: str
    distributor_name: str | None
    manufacturer: str
    product_code: str
    product_name: str
    specification: str | None
    kind: str
    notified_on: date
    region_code: str | None
    expected_resume_on: date | None
    priority_class: str | None
    reason: str | None
    obligation_id: int | None
    obligation_state: str | None


def _notice_select(regions: Collection[str], flt: NoticeFilter) -> Select:
    query = (
        select(StoppageNotice, Obligation.id.label("obligation_id"), Obligation.state.label("obligation_state"))
        .outerjoin(Obligation, and_(Obligation.notice_pk == StoppageNotice.id, Obligation.kind == "report"))
        .where(StoppageNotice.region_code.in_(list(regions)))
    )
    if flt.drug:
        query = query.where(or_(StoppageNotice.product_code == flt.drug, StoppageNotice.product_name.contains(flt.drug, autoescape=True)))
    if flt.distributor:
        query = query.where(StoppageNotice.distributor_code == flt.distributor)
    if flt.manufacturer:
        query = query.where(StoppageNotice.manufacturer.contains(flt.manufacturer, autoescape=True))
    if flt.kind:
        query = query.where(StoppageNotice.kind == flt.kind)
    if flt.priority_class:
        query = query.where(StoppageNotice.priority_class == flt.priority_class)
    if flt.notified_from:
        query = query.where(StoppageNotice.notified_on >= flt.notified_from)
    if flt.notified_to:
        query = query.where(StoppageNotice.notified_on <= flt.notified_to)
    return query


def _notice_row(row) -> NoticeRow:
    n: StoppageNotice = row[0]
    return NoticeRow(
        n.id, n.notice_id, n.distributor_code, n.distributor_name, n.manufacturer, n.product_code, n.product_name, n.specification, n.kind,
        n.notified_on, n.region_code, n.expected_resume_on, n.priority_class, n.reason, row.obligation_id, row.obligation_state,
    )


def list_notices(
    session: Session, regions: Collection[str], flt: NoticeFilter, *, sort: str = "notified", descending: bool = True, page: int = 1, page_size: int = 50
) -> Page[NoticeRow]:
    """One page of the stoppage notices received by distributors of the regions."""
    if not regions:
        return Page([], 0, 1, page_size)
    query = _ordered(_notice_select(regions, flt), NOTICE_SORTS, sort, descending, StoppageNotice.id)
    rows, total = _paged(session, query, page, page_size)
    return Page([_notice_row(r) for r in rows], total, max(1, page), page_size)


def iter_notices(session: Session, regions: Collection[str], flt: NoticeFilter, *, sort: str = "notified", descending: bool = True) -> Iterator[NoticeRow]:
    if not regions:
        return
    query = _ordered(_notice_select(regions, flt), NOTICE_SORTS, sort, descending, StoppageNotice.id)
    for row in session.execute(query.execution_options(yield_per=2000)):
        yield _notice_row(row)


# ---------------------------------------------------------------- details


@dataclass
class ObligationDetail:
    obligation: ObligationRow
    subject_key: str
    opened_at: datetime
    notice: StoppageNotice | None
    report: DistributorReport | None
    alerts: list[Alert]
    events: list[AuditEvent]


def read_obligation(session: Session, regions: Collection[str], obligation_id: int, *, now: datetime) -> ObligationDetail | None:
    """The obligation with its notice, report, the alerts addressed within the regions and every audit event;
    None outside the regions."""
    if not regions:
        return None
    row = session.execute(_obligation_select(regions, ObligationFilter(), now).where(Obligation.id == obligation_id)).first()
    if row is None:
        return None
    ob: Obligation = row[0]
    return ObligationDetail(
        obligation=_obligation_row(row, now),
        subject_key=ob.subject_key,
        opened_at=ob.opened_at,
        notice=session.get(StoppageNotice, ob.notice_pk) if ob.notice_pk else None,
        report=session.get(DistributorReport, ob.report_pk) if ob.report_pk else None,
        alerts=obligation_alerts(session, ob.id, regions),
        events=audit_trail(session, "obligation", ob.id),
    )


@dataclass
class CaseDetail:
    case: CaseRow
    reports: list[ShortageReport]  # only the regions' hospitals
    notices: list[NoticeRow]  # stoppage notices for the product, in the regions
    obligations: list[ObligationRow]  # explanations owed about the case, in the regions
    alerts: list[Alert]
    events: list[AuditEvent]  # the case's, less the parts closed for hospitals outside the regions


def read_case(session: Session, regions: Collection[str], case_id: int, *, now: datetime) -> CaseDetail | None:
    """The case as the regions see it: their hospitals' reports, notices, obligations, alerts, audit events."""
    if not regions:
        return None
    found = session.execute(_case_select(regions, CaseFilter()).where(ShortageCase.id == case_id)).first()
    if found is None:
        return None
    codes = list(regions)
    case_row = _case_rows(session, regions, [found[0]])[0]
    reports = list(session.scalars(
        select(ShortageReport).where(ShortageReport.case_id == case_id, ShortageReport.region_code.in_(codes)).order_by(ShortageReport.reported_on, ShortageReport.id)
    ))
    notices = [_notice_row(r) for r in session.execute(
        _notice_select(regions, NoticeFilter()).where(StoppageNotice.product_code == case_row.product_code).order_by(StoppageNotice.notified_on, StoppageNotice.id)
    )]
    obligations = [_obligation_row(r, now) for r in session.execute(
        _obligation_select(regions, ObligationFilter(), now).where(Obligation.case_id == case_id).order_by(Obligation.id)
    )]
    # A city case spans counties: a part closed for another region's hospital names that hospital and the
    # officer's note, which are that region's, not these regions'.
    in_scope = {r.hospital_code for r in reports}
    events = [e for e in audit_trail(session, "case", case_id)
              if e.action != "part_closed" or (e.detail or {}).get("hospital_code") in in_scope]
    return CaseDetail(
        case=case_row,
        reports=reports,
        notices=notices,
        obligations=obligations,
        alerts=case_alerts(session, case_id, regions),
        events=events,
    )


@dataclass
class DistributorHistory:
    distributor_code: str
    obligations: list[ObligationRow]  # every one of the regions, newest first
    reported: list[tuple[date, datetime]]  # (received_on, fulfilled_at) of each reported obligation: days to report
    alerts: list[Alert] = field(default_factory=list)  # mail sent about its obligations (reminders, 约谈 recommendations)


def read_distributor(session: Session, regions: Collection[str], distributor_code: str, *, now: datetime) -> DistributorHistory | None:
    """Every obligation the distributor owed in the regions and the mail about them addressed within the regions;
    None when it owed none there."""
    if not regions:
        return None
    rows = [_obligation_row(r, now) for r in session.execute(
        _obligation_select(regions, ObligationFilter(distributor=distributor_code), now).order_by(Obligation.received_on.desc(), Obligation.id.desc())
    )]
    if not rows:
        return None
    ids = [r.id for r in rows]
    alerts: list[Alert] = []
    for start in range(0, len(ids), 500):
        alerts.extend(session.scalars(select(Alert).where(Alert.obligation_id.in_(ids[start:start + 500]), addressed_within(regions))))
    alerts.sort(key=lambda a: (a.created_at, a.id))
    reported = [(r.received_on, r.fulfilled_at) for r in rows if r.fulfilled_at is not None and r.kind == "report"]
    return DistributorHistory(distributor_code, rows, reported, alerts)

