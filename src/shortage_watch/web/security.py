"""Sessions, CSRF tokens and the login dependencies every page uses.

A session is a signed cookie (HMAC-SHA256 with `web.session_secret_file`; HttpOnly,
SameSite=Lax, Secure when `web.public_url` is https) holding the account id, the
account's session epoch (a password change, reset or disable voids older cookies), a
random nonce and an expiry (`web.session_minutes`). The nonce names the session: logging
out records it (hashed) in `ended_web_sessions`, so that cookie, and every copy of it, is
refused from then on while the account's other sessions go on. That table is the only
session state the server keeps (read in the same statement as the account), so any
number of web processes share the logins. Visitors not logged in get a cookie
too (no account), so the login form has a CSRF token.

The CSRF token of a form is an HMAC of the session's nonce: every POST handler calls
`check_csrf(request, form_token)`; templates put `{{ csrf }}` in a hidden `csrf` field.

How a page uses it:

    @router.get("/things")
    def things(request: Request, user: WebUser = Depends(require_role("officer"))): ...

`require_role` redirects a visitor to the login page (and a user who must still change
the initial password to the password page) and answers 403 to a user of another role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from fastapi import HTTPException, Request

from shortage_watch.services.accounts import WebUser, session_user

SESSION_COOKIE = "sw_session"
# PostgreSQL text cannot hold NUL, and no person types one: a request carrying it is refused whole.
NUL_REFUSED = "请求中含有空字符（NUL），无法处理 / the request contains a NUL character and cannot be processed"
LANG_COOKIE = "sw_lang"


def load_session_secret(path: Path) -> bytes:
    """The signing secret in `path`; created (random, mode 0600) when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(32)
        # O_EXCL: two processes starting at once must not each write their own secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_session_secret(path)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    if len(text) < 32:
        raise ValueError(f"web.session_secret_file {path}: the secret needs at least 32 characters")
    return text.encode("utf-8")


@dataclass(frozen=True)
class SessionData:
    account_id: int | None
    epoch: int
    nonce: str
    expires: int  # unix seconds


class Signer:
    """Signs and checks session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self.secret, purpose.encode() + b"\x00" + data, hashlib.sha256).hexdigest()

    def dump(self, data: SessionData) -> str:
        body = base64.urlsafe_b64encode(json.dumps(
            {"a": data.account_id, "e": data.epoch, "n": data.nonce, "x": data.expires}).encode()).decode()
        return f"{body}.{self._mac('session', body.encode())}"

    def load(self, cookie: str | None, now: datetime) -> SessionData | None:
        """The session in a cookie, or None when it is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac("session", body.encode())):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(body.encode()))
            data = SessionData(raw["a"], int(raw["e"]), str(raw["n"]), int(raw["x"]))
        except (ValueError, KeyError, TypeError):
            return None
        return data if data.expires > now.timestamp() else None

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf", nonce.encode())


def session_id(data: SessionData) -> str:
    """The id a session is ended by: the sha256 of its nonce (the nonce itself is never stored)."""
    return hashlib.sha256(data.nonce.encode("utf-8")).hexdigest()


def new_session(account_id: int | None, epoch: int, now: datetime, minutes: int) -> SessionData:
    return SessionData(account_id, epoch, secrets.token_urlsafe(16), int((now + timedelta(minutes=minutes)).timestamp()))


def set_session_cookie(response: Any, request: Request, data: SessionData) -> None:
    web = request.app.state.app.settings.web
    response.set_cookie(SESSION_COOKIE, request.app.state.signer.dump(data), max_age=web.session_minutes * 60,
                        httponly=True, samesite="lax", secure=web.public_url.startswith("https://"), path="/")


def request_session(request: Request) -> SessionData:
    """This request's session; a fresh visitor session (set on the response by the middleware) when none."""
    cached = getattr(request.state, "session", None)
    if cached is not None:
        return cached
    app = request.app.state.app
    data = request.app.state.signer.load(request.cookies.get(SESSION_COOKIE), app.clock.now())
    if data is None:
        data = new_session(None, 0, app.clock.now(), app.settings.web.session_minutes)
        request.state.new_session = data
    request.state.session = data
    return data


def csrf_for(request: Request) -> str:
    return request.app.state.signer.csrf_token(request_session(request).nonce)


def has_nul(*texts: str) -> bool:
    return any("\x00" in text for text in texts)


def check_csrf(request: Request, token: str | None) -> None:
    """403 unless `token` is this session's CSRF token."""
    if not token or not hmac.compare_digest(token, csrf_for(request)):
        raise HTTPException(403, "表单已过期或来源不明，请返回重试 / the form expired or did not come from this site: go back and try again")


def current_user(request: Request) -> WebUser | None:
    """The logged-in user, or None (no session, expired, logged out, or the account changed since)."""
    if hasattr(request.state, "user"):
        return request.state.user
    data = request_session(request)
    user = (session_user(request.app.state.app.read_sessions, data.account_id, data.epoch, session_id(data))
            if data.account_id is not None else None)
    request.state.user = user
    return user


class LoginRedirect(Exception):
    """Raised by `require_role`: send the browser to `location` (login or password change)."""

    def __init__(self, location: str) -> None:
        self.location = location


def require_role(role: str, *, allow_initial_password: bool = False) -> Callable[[Request], WebUser]:
    """A dependency: the logged-in user of `role`; a visitor goes to the login page, a user still on the
    initial password to the password page (unless `allow_initial_password`), another role gets 403."""

    def dependency(request: Request) -> WebUser:
        user = current_user(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRedirect(f"/login?next={quote(target, safe='')}")
        if user.must_change_password and not allow_initial_password:
            raise LoginRedirect("/password")
        if user.role != role:
            raise HTTPException(403, "此账户无权访问该页面 / this account may not open this page")
        return user

    return dependency


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (another site, a scheme) becomes the home page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
