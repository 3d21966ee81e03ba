"""Web accounts, login attempts and API tokens as the account service reads and counts them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shortage_watch.store.tables import ApiToken, EndedWebSession, LoginAttempt, WebAccount


def account_named(session: Session, name: str) -> WebAccount | None:
    return session.scalars(select(WebAccount).where(WebAccount.name == name)).first()


def accounts_by_name(session: Session) -> list[WebAccount]:
    """Every account, by name."""
    return list(session.scalars(select(WebAccount).order_by(WebAccount.name)))


def distributor_accounts(session: Session, party_code: str) -> list[WebAccount]:
    """The accounts of one distributor, oldest first."""
    return list(session.scalars(select(WebAccount).where(
        WebAccount.role == "distributor", WebAccount.party_code == party_code).order_by(WebAccount.id)))


def account_of_session(session: Session, account_id: int, session_id: str) -> tuple[WebAccount, bool] | None:
    """The account a session cookie names and whether that session was ended by logging out, or None
    when there is no such account: one statement, each table read by its primary key."""
    found = session.execute(select(WebAccount, EndedWebSession.session_id).outerjoin(
        EndedWebSession, (EndedWebSession.session_id == session_id) & (EndedWebSession.account_id == WebAccount.id))
        .where(WebAccount.id == account_id)).first()
    return (found[0], found[1] is not None) if found is not None else None


def end_session(session: Session, *, session_id: str, account_id: int, expires_at: datetime, now: datetime) -> bool:
    """Record the session as ended; True when it was not ended before. Ended sessions whose cookies
    have expired are forgotten (the signature check refuses those cookies by itself)."""
    session.execute(delete(EndedWebSession).where(EndedWebSession.expires_at <= now))
    # Two logouts of one cookie at once (two tabs): the second insert finds the row and does nothing.
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    added = session.execute(dialect_insert(EndedWebSession).values(
        session_id=session_id, account_id=account_id, ended_at=now, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["session_id"]).returning(EndedWebSession.session_id))
    return added.first() is not None


def failed_logins_since(session: Session, name: str, address: str, since: datetime) -> list[datetime]:
    """When logins as `name` from `address` failed after `since`."""
    return list(session.scalars(select(LoginAttempt.at).where(
        LoginAttempt.name == name, LoginAttempt.address == address, LoginAttempt.succeeded.is_(False),
        LoginAttempt.at > since)))


def tokens_with_accounts(session: Session, account_id: int | None = None) -> list[tuple[ApiToken, WebAccount]]:
    """Tokens (all, or one account's) with their account, newest first."""
    query = select(ApiToken, WebAccount).join(WebAccount, WebAccount.id == ApiToken.account_id)
    if account_id is not None:
        query = query.where(ApiToken.account_id == account_id)
    return [(token, account) for token, account in session.execute(query.order_by(ApiToken.id.desc()))]


def token_by_hash(session: Session, token_hash: str) -> tuple[ApiToken, WebAccount] | None:
    found = session.execute(select(ApiToken, WebAccount).join(WebAccount, WebAccount.id == ApiToken.account_id)
                            .where(ApiToken.token_hash == token_hash)).first()
    return (found[0], found[1]) if found is not None else None


def count_token_use(session: Session, token_id: int, window_start: datetime, now: datetime) -> int:
    """Count one request against the token's rate window starting at `window_start`; the window's count so far."""
    # Two requests of one token at once: one UPDATE counts in the database under the row's lock,
    # so neither overwrites the other's count, also across the start of a new window.
    same_window = ApiToken.rate_window_start == window_start
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(
        rate_count=case((same_window, ApiToken.rate_count + 1), else_=1),
        rate_window_start=window_start, last_used_at=now))
    return session.scalar(select(ApiToken.rate_count).where(ApiToken.id == token_id)) or 0
