"""Reads about one shortage case for its alert context: hospital reports, the product's notices, operator closures."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import AuditEvent, ShortageReport, StoppageNotice


def case_reports(session: Session, case_id: int) -> list[ShortageReport]:
    """Every hospital report of the case, in the order stored."""
    return list(session.scalars(select(ShortageReport).where(ShortageReport.case_id == case_id).order_by(ShortageReport.id)))


def product_notice_ids(session: Session, product_code: str) -> list[str]:
    """The ids of the stoppage notices about the product (each once)."""
    return list(session.scalars(select(StoppageNotice.notice_id).where(StoppageNotice.product_code == product_code).distinct()))


def product_manufacturer(session: Session, product_code: str) -> str | None:
    """The manufacturer the first stored stoppage notice about the product names, if any: the one a chunk
    of hospital reports puts in its alerts (`case_rows.notices_of_products`), so the sweep's mail agrees."""
    return session.scalars(select(StoppageNotice.manufacturer).where(StoppageNotice.product_code == product_code)
                           .order_by(StoppageNotice.id).limit(1)).first()


def part_closed_events(session: Session, case_id: int) -> list[AuditEvent]:
    """The case's `part_closed` audit events (an operator closed one hospital's part)."""
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.entity == "case", AuditEvent.entity_id == case_id, AuditEvent.action == "part_closed")))
