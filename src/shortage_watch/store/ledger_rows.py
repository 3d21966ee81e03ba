"""What the ledger reads before it writes: obligations by subject, a product's open case and
the explanations owed about it, a case's hospital reports, alerts already mailed;
and the lock that serialises the writers of one case key."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Iterable

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, CaseState
from shortage_watch.store.tables import Alert, Obligation, ShortageCase, ShortageReport, StoppageNotice


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


def product_has_notice(session: Session, product_code: str) -> bool:
    """Whether any stoppage notice names the product."""
    return bool(session.scalar(select(exists().where(StoppageNotice.product_code == product_code))))


def unresolved_case(session: Session, product_code: str, city_code: str) -> ShortageCase | None:
    """The first case of the product in the city not resolved yet."""
    return session.scalars(
        select(ShortageCase)
        .where(ShortageCase.product_code == product_code, ShortageCase.city_code == city_code, ShortageCase.state != CaseState.RESOLVED)
        .order_by(ShortageCase.id)
    ).first()


def hospital_reports_of_case(session: Session, case_id: int) -> list[ShortageReport]:
    """The hospital reports joined to the case."""
    return list(session.scalars(select(ShortageReport).where(ShortageReport.case_id == case_id)))


def lock_case_key(session: Session, product_code: str, city_code: str) -> None:
    """Serialise the transactions that touch the case of (product, city) until they commit.

    Race: two replicas ingesting reports of one product and city at once (two sources) each
    saw no open case and opened one, or each counted the other's hospital out, so K hospitals
    never made a regional shortage. There is no row to lock before the case exists, so on
    PostgreSQL a transaction-scoped advisory lock on the key stands in for it; SQLite's
    BEGIN IMMEDIATE already serialises writers.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"case:{product_code}:{city_code}".encode("utf-8"), digest_size=8).digest()
    session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def sent_alerts_of_case(session: Session, case_id: int) -> list[tuple[str, datetime, datetime]]:
    """(template, sent_at, created_at) of the case's alerts that went out."""
    return [(template, sent_at, created_at) for template, sent_at, created_at in session.execute(
        select(Alert.template, Alert.sent_at, Alert.created_at).where(Alert.case_id == case_id, Alert.status == "sent", Alert.sent_at.is_not(None))
    )]


def sent_alerts_of_obligations(session: Session, obligation_ids: list[int]) -> list[tuple[int, str, datetime, datetime]]:
    """(obligation_id, template, sent_at, created_at) of the obligations' alerts that went out; one query."""
    return [(obligation_id, template, sent_at, created_at) for obligation_id, template, sent_at, created_at in session.execute(
        select(Alert.obligation_id, Alert.template, Alert.sent_at, Alert.created_at).where(
            Alert.obligation_id.in_(obligation_ids), Alert.status == "sent", Alert.sent_at.is_not(None)
        )
    )]
