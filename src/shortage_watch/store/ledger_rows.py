"""What the ledger reads before it writes: obligations by subject, the explanations owed about
a product, a case's hospital reports, obligations' alerts already mailed (a chunk of hospital
reports reads and locks its cases through store/case_rows.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import and_, case, func, select, type_coerce
from sqlalchemy.orm import Session

from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT
from shortage_watch.store.tables import Alert, Obligation, ShortageReport, UTCDateTime


def obligation_by_subject(session: Session, kind: str, subject_key: str) -> Obligation | None:
    """The obligation of this kind about this subject, if one was opened."""
    return session.scalars(select(Obligation).where(Obligation.kind == kind, Obligation.subject_key == subject_key)).first()


def report_obligation_notices(session: Session, subject_keys: Iterable[str]) -> list[tuple[str, int | None]]:
    """(subject_key, notice_pk) of the report obligations with these subject keys."""
    # One IN list on the unique (kind, subject_key) index: an OR of two conditions lets SQLite scan
    # every report obligation, a cost that grows with the ledger.
    return [(key, notice_pk) for key, notice_pk in session.execute(
        select(Obligation.subject_key, Obligation.notice_pk).where(Obligation.kind == "report", Obligation.subject_key.in_(list(subject_keys)))
    )]


def open_explanations_about(session: Session, product_codes: list[str]) -> list[Obligation]:
    """The open explanation obligations about any of the products, by id."""
    return list(session.scalars(
        select(Obligation).where(
            Obligation.kind == "explanation", Obligation.product_code.in_(product_codes), Obligation.state.in_(OBLIGATION_IN_FLIGHT)
        ).order_by(Obligation.id)
    ))


def hospital_reports_of_case(session: Session, case_id: int) -> list[ShortageReport]:
    """The hospital reports joined to the case."""
    return list(session.scalars(select(ShortageReport).where(ShortageReport.case_id == case_id)))


def first_mailings(session: Session, subject: str, ids: list[int], now: datetime, before: datetime | None = None) -> list[tuple[int, str, datetime]]:
    """(id, template, when first mailed) of each template the alerts about obligations (`subject` "O") or cases ("C")
    `ids` went out under, mailed before `before` when given; one query."""
    about = Alert.obligation_id if subject == "O" else Alert.case_id
    # sent_at is read from the real clock; in a replay (`once --now` in the past) it lies after the ledger's
    # `now`, and the ledger instant the alert was written stands in for it.
    mailed = case((Alert.sent_at <= now, Alert.sent_at), else_=Alert.created_at)
    # The status is tested in the aggregate, not the WHERE: with it there, SQLite (no statistics) took
    # ix_alerts_status_next_attempt and read every sent alert of the ledger for each sweep batch.
    first = type_coerce(func.min(case((and_(Alert.status == "sent", Alert.sent_at.is_not(None)), mailed))), UTCDateTime)
    query = select(about, Alert.template, first).where(about.in_(ids)).group_by(about, Alert.template).having(first.is_not(None))
    if before is not None:
        query = query.having(first < before)
    return [tuple(row) for row in session.connection().execute(query)]
