"""Leases and row claims: the one way a replica takes, renews and hands back shared work.

Five kinds of row are held by one replica at a time, each for a while (`until`, real
clock) after which any replica may take it over: a source being polled (`SOURCES`), a
named job such as the digests (`JOBS`), a batch of outbox rows being sent (`ALERTS`),
due obligations and regional cases being swept (`OBLIGATIONS`, `CASES`). Every function
here is one statement in the caller's transaction (commit is the caller's), and every
take is a conditional UPDATE that re-checks, under the row's write lock, that the row is
still free: a row another replica took first is simply not changed, and not ours.

Heartbeats live here too: a replica's heartbeat row is how others (and `health`) know it
is alive, and `release_all` hands back everything a stopping replica held.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from shortage_watch.store.tables import Alert, Heartbeat, Lease, Obligation, ShortageCase, SourceState


class LeaseLost(Exception):
    """Our time on a lease ran out and another replica took it over while we were working under it."""


@dataclass(frozen=True)
class Claimable:
    """A table whose rows a replica can hold: the row's key, and the holder and expiry columns.

    `taken` and `handed_back` are the other columns a take and a release set (an alert moves
    to 'sending' and back to 'pending'); `held` is what a held row also satisfies.
    """

    name: str
    key: InstrumentedAttribute[Any]
    owner: InstrumentedAttribute[str | None]
    until: InstrumentedAttribute[datetime | None]
    taken: Mapping[str, Any] = field(default_factory=dict)
    handed_back: Mapping[str, Any] = field(default_factory=dict)
    held: ColumnElement[bool] | None = None

    @property
    def table(self) -> Any:
        return self.key.class_

    def free(self, real_now: datetime) -> ColumnElement[bool]:
        """Nobody holds the row: never taken, handed back, or its holder's time ran out."""
        return or_(self.until.is_(None), self.until < real_now)

    def held_by(self, owner: str) -> ColumnElement[bool]:
        return self.owner == owner if self.held is None else (self.owner == owner) & self.held


SOURCES = Claimable("sources", SourceState.name, SourceState.lease_owner, SourceState.lease_until)
JOBS = Claimable("leases", Lease.name, Lease.owner, Lease.until)
ALERTS = Claimable(
    "alerts", Alert.id, Alert.lease_owner, Alert.lease_until,
    taken={"status": "sending"}, handed_back={"status": "pending"}, held=Alert.status == "sending",
)
OBLIGATIONS = Claimable("obligations", Obligation.id, Obligation.claimed_by, Obligation.claimed_until)
CASES = Claimable("cases", ShortageCase.id, ShortageCase.claimed_by, ShortageCase.claimed_until)
EVERY_KIND = (SOURCES, JOBS, ALERTS, OBLIGATIONS, CASES)


def kind_of(table: Any) -> Claimable:
    """The claimable kind of rows of `table` (the ORM class)."""
    return next(kind for kind in EVERY_KIND if kind.table is table)


def ensure_row(session: Session, kind: Claimable, key: Any, **values: Any) -> None:
    """Create the lease row named `key` (a source, a job) unless it exists."""
    # Race: two replicas may create it at once; the primary key lets one insert win and the
    # other do nothing. Who then holds the lease is decided by `take`'s UPDATE.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(kind.table).values({kind.key.key: key, **values}).on_conflict_do_nothing())


def _listed(session: Session, kind: Claimable, keys: list[Any]) -> ColumnElement[bool]:
    """The rows of `keys`, as a condition that, on PostgreSQL, first locks them in key order."""
    if session.get_bind().dialect.name != "postgresql":
        # SQLite runs one writer at a time (BEGIN IMMEDIATE): no lock order to keep.
        return kind.key.in_(keys)
    # Race: two transactions updating overlapping lists (a sender's renewal and its own
    # recorder marking a message sent, or two replicas after a lease ran out) each lock rows
    # in their scan order; in different orders they deadlock. Every listed write here locks
    # its rows in ascending key order first (MATERIALIZED: the ordered lock runs once, and the
    # outer UPDATE only touches rows it already locked), so no two of them wait in a cycle.
    locked = (select(kind.key).where(kind.key.in_(keys)).order_by(kind.key).with_for_update()
              .cte("locked").prefix_with("MATERIALIZED"))
    return kind.key.in_(select(locked.c[kind.key.key]))


def take(
    session: Session, kind: Claimable, key: Any, owner: str, until: datetime, real_now: datetime,
    *, renew_own: bool = False, where: Sequence[ColumnElement[bool]] = (),
) -> bool:
    """Hold the row `key` for `owner` until `until`, if it is free (or already `owner`'s, with
    `renew_own`) and satisfies `where`; True when it is now ours."""
    free = kind.free(real_now)
    if renew_own:
        free = or_(free, kind.owner == owner)
    # Claim, then check: replicas may run this UPDATE at once; only one whose WHERE still
    # matched under the row's write lock changes it. Zero rows: another replica holds it
    # (or handled it: `where` no longer matches), and we move on.
    changed = session.execute(
        update(kind.table)
        .where(kind.key == key, free, *where)
        .values({kind.owner.key: owner, kind.until.key: until, **kind.taken})
        .execution_options(synchronize_session=False)
    ).rowcount
    return changed == 1


def take_listed(
    session: Session, kind: Claimable, keys: Iterable[Any], owner: str, until: datetime, real_now: datetime,
    *, where: Sequence[ColumnElement[bool]] = (),
) -> set[Any]:
    """Hold those of `keys` that are free and satisfy `where` for `owner` until `until`; the keys taken."""
    keys = list(keys)
    if not keys:
        return set()
    # Claim, then check: a row another replica took since we read it is not changed, and not ours.
    return set(session.execute(
        update(kind.table)
        .where(_listed(session, kind, keys), kind.free(real_now), *where)
        .values({kind.owner.key: owner, kind.until.key: until, **kind.taken})
        .returning(kind.key)
        .execution_options(synchronize_session=False)
    ).scalars())


def take_batch(
    session: Session, kind: Claimable, owner: str, until: datetime, real_now: datetime, *,
    where: Sequence[ColumnElement[bool]], order_by: Sequence[Any], limit: int, in_order: bool = True,
) -> list[Any]:
    """Hold up to `limit` free rows satisfying `where` (first by `order_by`) for `owner` until
    `until`, in one statement; their keys, in `order_by` order (sorted by key when not `in_order`,
    which saves a read)."""
    free = kind.free(real_now)
    picked = select(kind.key).where(free, *where).order_by(*order_by).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Race: replicas claim at the same moment. SKIP LOCKED makes each pick rows no other
        # claimer has locked, so they take disjoint batches without waiting for each other.
        # MATERIALIZED: the pick runs once. Inlined, PostgreSQL may run it again for each row
        # it updates, and each run skips the rows this very statement just changed and picks
        # the next ones: the LIMIT would hold per run, not for the batch.
        pick = picked.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        chosen = kind.key.in_(select(pick.c[kind.key.key]))
    else:
        # SQLite runs one writer at a time (BEGIN IMMEDIATE): nobody else claims meanwhile.
        chosen = kind.key.in_(picked.scalar_subquery())
    # The outer WHERE re-checks under each row's lock that it is still free and due (another
    # worker may have committed it between our pick and our update).
    taken = set(session.execute(
        update(kind.table)
        .where(chosen, free, *where)
        .values({kind.owner.key: owner, kind.until.key: until, **kind.taken})
        .returning(kind.key)
        .execution_options(synchronize_session=False)
    ).scalars())
    if not taken or not in_order:
        return sorted(taken)
    # RETURNING gives no order; read it back once, in the order asked for.
    return list(session.scalars(select(kind.key).where(kind.key.in_(taken)).order_by(*order_by)))


def free_rows(
    kind: Claimable, real_now: datetime, *, columns: Sequence[Any], where: Sequence[ColumnElement[bool]], order_by: Sequence[Any], limit: int,
) -> Select[Any]:
    """The query of up to `limit` free rows satisfying `where`, first by `order_by`: their `columns`."""
    return select(*columns).where(kind.free(real_now), *where).order_by(*order_by).limit(limit)


def lock_batch(session: Session, rows: Select[Any]) -> list[Any]:
    """The `rows` (a `free_rows` query) held until this transaction ends, read in one statement: for
    work done and committed in the same transaction, which then needs no lease written and cleared
    (one write of each row, not three)."""
    if session.get_bind().dialect.name == "postgresql":
        # Race: replicas pick at the same moment. SKIP LOCKED makes each take rows no other
        # transaction has locked, so they get disjoint batches without waiting; a row another
        # worker committed since our snapshot is re-checked against the WHERE under its lock
        # (READ COMMITTED re-evaluates it), so a row already handled is not picked again.
        rows = rows.with_for_update(skip_locked=True)
    # SQLite runs one writer at a time (BEGIN IMMEDIATE): the rows read are ours until commit.
    # Plain columns, read through the connection: Core rows, without the ORM's loading of each.
    return list(session.connection().execute(rows))


def renew(session: Session, kind: Claimable, keys: Iterable[Any], owner: str, until: datetime) -> set[Any]:
    """Extend `owner`'s hold on `keys` to `until`; the keys it still holds."""
    keys = list(keys)
    if not keys:
        return set()
    # Only the holder's UPDATE matches: a row whose time ran out and that another replica
    # took over is not changed, and is no longer ours to act on.
    return set(session.execute(
        update(kind.table)
        .where(_listed(session, kind, keys), kind.held_by(owner))
        .values({kind.until.key: until})
        .returning(kind.key)
        .execution_options(synchronize_session=False)
    ).scalars())


def lock_held(session: Session, kind: Claimable, keys: Iterable[Any], owner: str) -> set[Any]:
    """The `keys` `owner` holds, locked until commit so nobody takes them meanwhile."""
    keys = list(keys)
    if not keys:
        return set()
    # PostgreSQL: FOR UPDATE; SQLite: the transaction's BEGIN IMMEDIATE already excludes
    # every other writer. A row another replica re-claimed after our time ran out is left alone.
    # Locked in key order, as `_listed` explains.
    return set(session.scalars(
        select(kind.key).where(kind.key.in_(keys), kind.held_by(owner)).order_by(kind.key).with_for_update()
    ))


def release(session: Session, kind: Claimable, keys: Iterable[Any], owner: str, **values: Any) -> int:
    """Hand back `owner`'s hold on `keys` (setting `values` too); how many rows it held."""
    keys = list(keys)
    if not keys:
        return 0
    # Only rows still ours change: one another replica took over stays with it.
    return session.execute(
        update(kind.table)
        .where(_listed(session, kind, keys), kind.held_by(owner))
        .values({kind.owner.key: None, kind.until.key: None, **kind.handed_back, **values})
        .execution_options(synchronize_session=False)
    ).rowcount


def release_all(session: Session, owner: str) -> dict[str, int]:
    """Hand back everything `owner` holds, of every kind, and end its heartbeat: a stopping
    replica's work is free for the others at once. The counts released, by kind."""
    counts = {
        kind.name: session.execute(
            update(kind.table).where(kind.held_by(owner))
            .values({kind.owner.key: None, kind.until.key: None, **kind.handed_back})
            .execution_options(synchronize_session=False)
        ).rowcount
        for kind in EVERY_KIND
    }
    session.execute(delete(Heartbeat).where(Heartbeat.replica_id == owner))
    return counts


def beat(session: Session, replica_id: str, started_at: datetime, version: str, real_now: datetime) -> None:
    """Insert or refresh `replica_id`'s heartbeat row (this host and process)."""
    # Only this replica writes its own row, so reading it and then writing is no race.
    row = session.get(Heartbeat, replica_id)
    if row is None:
        session.add(Heartbeat(replica_id=replica_id, host=socket.gethostname(), pid=os.getpid(),
                              started_at=started_at, beat_at=real_now, version=version))
    else:
        row.beat_at = real_now


def refresh_beat(session: Session, replica_id: str, real_now: datetime) -> None:
    """Move an existing heartbeat on (a replica busy storing a long file is alive)."""
    session.execute(update(Heartbeat).where(Heartbeat.replica_id == replica_id).values(beat_at=real_now))

