"""The sweep's statements: due rows picked and locked, what a batch's steps read, and their writes.

Every function runs in the caller's transaction (commit is the caller's).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, or_, select, update
from sqlalchemy.orm import Session

from shortage_watch.store import claims
from shortage_watch.store.bulk import updater
from shortage_watch.store.tables import DistributorReport, Obligation, ShortageCase, StoppageNotice

_OBLIGATIONS = Obligation.__table__
_STEP_NAMES = ("id", "kind", "subject_key", "party_code", "region_code", "product_code", "notice_pk", "report_pk", "case_id",
               "received_on", "due_on", "due_at", "calendar_status", "state", "level", "opened_at", "late_working_days", "policy")
# What stepping an obligation reads of it; the ladder snapshot as stored (text), so a batch's few
# distinct snapshots are each parsed once.
STEP_COLUMNS = (*(_OBLIGATIONS.c[name] for name in _STEP_NAMES[:-1]), cast(_OBLIGATIONS.c.policy, Text).label("policy"))
# An obligation as stepping reads it: a plain named tuple, whose fields cost a tenth of a Row's to read.
StepRow = namedtuple("StepRow", _STEP_NAMES)  # type: ignore[misc]
# The columns a step writes back, each row by its id (and the state, when it changes).
STEP_WRITES = ("level", "next_action_at", "claimed_by", "claimed_until", "updated_at")


def due_query(table: Any, now: datetime, real_now: datetime, batch: int, columns: Sequence[Any] | None = None) -> Select[Any]:
    """The first `batch` due, unclaimed rows of `table` (by next_action_at, through its index): their
    `columns` (id and next_action_at by default)."""
    # By next_action_at alone, the index's order: rows due at one instant (a holiday's 100,000) come in
    # the index's own order among themselves (rowid on SQLite). Ordered by id too, PostgreSQL sorted
    # every due row for each batch (its index keeps equal keys in heap order): 0.26 s a batch at 20,000.
    return claims.free_rows(claims.kind_of(table), real_now, columns=columns or (table.id, table.next_action_at),
                            where=[table.next_action_at <= now], order_by=[table.next_action_at], limit=batch)


def lock_due_obligations(session: Session, now: datetime, real_now: datetime, batch: int) -> list[StepRow]:
    """Up to `batch` due, unclaimed obligations, locked until commit and read for stepping (one statement)."""
    return [StepRow(*row) for row in claims.lock_batch(session, due_query(Obligation, now, real_now, batch, STEP_COLUMNS))]


def lock_due_cases(session: Session, now: datetime, real_now: datetime, batch: int) -> list[int]:
    """The ids of up to `batch` due, unclaimed regional cases, locked until commit (one statement)."""
    return [row.id for row in claims.lock_batch(session, due_query(ShortageCase, now, real_now, batch))]


def obligations_to_step(session: Session, row_ids: list[int]) -> list[StepRow]:
    """The obligations `row_ids` (already claimed), read for stepping, by id."""
    return [StepRow(*row) for row in session.connection().execute(select(*STEP_COLUMNS).where(_OBLIGATIONS.c.id.in_(row_ids)).order_by(_OBLIGATIONS.c.id))]


def claim_due(session: Session, table: Any, row_id: int, now: datetime, real_now: datetime, owner: str, until: datetime) -> bool:
    """Claim the due row `row_id` of `table` for this transaction; False when another worker has it or handled it.

    Another replica may have read the same due id. The UPDATE re-checks, under the row's
    write lock, that the row is still due and unclaimed: exactly one row changed means
    this worker owns it until commit; zero means another worker handled it (its commit
    moved next_action_at on) or holds it now, and we move on. Leases use the real clock.
    """
    return claims.take(session, claims.kind_of(table), row_id, owner, until, real_now, where=[table.next_action_at <= now])


# What an alert context says of an obligation's notice (`obligation_context_of`), read as plain columns:
# every obligation a notice opened is its own notice x distributor, so a batch reads one notice per row.
_NOTICE_NAMES = ("id", "notice_id", "kind", "notified_on", "reason", "expected_resume_on", "priority_class", "product_code", "product_name",
                 "specification", "manufacturer", "distributor_name")
NoticeFacts = namedtuple("NoticeFacts", _NOTICE_NAMES)  # type: ignore[misc]


def notice_facts(session: Session, ids: Iterable[int]) -> dict[int, NoticeFacts]:
    """The notices `ids`, by id, as plain named tuples of the columns an alert context reads (no ORM objects)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    notices = StoppageNotice.__table__
    query = select(*(notices.c[name] for name in _NOTICE_NAMES)).where(notices.c.id.in_(wanted))
    return {row[0]: NoticeFacts(*row) for row in session.connection().execute(query)}


def reports_by_id(session: Session, ids: Iterable[int]) -> dict[int, DistributorReport]:
    return _by_id(session, DistributorReport, set(ids))


def _by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))}


def write_steps(session: Session, rows: list[dict[str, Any]], *, state: bool = False) -> None:
    """Write each stepped obligation's `STEP_WRITES` (and its id; with `state`, its state too) in one executemany."""
    # The state is in five indexes: setting it, even unchanged, rewrites an entry in each (2-3 times the
    # cost of the update), so rows whose state stays are written without it.
    updater(session.connection(), _OBLIGATIONS, "id", ("state", *STEP_WRITES) if state else STEP_WRITES).update(rows)


def push_back(session: Session, table: Any, row_id: int, retry_at: datetime) -> None:
    """Release the row's claim and make it due again at `retry_at`."""
    session.execute(
        update(table)
        .where(table.id == row_id)
        .values(claimed_by=None, claimed_until=None, next_action_at=retry_at)
        .execution_options(synchronize_session=False)
    )


def rows_to_redate(session: Session, table: Any, estimated: str, in_flight: tuple[str, ...], after_id: int, batch: int,
                   spans: Sequence[tuple[datetime, datetime]] = ()) -> list[Any]:
    """The next `batch` in-flight rows, by id, whose deadline a calendar change may move: without `spans`,
    those the calendar only estimated (the calendar_status index); with them, the others whose days counted
    may lie in one of the spans (local [start, end) instants). Only the columns that date them."""
    dating = (table.received_on,) if table is Obligation else (table.regional_at, table.policy)
    if spans:
        # An obligation's days counted run from its receipt date to its due instant, a case's from when it became regional.
        started = (lambda end: table.received_on < end.date()) if table is Obligation else (lambda end: table.regional_at < end)
        which = [table.calendar_status != estimated, or_(*(and_(table.due_at >= start, started(end)) for start, end in spans))]
    else:
        which = [table.calendar_status == estimated]
    return list(
        session.execute(
            select(table.id, table.due_at, table.calendar_status, *dating)
            .where(*which, table.state.in_(in_flight), table.id > after_id)
            .order_by(table.id)
            .limit(batch)
        ).all()
    )


def claim_to_redate(session: Session, table: Any, row: Any, in_flight: tuple[str, ...], real_now: datetime, owner: str,
                    until: datetime) -> bool:
    """Claim one row for re-dating if it still carries the deadline we read (its calendar status and due instant).

    Another sweeper may be re-dating (or stepping) the same row. The UPDATE re-checks, under
    the row's write lock, that it still has the calendar status and due instant we read, is in
    flight and unclaimed: exactly one row changed means we own it until commit; zero means another
    worker re-dated, stepped or closed it first, and we leave it (the next sweep looks again).
    """
    return claims.take(session, claims.kind_of(table), row.id, owner, until, real_now,
                       where=[table.calendar_status == row.calendar_status, table.due_at == row.due_at, table.state.in_(in_flight)])


def fresh_row(session: Session, table: Any, row_id: int) -> Any:
    """The ORM row `row_id` of `table`, read again from the database."""
    return session.get(table, row_id, populate_existing=True)


def fresh_case(session: Session, case_id: int) -> ShortageCase:
    case = session.get(ShortageCase, case_id, populate_existing=True)
    assert case is not None
    return case
