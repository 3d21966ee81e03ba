"""What a chunk of hospital reports reads and writes about shortage cases, one statement for the whole
chunk each: the lock on its case keys, the open cases of its products, their hospital reports, operator
closures, the notices of its products, explanations already owed, and the case each
report joined."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from shortage_watch.domain.states import CaseState
from shortage_watch.store.bulk import inserter, updater
from shortage_watch.store.tables import AuditEvent, Obligation, ShortageCase, ShortageReport, StoppageNotice


def lock_case_keys(session: Session, keys: Iterable[tuple[str, str]]) -> None:
    """Serialise the transactions that touch the cases of these (product, city) keys until they commit.

    Race: two replicas ingesting reports of one product and city at once (two sources) each
    saw no open case and opened one, or each counted the other's hospital out, so K hospitals
    never made a regional shortage. There is no row to lock before the case exists, so on
    PostgreSQL a transaction-scoped advisory lock per key stands in for it, all taken in one
    statement in ascending order, so two chunks sharing keys wait for each other instead of
    deadlocking; SQLite's BEGIN IMMEDIATE already serialises writers.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    numbers = sorted({
        int.from_bytes(hashlib.blake2b(f"case:{product}:{city}".encode("utf-8"), digest_size=8).digest(), "big", signed=True)
        for product, city in keys
    })
    if not numbers:
        return
    wanted = func.unnest(bindparam("keys", type_=ARRAY(BIGINT))).table_valued("key").render_derived()
    ordered = select(wanted.c.key).order_by(wanted.c.key).subquery()
    session.execute(select(func.count(func.pg_advisory_xact_lock(ordered.c.key))), {"keys": numbers})


def unresolved_cases_of(session: Session, keys: set[tuple[str, str]]) -> list[ShortageCase]:
    """The first unresolved case (by id) of each of these (product, city) keys that has one."""
    if not keys:
        return []
    # The keys' products' unresolved cases in every city, as plain (id, key) tuples, then only the wanted
    # rows as cases: a chunk's products are often open in many of its cities, and a case row costs the
    # ORM twenty times a tuple.
    first: dict[tuple[str, str], int] = {}
    for case_id, product, city in session.execute(
        select(ShortageCase.id, ShortageCase.product_code, ShortageCase.city_code)
        .where(ShortageCase.product_code.in_(sorted({p for p, _ in keys})), ShortageCase.state != CaseState.RESOLVED)
        .order_by(ShortageCase.id)
    ):
        if (product, city) in keys:
            first.setdefault((product, city), case_id)
    return cases_by_id(session, sorted(first.values())) if first else []


def case_keys_of(session: Session, case_ids: list[int]) -> set[tuple[str, str]]:
    """The (product, city) keys of these cases."""
    if not case_ids:
        return set()
    return {(product, city) for product, city in session.execute(
        select(ShortageCase.product_code, ShortageCase.city_code).where(ShortageCase.id.in_(case_ids)))}


def cases_by_id(session: Session, case_ids: list[int]) -> list[ShortageCase]:
    """The cases with these ids."""
    return list(session.scalars(select(ShortageCase).where(ShortageCase.id.in_(case_ids))))


def reports_of_cases(session: Session, case_ids: list[int]) -> list[ShortageReport]:
    """The hospital reports joined to these cases, in the order stored."""
    if not case_ids:
        return []
    return list(session.scalars(select(ShortageReport).where(ShortageReport.case_id.in_(case_ids)).order_by(ShortageReport.id)))


def part_closures_of_cases(session: Session, case_ids: list[int]) -> list[tuple[int, datetime, dict[str, Any] | None]]:
    """(case id, when, detail) of the cases' `part_closed` audit events (an operator closed one hospital's part)."""
    if not case_ids:
        return []
    return [(case_id, at, detail) for case_id, at, detail in session.execute(
        select(AuditEvent.entity_id, AuditEvent.at, AuditEvent.detail).where(
            AuditEvent.entity == "case", AuditEvent.entity_id.in_(case_ids), AuditEvent.action == "part_closed"))]


def notices_of_products(session: Session, product_codes: list[str]) -> dict[str, tuple[list[str], str | None]]:
    """Per product with stoppage notices: the ids of its notices (each once) and a manufacturer they name
    (the first stored)."""
    found: dict[str, tuple[list[str], str | None]] = {}
    for product, notice_id, manufacturer in session.execute(
        select(StoppageNotice.product_code, StoppageNotice.notice_id, StoppageNotice.manufacturer)
        .where(StoppageNotice.product_code.in_(product_codes)).order_by(StoppageNotice.id)
    ):
        ids, _ = found.setdefault(product, ([], manufacturer))
        if notice_id not in ids:
            ids.append(notice_id)
    return found


def stoppages_reported(session: Session, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (distributor_code, product_code) have a report obligation: the distributor was told of a
    stoppage of the product (a notice), or reported one in writing before any notice reached the ledger."""
    wanted = set(pairs)
    if not wanted:
        return set()
    return {pair for pair in session.execute(
        select(Obligation.party_code, Obligation.product_code).distinct().where(
            Obligation.kind == "report", Obligation.party_code.in_(sorted({d for d, _ in wanted})),
            Obligation.product_code.in_(sorted({p for _, p in wanted}))))
        if tuple(pair) in wanted}


def explanations_opened(session: Session, subject_keys: list[str]) -> set[str]:
    """Which of these explanation subject keys have an obligation already."""
    if not subject_keys:
        return set()
    return set(session.scalars(select(Obligation.subject_key).where(Obligation.kind == "explanation", Obligation.subject_key.in_(subject_keys))))


def insert_cases(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert cases (column key -> value, every column but the id) in bulk; their ids, in the order given."""
    returned = inserter(session.connection(), ShortageCase.__table__, rows[0]).insert_returning(rows, ("id",))
    # The rows are numbered in the order they are written (SQLite takes a multi-row VALUES in order, each
    # row the next rowid; PostgreSQL runs the pipelined one-row statements in order, each the next value of
    # the sequence), so the ids, ascending, are the rows' in the order given.
    return sorted(case_id for (case_id,) in returned)


def join_reports_to_cases(session: Session, joined: list[tuple[int, int]]) -> None:
    """Set the case of each (report id, case id), in one executemany."""
    updater(session.connection(), ShortageReport.__table__, "id", ("case_id",)).update(
        [{"id": report_id, "case_id": case_id} for report_id, case_id in joined])

