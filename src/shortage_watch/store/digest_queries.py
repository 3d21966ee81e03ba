"""What the daily digests and the monthly summary read and mark: typed snapshots of the ledger.

Region filtering is the caller's (a digest is per contact, and one snapshot serves every
contact of a run); these reads are bounded by time windows instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Collection, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shortage_watch.domain.cases import operator_closures_of
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, CaseState, ObligationState
from shortage_watch.store.case_rows import part_closures_of_cases
from shortage_watch.store.tables import Alert, Obligation, RawReceipt, ShortageCase, ShortageReport, Silence, StoppageNotice


def outbox_has(session: Session, dedup_key: str) -> bool:
    """True when a mail with this dedup key was written already (by this replica or another)."""
    return session.scalar(select(Alert.id).where(Alert.dedup_key == dedup_key)) is not None


def latest_written(session: Session, dedup_keys: Collection[str]) -> datetime | None:
    """When the latest of these outbox rows was written (None when none was): one indexed read of the keys."""
    if not dedup_keys:
        return None
    return session.scalar(select(func.max(Alert.created_at)).where(Alert.dedup_key.in_(list(dedup_keys))))


@dataclass
class DigestSnapshot:
    """The ledger rows every digest of one run draws on, read once (not once per contact)."""

    notices: list[StoppageNotice]  # received in [since, now), `since` the earliest of the run's windows
    notice_obligations: dict[int, Obligation]  # their report obligations, by notice row id
    overdue: list[Obligation]  # open and past due at `now`
    late: list[Obligation]  # fulfilled late, the ledger learning it in [since, now) (`updated_at`)
    cases: list[ShortageCase]  # not resolved
    reports_by_case: dict[int, list[ShortageReport]]
    products: dict[str, str]  # product names by code, for the overdue and late obligations
    closures_by_case: dict[int, dict[str, datetime]]  # hospital parts an officer closed, by case (`operator_closures_of`)


def read_digest_snapshot(session: Session, since: datetime, now: datetime) -> DigestSnapshot:
    notices = list(session.scalars(
        select(StoppageNotice).where(StoppageNotice.received_at >= since, StoppageNotice.received_at < now).order_by(StoppageNotice.received_at)
    ))
    overdue = list(session.scalars(select(Obligation).where(Obligation.state.in_(OBLIGATION_IN_FLIGHT), Obligation.due_at < now).order_by(Obligation.due_at)))
    # By when the ledger learned it, not by the submission time the report states (fulfilled_at): a report
    # submitted before the previous digest but received after it is still news.
    late = list(session.scalars(
        select(Obligation).where(Obligation.state == ObligationState.FULFILLED_LATE, Obligation.updated_at >= since, Obligation.updated_at < now)
    ))
    cases = list(session.scalars(select(ShortageCase).where(ShortageCase.state != CaseState.RESOLVED).order_by(ShortageCase.opened_at)))
    reports_by_case: dict[int, list[ShortageReport]] = {}
    if cases:
        for report in session.scalars(select(ShortageReport).where(ShortageReport.case_id.in_([c.id for c in cases]))):
            reports_by_case.setdefault(report.case_id or 0, []).append(report)
    closings: dict[int, list[tuple[datetime, dict | None]]] = {}
    for case_id, at, detail in part_closures_of_cases(session, [c.id for c in cases]):
        closings.setdefault(case_id, []).append((at, detail))
    codes = {ob.product_code for ob in overdue + late if ob.product_code}
    return DigestSnapshot(notices, obligations_by_notice(session, [n.id for n in notices]), overdue, late, cases,
                          reports_by_case, product_names(session, codes),
                          {case_id: operator_closures_of(found) for case_id, found in closings.items()})


def obligations_by_notice(session: Session, notice_pks: Collection[int]) -> dict[int, Obligation]:
    """The obligations the notices opened, by notice row id."""
    if not notice_pks:
        return {}
    return {ob.notice_pk: ob for ob in session.scalars(select(Obligation).where(Obligation.notice_pk.in_(list(notice_pks))))
            if ob.notice_pk is not None}


def product_names(session: Session, codes: Collection[str]) -> dict[str, str]:
    """Product names by code, from the notices and cases that mention them."""
    names: dict[str, str] = {}
    if not codes:
        return names
    for code, name in session.execute(select(StoppageNotice.product_code, StoppageNotice.product_name).where(StoppageNotice.product_code.in_(list(codes)))):
        names.setdefault(code, name)
    for code, name in session.execute(select(ShortageCase.product_code, ShortageCase.product_name).where(ShortageCase.product_code.in_(list(codes)))):
        names.setdefault(code, name)
    return names


def waiting_digest_alerts(session: Session, email: str) -> list[Alert]:
    """The single alerts for `email` waiting to be covered by its next digest, by id."""
    return list(session.scalars(select(Alert).where(Alert.status == "digest", Alert.recipient_email == email).order_by(Alert.id)))


def mark_digested(session: Session, alert_ids: Sequence[int], dedup_key: str) -> None:
    """The digest `dedup_key` covers these single alerts: they are done (those still waiting)."""
    if alert_ids:
        session.execute(
            update(Alert).where(Alert.id.in_(list(alert_ids)), Alert.status == "digest")
            .values(status="digested", last_error=f"covered by {dedup_key}").execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class HeldAlert:
    alert: Alert
    until: datetime  # when the holding silence ends
    reason: str  # why it was set


def held_alerts_for(session: Session, email: str) -> list[HeldAlert]:
    """The alerts a silence holds for `email`, with the silence's end and reason, by id."""
    rows = session.execute(
        select(Alert, Silence.ends_at, Silence.reason)
        .join(Silence, Silence.id == Alert.silence_id)
        .where(Alert.status == "held", Alert.recipient_email == email)
        .order_by(Alert.id)
    ).all()
    return [HeldAlert(alert, ends_at, reason) for alert, ends_at, reason in rows]


def receipts_with_warnings(session: Session, since: datetime, now: datetime) -> list[RawReceipt]:
    """Files received in [since, now) whose accepted rows named a party the directory does not list."""
    return list(session.scalars(
        select(RawReceipt).where(RawReceipt.received_at >= since, RawReceipt.received_at < now, RawReceipt.warnings.is_not(None))
        .order_by(RawReceipt.received_at, RawReceipt.id)))


def shortage_reports_between(session: Session, first: date, last: date) -> list[ShortageReport]:
    """Hospital reports dated in [first, last], by product then date."""
    return list(session.scalars(
        select(ShortageReport).where(ShortageReport.reported_on >= first, ShortageReport.reported_on <= last)
        .order_by(ShortageReport.product_code, ShortageReport.reported_on)))


def cases_by_id(session: Session, case_ids: Collection[int]) -> dict[int, ShortageCase]:
    if not case_ids:
        return {}
    return {c.id: c for c in session.scalars(select(ShortageCase).where(ShortageCase.id.in_(list(case_ids))))}


def notices_notified_between(session: Session, first: date, last: date) -> list[StoppageNotice]:
    """Stoppage notices notified in [first, last], by notification date."""
    return list(session.scalars(
        select(StoppageNotice).where(StoppageNotice.notified_on >= first, StoppageNotice.notified_on <= last)
        .order_by(StoppageNotice.notified_on)))


@dataclass
class MonthSnapshot:
    """The rows every monthly summary of one month draws on, read once for all recipients."""

    first: date
    last: date
    reports: list[ShortageReport]  # hospital reports dated in the month, by product then date
    cases: dict[int, ShortageCase]  # their cases, by id
    notices: list[StoppageNotice]  # notified in the month
    notice_obligations: dict[int, Obligation]  # their report obligations, by notice row id


def read_month_snapshot(session: Session, first: date, last: date) -> MonthSnapshot:
    reports = shortage_reports_between(session, first, last)
    notices = notices_notified_between(session, first, last)
    return MonthSnapshot(first, last, reports, cases_by_id(session, {r.case_id for r in reports if r.case_id is not None}),
                         notices, obligations_by_notice(session, [n.id for n in notices]))
