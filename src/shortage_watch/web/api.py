"""The token API for distributors' systems: `/api/v1` (Bearer token).

POST /records (JSON body), POST /files (one multipart file), GET /obligations and
/obligations/{id}. Errors are JSON `{"error": "中文 / English"}`: 401 (no or bad token,
with WWW-Authenticate), 403 (disabled account, or not a distributor), 413 (over
web.upload_max_bytes, answered by the body limit in app.py), 415, 422, 429 (with
Retry-After, web.api_requests_per_minute per token).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from shortage_watch.domain.obligations import case_number
from shortage_watch.domain.records import RECORD_KINDS
from shortage_watch.domain.states import ObligationState
from shortage_watch.services.accounts import WebUser, use_token
from shortage_watch.services.submissions import Answer, Submission, request_fingerprint, submit, submit_once
from shortage_watch.store.portal_queries import ObligationRow, obligation_of, obligation_timeline, obligations_page

router = APIRouter(prefix="/api/v1", tags=["api"])

STATES = tuple(ObligationState)
FILE_FORMATS = {".csv": "csv", ".xlsx": "xlsx", ".json": "json"}
BEARER = {"WWW-Authenticate": 'Bearer realm="shortage-watch"'}


class ApiError(HTTPException):
    """An API error answered as JSON {"error": ...} with its headers."""


def token_user(request: Request) -> WebUser:
    """The distributor whose Bearer token this request carries (401/403/429 otherwise)."""
    app = request.app.state.app
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "需要 API 令牌（Authorization: Bearer …） / an API token is required "
                            "(Authorization: Bearer …)", headers=BEARER)
    check = use_token(app.sessions, app.settings.web, secret.strip(), method=request.method, path=request.url.path, now=app.clock.now())
    if check.retry_after is not None:
        raise ApiError(429, "请求过于频繁，请稍后再试 / too many requests: try again later",
                       headers={"Retry-After": str(check.retry_after)})
    if check.disabled:
        raise ApiError(403, "账户已停用 / the account is disabled")
    if check.user is None:
        raise ApiError(401, "API 令牌无效或已撤销 / the API token is invalid or revoked",
                       headers={**BEARER, "WWW-Authenticate": 'Bearer realm="shortage-watch", error="invalid_token"'})
    if check.user.role != "distributor" or check.user.party_code is None:
        raise ApiError(403, "此账户不能使用配送企业接口 / this account may not use the distributor API")
    return check.user


def _kind(kind: str | None) -> str:
    if kind is None:
        return "auto"
    if kind not in (*RECORD_KINDS, "auto"):
        raise ApiError(422, f"未知的记录类型 {kind!r} / unknown kind {kind!r} (expected one of {', '.join(RECORD_KINDS)})")
    return kind


def _answer(submission: Submission, tz: ZoneInfo) -> tuple[int, dict[str, Any]]:
    if submission.result.unusable:
        reason = submission.result.errors[0]["reason"] if submission.result.errors else "无法读取 / unreadable"
        return 422, {"error": reason, **submission.as_json(tz)}
    return 200, submission.as_json(tz)


def _respond(answer: Answer) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def _store(request: Request, user: WebUser, *, content: bytes, name: str, kind: str, format: str) -> JSONResponse:
    app = request.app.state.app
    ingest = app.ingest_deps()
    key = request.headers.get("idempotency-key")
    now = app.clock.now()
    if key is not None:
        key = key.strip()
        if not 1 <= len(key) <= 200 or not key.isprintable():
            raise ApiError(422, "Idempotency-Key 须为 1–200 个可打印字符 / Idempotency-Key must be 1-200 printable characters")
        fingerprint = request_fingerprint(request.url.path, kind, name, content)
        return _respond(submit_once(ingest, user, key=key, fingerprint=fingerprint, content=content, name=name,
                                    kind=kind, now=now, format=format, answer=_answer))
    submission = submit(ingest, user, content=content, name=name, kind=kind, channel="api", now=now, format=format)
    status, body = _answer(submission, ingest.timezone)
    return JSONResponse(body, status_code=status)


@router.post("/records", summary="Hand in records as JSON (one object, a list, or {\"records\": [...]})")
async def post_records(request: Request, kind: str | None = Query(None, description="record kind for records without record_kind"),
                       user: WebUser = Depends(token_user)) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "请以 application/json 发送 / send the records as application/json")
    content = await request.body()
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_store, request, user, content=content, name="api-records.json", kind=_kind(kind),
                                   format="json")


@router.post("/files", summary="Hand in one CSV, XLSX or JSON file (multipart field `file`)")
async def post_file(request: Request, kind: str | None = Query(None), user: WebUser = Depends(token_user)) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise ApiError(415, "请以 multipart/form-data 上传文件（字段 file） / upload the file as multipart/form-data "
                            "(field `file`)")
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(422, "缺少文件字段 file / the multipart field `file` is missing")
    name = upload.filename or "upload"
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if suffix not in FILE_FORMATS:
        raise ApiError(415, f"只接受 .csv、.xlsx 或 .json 文件：{name} / only .csv, .xlsx or .json files: {name}")
    content = await upload.read()
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_store, request, user, content=content, name=name, kind=_kind(kind),
                                   format=FILE_FORMATS[suffix])


def obligation_json(ob: ObligationRow, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": case_number("O", ob.id),
        "kind": ob.kind,
        "state": ob.state,
        "notice_id": ob.notice_id,
        "product_code": ob.product_code,
        "product_name": ob.product_name,
        "manufacturer": ob.manufacturer,
        "received_on": ob.received_on.isoformat(),
        "due_on": ob.due_on.isoformat(),
        "due_at": ob.due_at.astimezone(tz).isoformat(),
        "calendar": ob.calendar_status,
        "fulfilled_at": ob.fulfilled_at.astimezone(tz).isoformat() if ob.fulfilled_at else None,
        "late_working_days": ob.late_working_days,
    }


def _since(text: str | None, tz: ZoneInfo) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, f"since 不是日期或日期时间：{text!r} / since is not an ISO date or date-time: {text!r}") from None
    value = value if value.tzinfo else value.replace(tzinfo=tz)
    if not representable(value):
        raise ApiError(422, f"since 超出可表示的时间范围：{text!r} / since is outside the range of dates: {text!r}")
    return value


@router.get("/obligations", summary="My obligations, newest first: {total, limit, offset, data}")
def list_obligations(request: Request, state: str | None = None, since: str | None = None,
                     limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                     user: WebUser = Depends(token_user)) -> dict[str, Any]:
    app = request.app.state.app
    tz = ZoneInfo(app.settings.timezone)
    states = None
    if state is not None:
        states = [s.strip() for s in state.split(",") if s.strip()]
        unknown = [s for s in states if s not in STATES]
        if unknown:
            raise ApiError(422, f"未知的状态 {unknown[0]!r} / unknown state {unknown[0]!r} (one of {', '.join(STATES)})")
    with app.read_sessions() as session:
        page = obligations_page(session, user.party_code, states=states, since=_since(since, tz), limit=limit,
                                offset=offset)
    return {"total": page.total, "limit": limit, "offset": offset, "data": [obligation_json(o, tz) for o in page.rows]}


MAX_ID = 2**31 - 1  # ids are INTEGER columns: a larger number names nothing
def representable(instant: datetime, *zones: tzinfo) -> bool:
    """Whether the aware `instant` exists in UTC, as the ledger stores it, and in each of `zones` where
    it is shown (years 1-9999 only)."""
    try:
        for zone in (timezone.utc, *zones):
            instant.astimezone(zone)
    except OverflowError:
        return False
    return True


OBLIGATION_ID = re.compile(r"^(?:SW-O-)?0*(\d{1,12})$", re.IGNORECASE)


def parse_obligation_id(text: str) -> int | None:
    """'SW-O-000123' or '123' as 123; None for anything else."""
    match = OBLIGATION_ID.match(text.strip())
    return int(match.group(1)) if match else None


@router.get("/obligations/{obligation_id}", summary="One of my obligations with its timeline")
def get_obligation(request: Request, obligation_id: str, user: WebUser = Depends(token_user)) -> dict[str, Any]:
    app = request.app.state.app
    tz = ZoneInfo(app.settings.timezone)
    number = parse_obligation_id(obligation_id)
    with app.read_sessions() as session:
        ob = obligation_of(session, user.party_code, number) if number is not None else None
        if ob is None:
            raise ApiError(404, f"没有编号为 {obligation_id} 的义务 / no obligation {obligation_id}")
        timeline = obligation_timeline(session, ob.id)
    return {**obligation_json(ob, tz), "timeline": [
        {"at": e.at.astimezone(tz).isoformat(), "what": e.what, "detail": json.loads(json.dumps(e.detail, default=str))}
        for e in timeline]}
