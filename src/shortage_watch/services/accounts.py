"""Web accounts and API tokens: create, log in, change passwords, issue and check tokens.

Each function is one transaction. Passwords are kept as argon2id hashes, tokens as their
sha256 (a token is 256 random bits, so a fast hash cannot be reversed); neither is ever
logged. Every login, password change, token use and account change is audited with the
account's name (`web:<name>`) or `operator` for commands run on the server.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.domain.accounts import ROLES, login_paused_until, password_problem, rate_window
from shortage_watch.services.alerts import audit
from shortage_watch.settings import WebSettings
from shortage_watch.store import web_accounts
from shortage_watch.store.tables import ApiToken, LoginAttempt, WebAccount

OPERATOR = "operator"
TOKEN_PREFIX = "sw_"
_HASHER = PasswordHasher()  # argon2id with the library's current recommended cost
_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I to misread


class AccountError(Exception):
    """A request about accounts that cannot be done; the message is Chinese / English."""


@dataclass(frozen=True)
class WebUser:
    """Who is logged in (or whose token is used): what pages and endpoints need to decide."""

    id: int
    name: str
    role: str
    party_code: str | None
    must_change_password: bool
    region_code: str | None = None  # an officer's region (it sees this region and every region below)
    bureau: str | None = None  # an officer's bureau: insurance (医保局) | health (卫健委)

    @property
    def actor(self) -> str:
        return f"web:{self.name}"


def _user(account: WebAccount) -> WebUser:
    return WebUser(account.id, account.name, account.role, account.party_code, account.must_change_password,
                   account.region_code, account.bureau)


def new_password() -> str:
    """A random initial password, 14 characters that cannot be misread."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(14))


def _account_named(session: Session, name: str) -> WebAccount:
    account = web_accounts.account_named(session, name)
    if account is None:
        raise AccountError(f"没有名为 {name} 的账户 / no account named {name!r}")
    return account


def add_account(sessions: sessionmaker[Session], *, name: str, role: str, party_code: str | None, now: datetime, region_code: str | None = None,
                bureau: str | None = None, email: str | None = None) -> tuple[WebUser, str]:
    """Create an account with a one-time initial password (returned once, to be changed at first login)."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}")
    password = new_password()
    with sessions.begin() as session:
        if web_accounts.account_named(session, name) is not None:
            raise AccountError(f"账户 {name} 已存在 / account {name!r} exists already")
        account = WebAccount(name=name, role=role, party_code=party_code, region_code=region_code, bureau=bureau, email=email,
                             password_hash=_HASHER.hash(password),
                             must_change_password=True, disabled=False, session_epoch=0, created_at=now,
                             updated_at=now)
        session.add(account)
        session.flush()
        audit(session, at=now, actor=OPERATOR, entity="web_account", entity_id=account.id, action="created",
              detail={"name": name, "role": role, "party_code": party_code, "region_code": region_code, "bureau": bureau})
        return _user(account), password


@dataclass(frozen=True)
class AccountRow:
    name: str
    role: str
    party_code: str | None
    disabled: bool
    must_change_password: bool
    last_login_at: datetime | None


def list_accounts(read_sessions: sessionmaker[Session]) -> list[AccountRow]:
    """Every account, by name."""
    with read_sessions() as session:
        return [AccountRow(a.name, a.role, a.party_code, a.disabled, a.must_change_password, a.last_login_at)
                for a in web_accounts.accounts_by_name(session)]


def disable_account(sessions: sessionmaker[Session], name: str, now: datetime) -> None:
    """Disable the account: its sessions end at once and its tokens answer 403."""
    with sessions.begin() as session:
        account = _account_named(session, name)
        account.disabled = True
        account.session_epoch += 1
        account.updated_at = now
        audit(session, at=now, actor=OPERATOR, entity="web_account", entity_id=account.id, action="disabled")


def reset_password(sessions: sessionmaker[Session], name: str, now: datetime) -> str:
    """A new one-time password (returned once); the account's sessions end and it is enabled again."""
    password = new_password()
    with sessions.begin() as session:
        account = _account_named(session, name)
        account.password_hash = _HASHER.hash(password)
        account.must_change_password = True
        account.disabled = False
        account.session_epoch += 1
        account.updated_at = now
        audit(session, at=now, actor=OPERATOR, entity="web_account", entity_id=account.id, action="password_reset")
    return password


def session_user(read_sessions: sessionmaker[Session], account_id: int, epoch: int, session_id: str) -> WebUser | None:
    """The user of a session cookie, or None when the account is gone, disabled, the cookie is older
    than its last password change, or this session was logged out."""
    with read_sessions() as session:
        found = web_accounts.account_of_session(session, account_id, session_id)
        if found is None:
            return None
        account, ended = found
        if ended or account.disabled or account.session_epoch != epoch:
            return None
        return _user(account)


def log_out(sessions: sessionmaker[Session], *, account_id: int, session_id: str, expires_at: datetime, now: datetime) -> None:
    """End this one session: its cookie, wherever a copy of it is, opens nothing from now on; the
    account's other sessions go on. Audited once."""
    with sessions.begin() as session:
        account = session.get(WebAccount, account_id)
        if account is None:
            return
        if web_accounts.end_session(session, session_id=session_id, account_id=account_id, expires_at=expires_at, now=now):
            audit(session, at=now, actor=f"web:{account.name}", entity="web_account", entity_id=account.id, action="logout")


@dataclass(frozen=True)
class LoginOutcome:
    """`user` and `epoch` on success; otherwise `paused_until` (too many failures) or a plain refusal."""

    user: WebUser | None
    epoch: int = 0
    paused_until: datetime | None = None


def log_in(sessions: sessionmaker[Session], web: WebSettings, *, name: str, password: str, address: str,
           now: datetime) -> LoginOutcome:
    """Check a password login, counting failures per account name and address (web.login_failures_allowed
    within web.login_pause_minutes pause further tries); every attempt is recorded."""
    pause = timedelta(minutes=web.login_pause_minutes)
    name = name.strip()[:64]
    address = address[:64]
    with sessions.begin() as session:
        failures = web_accounts.failed_logins_since(session, name, address, now - pause)
        paused = login_paused_until(failures, web.login_failures_allowed, pause, now)
        if paused is not None:
            return LoginOutcome(None, paused_until=paused)
        account = web_accounts.account_named(session, name)
        ok = _verify(account.password_hash if account else _dummy_hash(), password) and account is not None
        if ok and account is not None and account.disabled:
            ok = False
        session.add(LoginAttempt(name=name, address=address, at=now, succeeded=ok))
        if account is not None:
            audit(session, at=now, actor=f"web:{name}", entity="web_account", entity_id=account.id,
                  action="login" if ok else "login_failed", detail={"address": address})
        if not ok or account is None:
            return LoginOutcome(None)
        account.last_login_at = now
        return LoginOutcome(_user(account), epoch=account.session_epoch)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so a wrong name costs as long as a wrong password."""
    return _HASHER.hash("not a password of anyone")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def change_password(sessions: sessionmaker[Session], user: WebUser, *, current: str, new: str, now: datetime) -> int:
    """Set a new password after checking the current one; the account's new session epoch (older
    cookies end). AccountError says why not."""
    problem = password_problem(new, user.name)
    if problem:
        raise AccountError(problem)
    with sessions.begin() as session:
        account = session.get(WebAccount, user.id)
        if account is None or account.disabled:
            raise AccountError("账户不可用 / the account is not available")
        if not _verify(account.password_hash, current):
            raise AccountError("当前密码不正确 / the current password is wrong")
        if _verify(account.password_hash, new):
            raise AccountError("新密码不能与当前密码相同 / the new password must differ from the current one")
        account.password_hash = _HASHER.hash(new)
        account.must_change_password = False
        account.session_epoch += 1
        account.updated_at = now
        audit(session, at=now, actor=user.actor, entity="web_account", entity_id=account.id, action="password_changed")
        return account.session_epoch


# ---- API tokens -----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class TokenRow:
    id: int
    account: str
    party_code: str | None
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def create_token(sessions: sessionmaker[Session], *, account_id: int, name: str, now: datetime, actor: str) -> tuple[TokenRow, str]:
    """A new token for the account: the row and the secret, which is shown this once and never again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        account = session.get(WebAccount, account_id)
        if account is None:
            raise AccountError("账户不存在 / no such account")
        token = ApiToken(account_id=account_id, name=name[:100] or "token", token_hash=_token_hash(secret),
                         prefix=secret[:10], created_at=now, rate_count=0)
        session.add(token)
        session.flush()
        audit(session, at=now, actor=actor, entity="api_token", entity_id=token.id, action="created",
              detail={"account": account.name, "name": token.name})
        return _token_row(token, account), secret


def _token_row(token: ApiToken, account: WebAccount) -> TokenRow:
    return TokenRow(token.id, account.name, account.party_code, token.name, token.prefix, token.created_at,
                    token.last_used_at, token.revoked_at)


def distributor_account_id(read_sessions: sessionmaker[Session], party_code: str) -> int:
    """The account a `tokens create --distributor CODE` token belongs to: the one named CODE, else the first."""
    with read_sessions() as session:
        accounts = web_accounts.distributor_accounts(session, party_code)
    if not accounts:
        raise AccountError(f"配送企业 {party_code} 还没有账户，请先运行 accounts add-distributor {party_code} / "
                           f"distributor {party_code} has no account: run `accounts add-distributor {party_code}` first")
    named = [a for a in accounts if a.name == party_code]
    return (named or accounts)[0].id


def list_tokens(read_sessions: sessionmaker[Session], account_id: int | None = None) -> list[TokenRow]:
    """Tokens (all, or one account's), newest first; never their secrets."""
    with read_sessions() as session:
        return [_token_row(t, a) for t, a in web_accounts.tokens_with_accounts(session, account_id)]


def revoke_token(sessions: sessionmaker[Session], token_id: int, *, now: datetime, actor: str, account_id: int | None = None) -> None:
    """Revoke a token (only the account's own when `account_id` is given)."""
    with sessions.begin() as session:
        token = session.get(ApiToken, token_id)
        if token is None or (account_id is not None and token.account_id != account_id):
            raise AccountError(f"没有编号为 {token_id} 的令牌 / no token with id {token_id}")
        if token.revoked_at is None:
            token.revoked_at = now
            audit(session, at=now, actor=actor, entity="api_token", entity_id=token.id, action="revoked")


@dataclass(frozen=True)
class TokenCheck:
    """`user` for a good token, `disabled` when its account is disabled, `retry_after` when over the rate."""

    user: WebUser | None
    token_id: int | None = None
    disabled: bool = False
    retry_after: int | None = None


def use_token(sessions: sessionmaker[Session], web: WebSettings, secret: str, *, method: str, path: str,
              now: datetime) -> TokenCheck:
    """Check a bearer token and count the request against its per-minute limit; audits the use."""
    limit = web.api_requests_per_minute
    window = rate_window(now)
    with sessions.begin() as session:
        found = web_accounts.token_by_hash(session, _token_hash(secret))
        if found is None or found[0].revoked_at is not None:
            return TokenCheck(None)
        token, account = found
        if account.disabled:
            return TokenCheck(None, token.id, disabled=True)
        over = web_accounts.count_token_use(session, token.id, window.start, now) > limit
        audit(session, at=now, actor=f"web:{account.name}", entity="api_token", entity_id=token.id,
              action="rate_limited" if over else "used", detail={"method": method, "path": path[:200]})
        if over:
            return TokenCheck(None, token.id, retry_after=window.retry_after_seconds)
        return TokenCheck(_user(account), token.id)
