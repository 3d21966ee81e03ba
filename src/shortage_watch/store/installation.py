"""The ledger's installation id: random, created with the schema, one row."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Installation


def installation_id(session: Session, now: datetime) -> str:
    """This ledger's installation id; creates one if the row is missing (a ledger emptied by hand)."""
    found = session.scalar(select(Installation.installation_id).where(Installation.id == 1))
    if found:
        return found
    # Two processes may find the row missing at once: ON CONFLICT DO NOTHING lets the
    # first insert win, and both then read the same id back.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(Installation.__table__)
        .values(id=1, installation_id=secrets.token_hex(8), created_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return session.scalars(select(Installation.installation_id).where(Installation.id == 1)).one()
