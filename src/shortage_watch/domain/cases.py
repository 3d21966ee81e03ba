"""Shortage cases as pure rules: which hospital parts are open, regional threshold, false shortages.

A case is one product short in one city. Each hospital's *part* is its latest report
for the product in the case; the part is closed when that report says `resolved` or
an operator closed it afterwards. `K` hospitals of the city with open supply-shortage
parts reported within `W` days make a regional shortage (004_aea777e603efdd99.txt, 四(五)).
Reports whose cause is `procurement` are counted apart as possible false shortages
(003_c323ed203481ac0b.txt, 五): they never count towards K.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from shortage_watch.domain.states import CaseState


@dataclass(frozen=True)
class ReportView:
    """What the rules need from one hospital shortage report."""

    hospital_code: str
    reported_on: date
    supply_status: str  # short | severe | resolved
    cause: str | None
    received_at: datetime
    report_pk: int = 0
    changed_at: datetime | None = None  # when the hospital last revised it (None: as received)


def report_view(report: Any) -> ReportView:
    """What the rules read of a hospital report (its row, or anything with its columns)."""
    return ReportView(report.hospital_code, report.reported_on, report.supply_status, report.cause, report.received_at, report.id,
                      report.updated_at)


@dataclass(frozen=True)
class Part:
    hospital_code: str
    latest: ReportView
    closed: bool
    short_on: tuple[date, ...] = ()  # the days of its reports saying short or severe for supply, ascending


def hospital_parts(reports: Iterable[ReportView], operator_closed: dict[str, datetime] | None = None) -> list[Part]:
    """One part per hospital: its latest report (by reported_on, then arrival), open or closed.

    A part an operator closed stays closed unless the hospital reported again after that (a new report, or a
    revision of its latest).
    """
    latest: dict[str, ReportView] = {}
    short_on: dict[str, set[date]] = {}
    for report in reports:
        if report.supply_status != "resolved" and report.cause != "procurement":
            short_on.setdefault(report.hospital_code, set()).add(report.reported_on)
        current = latest.get(report.hospital_code)
        if current is None or (report.reported_on, report.received_at, report.report_pk) >= (
            current.reported_on,
            current.received_at,
            current.report_pk,
        ):
            latest[report.hospital_code] = report
    closed_at = operator_closed or {}
    parts = []
    for code, report in sorted(latest.items()):
        by_operator = code in closed_at and closed_at[code] >= (report.changed_at or report.received_at)
        parts.append(Part(code, report, report.supply_status == "resolved" or by_operator, tuple(sorted(short_on.get(code, ())))))
    return parts


def operator_closures_of(closings: Iterable[tuple[datetime, dict | None]]) -> dict[str, datetime]:
    """Hospital parts an operator closed, from the case's `part_closed` audit entries (when, detail):
    hospital code -> the latest time."""
    closed: dict[str, datetime] = {}
    for at, detail in closings:
        code = (detail or {}).get("hospital_code")
        if code:
            closed[code] = max(at, closed.get(code, at))
    return closed


def counts_towards_regional(part: Part) -> bool:
    return not part.closed and (part.latest.cause or "supply") != "procurement"


def possible_false_shortages(parts: Iterable[Part]) -> int:
    """Open parts whose hospital gives procurement as the cause (not a supply shortage)."""
    return sum(1 for p in parts if not p.closed and p.latest.cause == "procurement")


def is_regional(parts: Iterable[Part], hospitals: int, window_days: int) -> bool:
    """True when at least `hospitals` distinct hospitals with open supply parts reported short within one span
    of `window_days` days: any of each one's reports counts, not only its latest (a hospital still short
    that sent a follow-up was short with the others all along)."""
    reported = sorted((day, p.hospital_code) for p in parts if counts_towards_regional(p) for day in p.short_on)
    span = timedelta(days=window_days - 1)
    within: dict[str, int] = {}  # hospital -> its reports in the window [reported[start], reported[end]]
    start = 0
    for day, code in reported:
        within[code] = within.get(code, 0) + 1
        while day - reported[start][0] > span:
            first = reported[start][1]
            within[first] -= 1
            if not within[first]:
                del within[first]
            start += 1
        if len(within) >= hospitals:
            return True
    return False


def all_closed(parts: Iterable[Part]) -> bool:
    parts = list(parts)
    return bool(parts) and all(p.closed for p in parts)


def report_asks(supply_status: str, cause: str | None, distributor_code: str | None) -> str | None:
    """What a report joining its case asks of the ledger besides joining: `false_shortage` (an open part
    blaming procurement: the bureaus are told), `explanation` (an open part naming its distributor: it owes
    an explanation, unless a notice explains the product) or None."""
    if supply_status == "resolved":
        return None
    if cause == "procurement":
        return "false_shortage"
    return "explanation" if distributor_code else None


@dataclass(frozen=True)
class AfterJoining:
    """Where a case stands once a report joined it: whether it becomes regional now, and whether every part is closed."""

    becomes_regional: bool
    resolved: bool


def after_joining(parts: list[Part], state: str, hospitals: int, window_days: int) -> AfterJoining:
    """An open case turns regional when K hospitals reported within W days (`is_regional`); any case is
    resolved when every hospital's part is closed."""
    return AfterJoining(state == CaseState.OPEN and is_regional(parts, hospitals, window_days), all_closed(parts))
