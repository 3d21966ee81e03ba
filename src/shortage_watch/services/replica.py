"""This replica among the others: jobs one replica at a time runs (named leases), its
heartbeat, and handing back everything it holds when it stops. Real clock throughout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from shortage_watch import __version__
from shortage_watch.clock import utc_now
from shortage_watch.store import claims


@dataclass(frozen=True)
class Replica:
    """This process as the other replicas see it: its id in every lease, claim and heartbeat."""

    id: str
    sessions: sessionmaker[Session]


def claim_named_lease(replica: Replica, name: str, seconds: float) -> bool:
    """Take the named lease (a job such as the digests) for `seconds`, or renew ours; False when
    another replica holds it."""
    real_now = utc_now()
    with replica.sessions.begin() as session:
        claims.ensure_row(session, claims.JOBS, name)
        return claims.take(session, claims.JOBS, name, replica.id, real_now + timedelta(seconds=seconds), real_now,
                           renew_own=True)


def release_named_lease(replica: Replica, name: str) -> None:
    """Hand the named lease back (if still ours), so another replica may run the job at once."""
    with replica.sessions.begin() as session:
        claims.release(session, claims.JOBS, [name], replica.id)


def write_heartbeat(replica: Replica, started_at: datetime) -> None:
    """Insert or refresh this replica's heartbeat row."""
    with replica.sessions.begin() as session:
        claims.beat(session, replica.id, started_at, __version__, utc_now())


def release_replica_claims(replica: Replica) -> dict[str, int]:
    """Hand back everything this replica holds, in one transaction, so others take it at once.

    Source leases, named leases, alerts being sent (back to 'pending'), obligation and case
    claims; and the replica's heartbeat row goes. Returns the counts released, by kind.
    """
    with replica.sessions.begin() as session:
        return claims.release_all(session, replica.id)
