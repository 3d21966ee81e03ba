"""The distributor portal: server-rendered pages and plain HTML forms (no script needed).

Log in, change the initial password, see my open obligations, enter a stoppage notice,
file the written report of an obligation, upload a filled template, download blank
templates, my history with a printable receipt (回执) per record, correct a record (a
new version with a reason), manage API tokens. Every form carries the session's CSRF
token; every page reads through store/portal_queries.py and writes through
services/submissions.py (the same ingest path as every other source).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from shortage_watch.domain.labels import label as label_of
from shortage_watch.domain.obligations import case_number, overdue_working_days
from shortage_watch.intake.columns import FIELDS, KIND_LABELS
from shortage_watch.services import accounts
from shortage_watch.services.accounts import AccountError, WebUser
from shortage_watch.services.submissions import Submission, receipt_json, submit
from shortage_watch.store.portal_queries import (
    ObligationRow,
    current_record,
    history,
    obligation_of,
    obligation_timeline,
    open_obligations,
    record_receipt,
    record_versions,
)
from shortage_watch.web import labels
from shortage_watch.web.api import MAX_ID, parse_obligation_id
from shortage_watch.web.security import (
    LANG_COOKIE,
    NUL_REFUSED,
    check_csrf,
    client_address,
    csrf_for,
    current_user,
    has_nul,
    new_session,
    request_session,
    require_role,
    safe_next,
    session_id,
    set_session_cookie,
)

if TYPE_CHECKING:
    from shortage_watch.app import App

router = APIRouter(include_in_schema=False)
distributor = require_role("distributor")
PAGE_SIZE = 50
UPLOAD_FORMATS = {"csv": "csv", "xlsx": "xlsx", "json": "json"}
EDITABLE_KINDS = ("stoppage_notice", "distributor_report")

# The notice form: key, Chinese label, English label, input type, required, choices
NOTICE_FIELDS: list[tuple[str, str, str, str, bool]] = [
    ("notice_id", "通知编号", "Notice number", "text", True),
    ("manufacturer", "生产企业", "Manufacturer", "text", True),
    ("product_code", "药品编码", "Drug code", "text", True),
    ("product_name", "药品名称（通用名）", "Drug name (generic)", "text", True),
    ("specification", "规格", "Specification", "text", False),
    ("kind", "类型", "Kind", "select", True),
    ("notified_on", "收到通知日期", "Date the notice was received", "date", True),
    ("expected_resume_on", "预计恢复日期", "Expected resumption", "date", False),
    ("priority_class", "药品类别", "Drug class", "select", False),
    ("region_code", "行政区划代码（不填则为本企业所在地区）", "Region code (default: your region)", "text", False),
    ("reason", "原因", "Reason", "textarea", False),
]
REPORT_FIELDS: list[tuple[str, str, str, str, bool]] = [
    ("report_id", "反馈编号", "Report number", "text", True),
    ("hospitals_notified", "已通知医疗机构数", "Hospitals notified", "number", False),
    ("substitutes", "替代药品", "Substitutes", "textarea", False),
    ("contact_name", "联系人", "Contact name", "text", False),
    ("contact_phone", "联系电话", "Contact phone", "text", False),
]


# ---- rendering --------------------------------------------------------------------------------------


def _lang(request: Request) -> str:
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "zh"


def render(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    """A page in the visitor's language, with the user, the CSRF token and the label helpers."""
    app = request.app.state.app
    lang = _lang(request)
    tz = ZoneInfo(app.settings.timezone)

    def L(zh: str, en: str) -> str:  # noqa: N802 (a one-letter helper reads best in templates)
        return en if lang == "en" else zh

    def local(instant: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return instant.astimezone(tz).strftime(fmt) if instant else ""

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return request.app.state.templates.TemplateResponse(request, template, {
        "lang": lang, "L": L, "pick": lambda text: labels.pick(text, lang), "local": local,
        "user": current_user(request), "csrf": csrf_for(request), "number": lambda i: case_number("O", i),
        "state_label": lambda s: label_of("obligation_state", s, lang), "label_of": lambda group, value: label_of(group, value, lang),
        "choice": lambda field, value: labels.choice_label(field, value, lang),
        "field_label": lambda key: labels.field_label(key, lang), "choices": labels.CHOICES,
        "kind_label": lambda k: label_of("record_kind", k, lang), "timeline_label": lambda what: labels.timeline_label(what, lang),
        "channel_label": lambda c: L(*labels.CHANNEL_LABELS.get(c, (c, c))) if c else "",
        "here": quote(here, safe=""), **context,
    }, status_code=status, headers=headers)


def error_page(request: Request, status: int, message: str, headers: dict[str, str]) -> HTMLResponse:
    return render(request, "error.html", status=status, headers=headers, status_code=status, message=message)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    check_csrf(request, form.get("csrf") if isinstance(form.get("csrf"), str) else None)
    if has_nul(*(text for pair in form.multi_items() for text in pair if isinstance(text, str))):
        raise HTTPException(422, NUL_REFUSED)
    return {key: value for key, value in form.items()}


def _text(form: dict[str, Any], key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _app(request: Request) -> "App":
    return request.app.state.app


# ---- language, login, password ----------------------------------------------------------------------


@router.get("/lang/{lang}")
def switch_language(request: Request, lang: str, next: str | None = None) -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, "en" if lang == "en" else "zh", max_age=365 * 24 * 3600, samesite="lax",
                        httponly=True, path="/")
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error=None, name="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    app = _app(request)
    name, target = _text(form, "name"), safe_next(_text(form, "next"))
    outcome = await run_in_threadpool(accounts.log_in, app.sessions, app.settings.web, name=name, password=str(form.get("password") or ""),
                                      address=client_address(request), now=app.clock.now())
    if outcome.user is None:
        if outcome.paused_until is not None:
            minutes = max(1, math.ceil((outcome.paused_until - app.clock.now()).total_seconds() / 60))
            error = f"登录失败次数过多，请 {minutes} 分钟后再试 / too many failed logins: try again in {minutes} minutes"
            return render(request, "login.html", status=429, headers={"Retry-After": str(minutes * 60)},
                          next=target, error=error, name=name)
        return render(request, "login.html", status=401, next=target, name=name,
                      error="账户名或密码不正确 / wrong account name or password")
    response = RedirectResponse("/password" if outcome.user.must_change_password else target, status_code=303)
    # A new session (new nonce) at login: a cookie planted before login is worth nothing after it.
    set_session_cookie(response, request, new_session(outcome.user.id, outcome.epoch, app.clock.now(),
                                                      app.settings.web.session_minutes))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End this session on the server (a copy of its cookie opens nothing after) and start a visitor's."""
    await _form(request)
    app = _app(request)
    user = current_user(request)
    if user is not None:
        data = request_session(request)
        await run_in_threadpool(accounts.log_out, app.sessions, account_id=user.id, session_id=session_id(data),
                                expires_at=datetime.fromtimestamp(data.expires, timezone.utc), now=app.clock.now())
    response = RedirectResponse("/login", status_code=303)
    set_session_cookie(response, request, new_session(None, 0, app.clock.now(), app.settings.web.session_minutes))
    return response


def _any_role_user(request: Request) -> WebUser:
    """The password page is every role's: the logged-in user whatever the role."""
    from shortage_watch.web.security import LoginRedirect

    user = current_user(request)
    if user is None:
        raise LoginRedirect("/login?next=%2Fpassword")
    return user


@router.get("/password")
def password_form(request: Request, user: WebUser = Depends(_any_role_user)) -> HTMLResponse:
    return render(request, "password.html", error=None, first=user.must_change_password)


@router.post("/password")
async def change_password(request: Request, user: WebUser = Depends(_any_role_user)) -> Response:
    form = await _form(request)
    app = _app(request)
    new = str(form.get("new") or "")
    if new != str(form.get("repeat") or ""):
        return render(request, "password.html", status=422, first=user.must_change_password,
                      error="两次输入的新密码不一致 / the two new passwords differ")
    try:
        epoch = await run_in_threadpool(accounts.change_password, app.sessions, user, current=str(form.get("current") or ""),
                                        new=new, now=app.clock.now())
    except AccountError as exc:
        return render(request, "password.html", status=422, first=user.must_change_password, error=str(exc))
    response = RedirectResponse("/?password=changed", status_code=303)
    set_session_cookie(response, request, new_session(user.id, epoch, app.clock.now(), app.settings.web.session_minutes))
    return response


# ---- home and obligations ---------------------------------------------------------------------------


def _deadline_view(app: Any, ob: ObligationRow, now: datetime) -> dict[str, Any]:
    """Working days left (or overdue) for an obligation at `now`, by the official calendar."""
    calendar = app.calendar
    overdue = overdue_working_days(calendar, ob.due_on, ob.due_at, now)
    left = None if overdue is not None else calendar.working_days_between(calendar.local_date(now), ob.due_on)
    return {"ob": ob, "overdue": overdue, "left": left}


def _home_user(request: Request) -> WebUser:
    """The home page is the distributor's; an officer's home is the bureau dashboard."""
    from shortage_watch.web.security import LoginRedirect

    user = current_user(request)
    if user is not None and user.role == "officer" and not user.must_change_password:
        raise LoginRedirect("/bureau/")
    return distributor(request)


@router.get("/")
def home(request: Request, user: WebUser = Depends(_home_user)) -> HTMLResponse:
    app = _app(request)
    now = app.clock.now()
    with app.read_sessions() as session:
        rows = open_obligations(session, user.party_code)
    items = [_deadline_view(app, ob, now) for ob in rows]
    return render(request, "home.html", items=items, changed=request.query_params.get("password") == "changed")


def _own_obligation(request: Request, user: WebUser, obligation_id: str) -> ObligationRow:
    number = parse_obligation_id(obligation_id)
    with _app(request).read_sessions() as session:
        ob = obligation_of(session, user.party_code, number) if number is not None else None
    if ob is None:
        raise HTTPException(404, "没有这项义务 / no such obligation")
    return ob


def _reportable(ob: ObligationRow) -> ObligationRow:
    """An obligation the report form answers: a stoppage notice's report (an explanation owed for a
    hospital shortage is answered by a report describing the product, by file or API)."""
    if ob.kind != "report" or not ob.notice_id:
        raise HTTPException(404, "这项义务请以文件或接口提交说明 / answer this obligation by file or API")
    return ob


@router.get("/obligations/{obligation_id}")
def obligation_page(request: Request, obligation_id: str, user: WebUser = Depends(distributor)) -> HTMLResponse:
    app = _app(request)
    ob = _own_obligation(request, user, obligation_id)
    with app.read_sessions() as session:
        timeline = obligation_timeline(session, ob.id)
    return render(request, "obligation.html", item=_deadline_view(app, ob, app.clock.now()), timeline=timeline)


# ---- entering records -------------------------------------------------------------------------------


def _errors_by_field(submission: Submission | None, fields: list[tuple[str, str, str, str, bool]]) -> tuple[dict[str, str], list[str]]:
    """Row errors of a one-record form: per field shown on the form, and the others (listed above it)."""
    shown = {key for key, *_ in fields}
    by_field: dict[str, str] = {}
    general: list[str] = []
    for error in submission.result.errors if submission else []:
        if error.get("field") in shown and error["field"] not in by_field:
            by_field[error["field"]] = error["reason"]
        else:
            general.append(error["reason"])
    return by_field, general


def _submit(app: "App", user: WebUser, **arrival: Any) -> Submission:
    """`submit` with the ingest's deps built here, in the worker thread (the directory may reload from disk)."""
    return submit(app.ingest_deps(), user, **arrival)


async def _submit_record(request: Request, user: WebUser, record: dict[str, Any], *, channel: str,
                         reason: str | None = None) -> Submission:
    app = _app(request)
    content = json.dumps(record, ensure_ascii=False).encode("utf-8")
    return await run_in_threadpool(_submit, app, user, content=content, name=f"portal-{record['record_kind']}.json",
                                   kind=record["record_kind"], channel=channel, now=app.clock.now(), reason=reason,
                                   format="json")


def _after_store(submission: Submission) -> Response | None:
    """Where a stored one-record form goes: its receipt; None when it was refused."""
    if submission.receipts:
        stored = submission.receipts[0]
        return RedirectResponse(f"/records/{stored.kind}/{stored.pk}?stored=1", status_code=303)
    return None


@router.get("/notices/new")
def notice_form(request: Request, user: WebUser = Depends(distributor)) -> HTMLResponse:
    return render(request, "notice_form.html", fields=NOTICE_FIELDS, values={}, errors={}, general=[],
                  action="/notices/new", title=("录入停产断供通知", "Enter a stoppage notice"), correcting=None)


@router.post("/notices/new")
async def notice_submit(request: Request, user: WebUser = Depends(distributor)) -> Response:
    form = await _form(request)
    values = {key: _text(form, key) for key, *_ in NOTICE_FIELDS}
    record = {"record_kind": "stoppage_notice", "distributor_code": user.party_code,
              **{k: v for k, v in values.items() if v}}
    submission = await _submit_record(request, user, record, channel="form")
    stored = _after_store(submission)
    if stored is not None:
        return stored
    errors, general = _errors_by_field(submission, NOTICE_FIELDS)
    if submission.result.duplicates:
        general.append("已收到内容完全相同的通知，未重复保存 / an identical notice was received before; nothing new stored")
    return render(request, "notice_form.html", status=422 if errors or general else 200, fields=NOTICE_FIELDS,
                  values=values, errors=errors, general=general, action="/notices/new",
                  title=("录入停产断供通知", "Enter a stoppage notice"), correcting=None)


def _report_defaults(ob: ObligationRow) -> dict[str, str]:
    return {"report_id": f"R-{ob.notice_id or ob.id}"}


@router.get("/obligations/{obligation_id}/report")
def report_form(request: Request, obligation_id: str, user: WebUser = Depends(distributor)) -> HTMLResponse:
    app = _app(request)
    ob = _reportable(_own_obligation(request, user, obligation_id))
    return render(request, "report_form.html", item=_deadline_view(app, ob, app.clock.now()), fields=REPORT_FIELDS,
                  values=_report_defaults(ob), errors={}, general=[])


@router.post("/obligations/{obligation_id}/report")
async def report_submit(request: Request, obligation_id: str, user: WebUser = Depends(distributor)) -> Response:
    form = await _form(request)
    app = _app(request)
    ob = _reportable(_own_obligation(request, user, obligation_id))
    values = {key: _text(form, key) for key, *_ in REPORT_FIELDS}
    now = app.clock.now().astimezone(ZoneInfo(app.settings.timezone))
    record: dict[str, Any] = {"record_kind": "distributor_report", "distributor_code": user.party_code,
                              "submitted_at": now.replace(microsecond=0).isoformat(),
                              **{k: v for k, v in values.items() if v}}
    record["notice_id"] = ob.notice_id
    submission = await _submit_record(request, user, record, channel="form")
    stored = _after_store(submission)
    if stored is not None:
        return stored
    errors, general = _errors_by_field(submission, REPORT_FIELDS)
    if submission.result.duplicates:
        general.append("该反馈编号已提交过相同内容 / this report number was already filed with the same content")
    return render(request, "report_form.html", status=422, item=_deadline_view(app, ob, app.clock.now()),
                  fields=REPORT_FIELDS, values=values, errors=errors, general=general)


# ---- upload and templates ---------------------------------------------------------------------------


@router.get("/upload")
def upload_form(request: Request, user: WebUser = Depends(distributor)) -> HTMLResponse:
    return render(request, "upload.html", submission=None, error=None, kinds=EDITABLE_KINDS)


@router.post("/upload")
async def upload(request: Request, user: WebUser = Depends(distributor)) -> Response:
    form = await request.form()
    check_csrf(request, form.get("csrf") if isinstance(form.get("csrf"), str) else None)
    app = _app(request)
    upload = form.get("file")
    kind = form.get("kind") if form.get("kind") in (*EDITABLE_KINDS, "auto") else "auto"
    if upload is None or isinstance(upload, str) or not upload.filename:
        return render(request, "upload.html", status=422, submission=None, kinds=EDITABLE_KINDS,
                      error="请选择要上传的文件 / choose a file to upload")
    name = upload.filename
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in UPLOAD_FORMATS:
        return render(request, "upload.html", status=415, submission=None, kinds=EDITABLE_KINDS,
                      error=f"只接受 .csv、.xlsx 或 .json 文件：{name} / only .csv, .xlsx or .json files: {name}")
    content = await upload.read()
    submission = await run_in_threadpool(_submit, app, user, content=content, name=name, kind=str(kind),
                                         channel="upload", now=app.clock.now(), format=UPLOAD_FORMATS[suffix])
    tz = ZoneInfo(app.settings.timezone)
    return render(request, "upload.html", submission=submission, name=name, error=None, kinds=EDITABLE_KINDS,
                  receipts=[(r, receipt_json(r, tz)) for r in submission.receipts])


@router.get("/templates/{filename}")
def blank_template(request: Request, filename: str, user: WebUser = Depends(distributor)) -> Response:
    from shortage_watch.intake.templates_blank import template_csv, template_xlsx

    kind, _, fmt = filename.partition(".")
    if kind not in EDITABLE_KINDS or fmt not in ("csv", "xlsx"):
        raise HTTPException(404, "没有这个模板 / no such template")
    content = template_xlsx(kind) if fmt == "xlsx" else template_csv(kind)
    media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if fmt == "xlsx"
             else "text/csv; charset=utf-8")
    download = f"{KIND_LABELS[kind]}.{fmt}"
    return Response(content, media_type=media, headers={
        "Content-Disposition": f"attachment; filename=\"{kind}.{fmt}\"; filename*=UTF-8''{quote(download)}"})


# ---- history, receipts, corrections -----------------------------------------------------------------


@router.get("/history")
def history_page(request: Request, page: int = 1, user: WebUser = Depends(distributor)) -> HTMLResponse:
    page = max(1, page)
    with _app(request).read_sessions() as session:
        total, rows = history(session, user.party_code, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(request, "history.html", rows=rows, page=page, pages=max(1, -(-total // PAGE_SIZE)), total=total)


def _own_record(request: Request, user: WebUser, kind: str, pk: int) -> tuple[Any, dict[str, Any]]:
    if kind not in EDITABLE_KINDS or not 0 < pk <= MAX_ID:
        raise HTTPException(404, "没有这条记录 / no such record")
    with _app(request).read_sessions() as session:
        receipt = record_receipt(session, user.party_code, kind, pk)
        data = current_record(session, user.party_code, kind, pk)
        versions = record_versions(session, kind, *data["_key"]) if data else []
    if receipt is None or data is None:
        raise HTTPException(404, "没有这条记录 / no such record")
    return receipt, {"data": data, "versions": versions}


@router.get("/records/{kind}/{pk}")
def record_page(request: Request, kind: str, pk: int, user: WebUser = Depends(distributor)) -> HTMLResponse:
    app = _app(request)
    receipt, found = _own_record(request, user, kind, pk)
    fields = [(key, zh) for key, zh, _required in FIELDS[kind]]
    return render(request, "receipt.html", receipt=receipt, data=found["data"], versions=found["versions"],
                  fields=fields, stored=request.query_params.get("stored") == "1", printed_at=app.clock.now())


def _correction_fields(kind: str) -> list[tuple[str, str, str, str, bool]]:
    if kind == "stoppage_notice":
        return [f for f in NOTICE_FIELDS if f[0] != "notice_id"]
    return [f for f in REPORT_FIELDS if f[0] != "report_id"]


@router.get("/records/{kind}/{pk}/correct")
def correction_form(request: Request, kind: str, pk: int, user: WebUser = Depends(distributor)) -> HTMLResponse:
    receipt, found = _own_record(request, user, kind, pk)
    values = {k: "" if v is None else str(v) for k, v in found["data"].items() if not k.startswith("_")}
    return render(request, "notice_form.html", fields=_correction_fields(kind), values=values, errors={}, general=[],
                  action=f"/records/{kind}/{pk}/correct", correcting=receipt,
                  title=("更正记录", "Correct a record"))


@router.post("/records/{kind}/{pk}/correct")
async def correction_submit(request: Request, kind: str, pk: int, user: WebUser = Depends(distributor)) -> Response:
    form = await _form(request)
    receipt, found = _own_record(request, user, kind, pk)
    fields = _correction_fields(kind)
    values = {key: _text(form, key) for key, *_ in fields}
    reason = _text(form, "correction_reason")
    current = {k: v for k, v in found["data"].items() if not k.startswith("_") and v is not None}
    record = {**current, **values, "record_kind": kind, "distributor_code": user.party_code}
    record = {k: v for k, v in record.items() if v != ""}
    errors: dict[str, str] = {}
    general: list[str] = []
    if not reason:
        errors["correction_reason"] = "请填写更正原因 / give the reason for the correction"
    else:
        submission = await _submit_record(request, user, record, channel="correction", reason=reason[:1000])
        stored = _after_store(submission)
        if stored is not None:
            return stored
        errors, general = _errors_by_field(submission, fields)
        if submission.result.duplicates:
            general.append("内容没有变化，未保存新版本 / nothing changed: no new version stored")
    return render(request, "notice_form.html", status=422, fields=fields, values={**values, "correction_reason": reason},
                  errors=errors, general=general, action=f"/records/{kind}/{pk}/correct", correcting=receipt,
                  title=("更正记录", "Correct a record"))


# ---- API tokens ---------------------------------------------------------------------------------------


@router.get("/tokens")
def tokens_page(request: Request, user: WebUser = Depends(distributor)) -> HTMLResponse:
    return render(request, "tokens.html", tokens=accounts.list_tokens(_app(request).read_sessions, user.id), secret=None)


@router.post("/tokens")
async def token_create(request: Request, user: WebUser = Depends(distributor)) -> HTMLResponse:
    form = await _form(request)
    app = _app(request)
    _row, secret = await run_in_threadpool(accounts.create_token, app.sessions, account_id=user.id,
                                           name=_text(form, "name") or "token", now=app.clock.now(), actor=user.actor)
    return render(request, "tokens.html", tokens=accounts.list_tokens(app.read_sessions, user.id), secret=secret)


@router.post("/tokens/{token_id}/revoke")
async def token_revoke(request: Request, token_id: int, user: WebUser = Depends(distributor)) -> Response:
    await _form(request)
    app = _app(request)
    if not 0 < token_id <= MAX_ID:
        raise HTTPException(404, f"没有编号为 {token_id} 的令牌 / no token with id {token_id}")
    try:
        await run_in_threadpool(accounts.revoke_token, app.sessions, token_id, now=app.clock.now(), actor=user.actor,
                                account_id=user.id)
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from None
    return RedirectResponse("/tokens", status_code=303)

