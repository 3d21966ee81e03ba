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
from typing import Iterable


@dataclass(frozen=True)
class ReportView:
    """What the rules need from one hospital shortage report."""

    hospital_code: str
    reported_on: date
    supply_status: str  # short | severe | resolved
    cause: str | None
    received_at: datetime
    report_pk: int = 0


@dataclass(frozen=True)
class Part:
    hospital_code: str
    latest: ReportView
    closed: bool


def hospital_parts(reports: Iterable[ReportView], operator_closed: dict[str, datetime] | None = None) -> list[Part]:
    """One part per hospital: its latest report (by reported_on, then arrival), open or closed.

    A part an operator closed stays closed unless the hospital reported again after that.
    """
    latest: dict[str, ReportView] = {}
    for report in reports:
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
        by_operator = code in closed_at and closed_at[code] >= report.received_at
        parts.append(Part(code, report, report.supply_status == "resolved" or by_operator))
    return parts


def counts_towards_regional(part: Part) -> bool:
    return not part.closed and (part.latest.cause or "supply") != "procurement"


def possible_false_shortages(parts: Iterable[Part]) -> int:
    """Open parts whose hospital gives procurement as the cause (not a supply shortage)."""
    return sum(1 for p in parts if not p.closed and p.latest.cause == "procurement")


def is_regional(parts: Iterable[Part], hospitals: int, window_days: int) -> bool:
    """True when at least `hospitals` distinct hospitals with open supply parts reported within `window_days` days."""
    days = sorted(p.latest.reported_on for p in parts if counts_towards_regional(p))
    span = timedelta(days=window_days - 1)
    for i in range(len(days) - hospitals + 1):
        if days[i + hospitals - 1] - days[i] <= span:
            return True
    return False


def all_closed(parts: Iterable[Part]) -> bool:
    parts = list(parts)
    return bool(parts) and all(p.closed for p in parts)
