"""The FastAPI application: the distributor portal (pages), the token API, static files.

`create_app(app)` builds it on an App (settings, database, calendar, clock); it keeps no
state of its own besides the signing secret, so several processes may serve one database.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from shortage_watch import __version__
from shortage_watch.web.security import (
    NUL_REFUSED,
    LoginRedirect,
    Signer,
    has_nul,
    load_session_secret,
    set_session_cookie,
)

if TYPE_CHECKING:
    from shortage_watch.app import App

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
BUSY = "系统繁忙，请稍后重试 / the service is busy: try again shortly"
INTERNAL = "内部错误，已记录 / internal error (logged)"
TOO_LARGE = "内容过大（上限 {limit} 字节） / the request is larger than {limit} bytes"
# A multipart upload carries its envelope (boundaries, part headers) on top of the file itself.
MULTIPART_ALLOWANCE = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


class BodyLimit:
    """ASGI middleware: a request body over the limit is answered 413 before any handler sees it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.limit + MULTIPART_ALLOWANCE
        declared = headers.get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        if not too_large:
            # Read the body here (chunked uploads declare no length) and stop at the limit.
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    too_large = True
                    break
                chunks.append(chunk)
                more = message.get("more_body", False)
        if too_large:
            path = scope.get("path", "")
            text = TOO_LARGE.format(limit=self.limit)
            response: Response = (JSONResponse({"error": text}, status_code=413) if path.startswith("/api/")
                                  else HTMLResponse(f"<p>{text}</p>", status_code=413))
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def is_iso_date(text: object) -> bool:
    """Whether `text` is a real day written YYYY-MM-DD (what an <input type=date> can show)."""
    try:
        return isinstance(text, str) and len(text) == 10 and date.fromisoformat(text) is not None
    except ValueError:
        return False


def create_app(app: "App") -> FastAPI:
    """The web application for `app` (an App: settings, sessions, clock, calendar)."""
    web = FastAPI(title="shortage_watch", version=__version__,
                  description="配送企业门户与接口 / distributor portal and API")
    web.state.app = app
    web.state.signer = Signer(load_session_secret(app.settings.web.session_secret_file))
    web.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    web.state.templates.env.tests["iso_date"] = is_iso_date
    web.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from shortage_watch.web import api, dashboard, portal

    web.include_router(api.router)
    web.include_router(portal.router)
    web.include_router(dashboard.router)

    @web.middleware("http")
    async def headers_and_session(request: Request, call_next: Any) -> Response:
        if has_nul(request.scope["path"], *(text for pair in request.query_params.multi_items() for text in pair)):
            response = refuse_nul(request)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not _is_api(request):
            response.headers.setdefault("Cache-Control", "no-store")
        fresh = getattr(request.state, "new_session", None)
        if fresh is not None and "set-cookie" not in response.headers:
            set_session_cookie(response, request, fresh)
        return response

    def refuse_nul(request: Request) -> Response:
        if _is_api(request):
            return JSONResponse({"error": NUL_REFUSED}, status_code=422)
        from shortage_watch.web.portal import error_page

        return error_page(request, 422, NUL_REFUSED, {})

    @web.exception_handler(LoginRedirect)
    async def login_redirect(request: Request, exc: LoginRedirect) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    # Starlette's own class: routing (404, 405), static files and form parsing (400) raise it, not FastAPI's subclass.
    @web.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None) or {}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "页面不存在 / not found"
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = "不支持此请求方法 / method not allowed"
        if exc.status_code == 400 and not isinstance(exc, HTTPException):  # a body Starlette could not parse
            detail = f"请求内容无法读取 / the request body could not be read: {detail}"
        if _is_api(request):
            return JSONResponse({"error": detail}, status_code=exc.status_code, headers=headers)
        from shortage_watch.web.portal import error_page

        return error_page(request, exc.status_code, detail, headers)

    @web.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"field": ".".join(str(p) for p in e["loc"][1:]) or None, "reason": e["msg"]} for e in exc.errors()]
        text = "请求参数无效 / invalid request parameters"
        if _is_api(request):
            return JSONResponse({"error": text, "errors": problems}, status_code=422)
        from shortage_watch.web.portal import error_page

        return error_page(request, 422, text, {})

    @web.exception_handler(OperationalError)
    async def busy(request: Request, exc: OperationalError) -> Response:
        # SQLite busy past its timeout, or the database gone: nothing was stored; the client may retry.
        log.warning("web: database unavailable for %s %s: %s", request.method, request.url.path,
                    str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)
        if _is_api(request):
            return JSONResponse({"error": BUSY}, status_code=503, headers={"Retry-After": "5"})
        from shortage_watch.web.portal import error_page

        return error_page(request, 503, BUSY, {"Retry-After": "5"})

    @web.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("web: %s %s failed", request.method, request.url.path)
        if _is_api(request):
            return JSONResponse({"error": INTERNAL}, status_code=500)
        return HTMLResponse(f"<p>{INTERNAL}</p>", status_code=500)

    @web.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    web.add_middleware(BodyLimit, limit=app.settings.web.upload_max_bytes)  # outermost: before anything reads
    return web
