"""What the ledger reads before it writes: obligations by subject, the explanations owed about
a product, a case's hospital reports, obligations' alerts already mailed (a chunk of hospital
reports reads and locks its cases through store/case_rows.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT
from shortage_watch.store.tables import Alert, Obligation, ShortageReport


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


def sent_alerts_of_obligations(session: Session, obligation_ids: list[int]) -> list[tuple[int, str, datetime, datetime]]:
    """(obligation_id, template, sent_at, created_at) of the obligations' alerts that went out; one query."""
    # Through the obligations' index alone: with the status in the WHERE, SQLite took the status index and read
    # every sent alert of the ledger (3-4 per obligation ever opened) for each sweep batch. An obligation's own
    # alerts are few: those not sent are dropped here.
    return [(obligation_id, template, sent_at, created_at) for obligation_id, template, status, sent_at, created_at in session.execute(
        select(Alert.obligation_id, Alert.template, Alert.status, Alert.sent_at, Alert.created_at).where(Alert.obligation_id.in_(obligation_ids))
    ) if status == "sent" and sent_at is not None]
