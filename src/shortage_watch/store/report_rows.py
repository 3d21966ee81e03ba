"""What the ledger reads and writes for a chunk of distributor reports or revised notices, one statement
each: the notices the reports name or describe, the report obligations by subject, the explanations
their distributors owe, and the fulfilments and revisions written back.

Obligations are read as plain rows (`SimpleNamespace`, one attribute per column), not ORM objects:
they are changed in memory and written in one executemany (a few, for revised notices), not flushed one by one.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from shortage_watch.domain.states import OBLIGATION_FULFILLED, OBLIGATION_IN_FLIGHT
from shortage_watch.store.bulk import updater
from shortage_watch.store.key_match import joined_to_keys
from shortage_watch.store.tables import Obligation, StoppageNotice

FULFILMENT_COLUMNS = ("state", "late_working_days", "fulfilled_at", "report_pk", "next_action_at", "claimed_by", "claimed_until",
                      "updated_at", "level")


def notices_named(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoppageNotice]:
    """The stored notices with these (notice_id, distributor_code), by that pair."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    key = (StoppageNotice.notice_id, StoppageNotice.distributor_code)
    found = session.scalars(joined_to_keys(select(StoppageNotice), key, wanted, session.get_bind().dialect))
    return {(notice.notice_id, notice.distributor_code): notice for notice in found}


def notices_described(session: Session, triples: Iterable[tuple[str, str, date]]) -> dict[tuple[str, str, date], StoppageNotice]:
    """Per (distributor_code, product_code, notified_on): the distributor's first notice about the product that day."""
    wanted = sorted(set(triples))
    if not wanted:
        return {}
    key = (StoppageNotice.distributor_code, StoppageNotice.product_code, StoppageNotice.notified_on)
    found = session.scalars(joined_to_keys(select(StoppageNotice), key, wanted, session.get_bind().dialect).order_by(StoppageNotice.id))
    first: dict[tuple[str, str, date], StoppageNotice] = {}
    for notice in found:
        first.setdefault((notice.distributor_code, notice.product_code, notice.notified_on), notice)
    return first


def notices_by_id(session: Session, ids: Iterable[int]) -> dict[int, StoppageNotice]:
    """The notices with these ids, by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {notice.id: notice for notice in session.scalars(select(StoppageNotice).where(StoppageNotice.id.in_(wanted)))}


def _plain(row: Any) -> SimpleNamespace:
    return SimpleNamespace(**row._mapping)


def report_obligations_by_subject(session: Session, subject_keys: Iterable[str]) -> dict[str, SimpleNamespace]:
    """The report obligations with these subject keys (plain rows), by subject key."""
    wanted = sorted(set(subject_keys))
    if not wanted:
        return {}
    table = Obligation.__table__
    rows = session.execute(select(table).where(table.c.kind == "report", table.c.subject_key.in_(wanted)))
    return {row.subject_key: _plain(row) for row in rows}


def obligations_by_id(session: Session, ids: list[int]) -> dict[int, SimpleNamespace]:
    """The obligations with these ids (plain rows), by id."""
    if not ids:
        return {}
    table = Obligation.__table__
    return {row.id: _plain(row) for row in session.execute(select(table).where(table.c.id.in_(ids)))}


def obligations_fulfilled_by(session: Session, report_ids: Iterable[int]) -> list[SimpleNamespace]:
    """The fulfilled obligations (plain rows, by id) whose fulfilling report is one of these.

    No index on report_pk: read only for revised reports, which are few."""
    wanted = sorted(set(report_ids))
    if not wanted:
        return []
    table = Obligation.__table__
    return [_plain(row) for row in session.execute(select(table).where(
        table.c.report_pk.in_(wanted), table.c.state.in_(OBLIGATION_FULFILLED)).order_by(table.c.id))]


def explanations_owed(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[SimpleNamespace]]:
    """The explanation obligations still owed (plain rows, by id) per (distributor_code, product_code) asked for."""
    wanted = set(pairs)
    if not wanted:
        return {}
    table = Obligation.__table__
    rows = session.execute(select(table).where(
        table.c.kind == "explanation",
        table.c.party_code.in_(sorted({distributor for distributor, _ in wanted})),
        table.c.product_code.in_(sorted({product for _, product in wanted})),
        table.c.state.in_(OBLIGATION_IN_FLIGHT),
    ).order_by(table.c.id))
    owed: dict[tuple[str, str], list[SimpleNamespace]] = {}
    for row in rows:
        if (row.party_code, row.product_code) in wanted:
            owed.setdefault((row.party_code, row.product_code), []).append(_plain(row))
    return owed


def write_fulfilments(session: Session, obligations: list[SimpleNamespace]) -> None:
    """Write the fulfilment columns (`FULFILMENT_COLUMNS`) of these plain rows in one executemany."""
    if not obligations:
        return
    rows = [{column: getattr(obligation, column) for column in ("id", *FULFILMENT_COLUMNS)} for obligation in obligations]
    updater(session.connection(), Obligation.__table__, "id", FULFILMENT_COLUMNS).update(rows)
    expire_loaded(session, Obligation, [obligation.id for obligation in obligations])


def write_changed_obligations(session: Session, obligations: list[tuple[SimpleNamespace, dict[str, Any]]],
                              shapes: tuple[tuple[str, ...], ...]) -> None:
    """Write the plain rows, given with their columns as read, that changed: each in the first of `shapes` (sets of
    columns, smallest first) holding every column it changed; one executemany per shape used."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for obligation, as_read in obligations:
        changed = {column for column, was in as_read.items() if getattr(obligation, column) != was}
        if not changed:
            continue
        shape = next((shape for shape in shapes if changed <= set(shape)), None)
        if shape is None:
            raise ValueError(f"no shape writes {sorted(changed)}")
        by_shape.setdefault(shape, []).append({column: getattr(obligation, column) for column in ("id", *shape)})
    for shape, rows in by_shape.items():
        updater(session.connection(), Obligation.__table__, "id", shape).update(rows)
    expire_loaded(session, Obligation, [obligation.id for obligation, _ in obligations])


def expire_loaded(session: Session, mapped: Any, ids: Iterable[int]) -> None:
    """Forget what the session holds of these rows (written just now without the ORM), so it reads them again."""
    # An ORM copy loaded earlier in the transaction (a notice's revision, an explanation cancelled)
    # would otherwise keep the old state for whoever reads it next in the same transaction.
    identity_map = session.identity_map
    for row_id in ids:
        loaded = identity_map.get(identity_key(mapped, row_id))
        if loaded is not None:
            session.expire(loaded)
