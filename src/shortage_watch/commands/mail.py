"""`mail preview`, `mail test`, `outbox list`, `outbox retry`."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shortage_watch.clock import utc_now
from shortage_watch.commands import CommandError, Context, positive_int
from shortage_watch.domain.labels import zh_en
from shortage_watch.mail.names import LANGUAGES

if TYPE_CHECKING:
    from shortage_watch.store.tables import Alert

STATUSES = ("pending", "sending", "sent", "dead", "digest", "digested", "undeliverable", "held", "inhibited", "stale", "superseded")


def register(sub: argparse._SubParsersAction) -> None:
    mail = sub.add_parser("mail", help="preview templates, send a test message")
    mail_sub = mail.add_subparsers(dest="mail_command", metavar="ACTION")
    mail_sub.required = True
    preview = mail_sub.add_parser("preview", help="render a template with sample data")
    preview.add_argument("template", help="e.g. written_reminder, digest, monthly_summary")
    preview.add_argument("--lang", choices=LANGUAGES, help="default: mail.language")
    preview.add_argument("--format", choices=("text", "html", "eml"), help="default: from --output's suffix, else text")
    preview.add_argument("--output", type=Path, help="write to this file instead of the terminal")
    preview.set_defaults(handler=mail_preview)
    test = mail_sub.add_parser("test", help="send one test message now through the configured transport")
    test.add_argument("--to", required=True, help="recipient address")
    test.add_argument("--lang", choices=LANGUAGES, help="default: mail.language")
    test.set_defaults(handler=mail_test)

    outbox = sub.add_parser("outbox", help="the alerts waiting, sent or dead")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", metavar="ACTION")
    outbox_sub.required = True
    listing = outbox_sub.add_parser("list", help="list outbox rows (default: pending and dead)")
    listing.add_argument("--status", choices=STATUSES, help="only rows in this state")
    listing.add_argument("--limit", type=positive_int, default=100)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=outbox_list)
    retry = outbox_sub.add_parser("retry", help="requeue a dead (or waiting) alert to be sent at once")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=positive_int, help="alert id (see outbox list)")
    target.add_argument("--all-dead", action="store_true", help="requeue every dead alert")
    retry.set_defaults(handler=outbox_retry)


def mail_preview(args: argparse.Namespace, ctx: Context) -> int:
    """Render TEMPLATE with sample data; 2 when it does not exist or fails to render."""
    from shortage_watch.mail.message import build_message
    from shortage_watch.mail.render import RenderError
    from shortage_watch.mail.samples import sample_context

    renderer = ctx.app.renderer
    if args.template not in renderer.available():
        known = ", ".join(renderer.available())
        raise CommandError(zh_en(f"没有名为 {args.template!r} 的邮件模板，可用：{known}", f"unknown template {args.template!r}; known: {known}"))
    lang = args.lang or ctx.settings.mail.language
    fmt = args.format or _format_for(args.output)
    context = sample_context(args.template)
    try:
        rendered = renderer.render(args.template, context, lang)
    except RenderError as exc:
        raise CommandError(zh_en("邮件模板无法生成", str(exc))) from None
    if fmt == "eml":
        envelope = build_message(
            rendered, sender=ctx.settings.mail.from_, to=context["recipient"]["email"] or "preview@example.com",
            dedup_key=f"preview:{args.template}", installation="preview", thread_key=context.get("thread_key"), sent_at=utc_now(),
            reply_to=ctx.settings.mail.reply_to, case_number=context.get("case_number"), tz=ctx.settings.timezone,
            attachments=_preview_attachments(args.template, context),
        )
        data = envelope.data
    elif fmt == "html":
        data = rendered.html.encode("utf-8")
    else:
        data = f"Subject: {rendered.subject}\n\n{rendered.text}".encode("utf-8")
    if args.output is None:
        print(data.decode("utf-8"), end="")
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        raise CommandError(zh_en(f"无法写入 {args.output}", f"--output {args.output}: {exc.strerror or exc}")) from None
    print(zh_en(f"已将 {args.template}（{lang}，{fmt}）写入 {args.output}", f"wrote {args.template} ({lang}, {fmt}) to {args.output}"))
    return 0


def _format_for(output: Path | None) -> str:
    if output is not None and output.suffix.lower() in (".html", ".htm"):
        return "html"
    if output is not None and output.suffix.lower() == ".eml":
        return "eml"
    return "text"


def _preview_attachments(template: str, context: dict[str, Any]) -> tuple:
    if template != "monthly_summary":
        return ()
    from shortage_watch.mail.workbook import monthly_attachment

    return (monthly_attachment(context),)


def mail_test(args: argparse.Namespace, ctx: Context) -> int:
    """Send the `test` template to --to now (not through the outbox); 1 when it was not accepted."""
    from shortage_watch.mail.message import AddressError, build_message
    from shortage_watch.mail.render import RenderError
    from shortage_watch.mail.samples import sample_test_context

    app = ctx.app
    lang = args.lang or ctx.settings.mail.language
    context = sample_test_context(args.to)
    context.update(written_at=app.clock.now().isoformat(), transport=app.transport.name, replica=app.replica_id)
    try:
        rendered = app.renderer.render("test", context, lang)
        # A test message goes around the ledger (no database needed): the replica id,
        # unique per run, stands in for the installation id.
        envelope = build_message(
            rendered, sender=ctx.settings.mail.from_, to=args.to, dedup_key=f"test:{args.to}:{utc_now().isoformat()}",
            installation=app.replica_id, thread_key=None, sent_at=utc_now(), reply_to=ctx.settings.mail.reply_to,
            tz=ctx.settings.timezone,
        )
    except RenderError as exc:
        raise CommandError(zh_en("邮件模板无法生成", str(exc))) from None
    except AddressError as exc:
        raise CommandError(zh_en("收件地址无效", str(exc))) from None
    with app.transport.batch() as batch:
        outcome = batch.send(envelope)
    if not outcome.sent:
        print(zh_en("未发送", f"not sent ({outcome.status}): {outcome.error}"))
        return 1
    where = f"{ctx.settings.smtp.host}:{ctx.settings.smtp.port}" if app.transport.name == "smtp" else str(ctx.settings.mail.file_dir)
    print(zh_en(f"测试邮件已发往 {envelope.recipient}（经 {app.transport.name}，{where}）",
                f"sent test message {envelope.message_id} to {envelope.recipient} via {app.transport.name} ({where})"))
    return 0


def _row_json(row: Alert, tz: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.astimezone(tz).isoformat() if value else None  # +08:00, as every --json

    return {
        "id": row.id,
        "status": row.status,
        "template": row.template,
        "case_number": (row.context or {}).get("case_number"),
        "recipient_role": row.recipient_role,
        "recipient_region": row.recipient_region,
        "recipient_email": row.recipient_email,
        "language": row.language,
        "urgent": row.urgent,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "sent_at": iso(row.sent_at),
        "message_id": row.message_id,
        "last_error": row.last_error,
        "dedup_key": row.dedup_key,
    }


def outbox_list(args: argparse.Namespace, ctx: Context) -> int:
    """Rows in one state (default pending and dead), oldest due first, and the count per state."""
    from shortage_watch.store.outbox import list_outbox

    statuses = [args.status] if args.status else ["pending", "dead"]
    app = ctx.ready_app()
    with app.read_sessions() as session:
        listing = list_outbox(session, statuses, limit=args.limit)
    rows, counts = listing.alerts, listing.counts
    if args.json:
        print(json.dumps({"counts": counts, "alerts": [_row_json(r, app.calendar.tz) for r in rows]}, ensure_ascii=False, indent=2))
        return 0
    tz = app.calendar.tz
    for row in rows:
        item = _row_json(row, tz)
        due = row.next_attempt_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        line = f"{row.id:>7}  {row.status:<8} {due}  {row.template:<24} {item['case_number'] or '-':<12} {row.recipient_email or '（无地址 no address）'}  尝试 tries={row.attempts}"
        if row.last_error:
            line += f"  错误 error: {row.last_error}"
        print(line)
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s))
    print("# " + zh_en(f"列出 {len(rows)} 条；发件箱：{summary or '空'}", f"{len(rows)} listed; outbox: {summary or 'empty'}"))
    return 0


def outbox_retry(args: argparse.Namespace, ctx: Context) -> int:
    """Requeue ID (dead or pending) or every dead alert, due at once with fresh attempts."""
    from shortage_watch.store.outbox import dead_alert_ids, requeue_alerts
    from shortage_watch.store.tables import Alert

    app = ctx.ready_app()
    now = app.clock.now()
    with app.sessions.begin() as session:
        if args.all_dead:
            ids = dead_alert_ids(session)
        else:
            row = session.get(Alert, args.id)
            if row is None:
                raise CommandError(zh_en(f"没有编号为 {args.id} 的提醒", f"no alert with id {args.id}"))
            if row.status not in ("dead", "pending"):
                raise CommandError(zh_en(f"提醒 {args.id} 的状态是 {row.status}，只有 dead（发送失败）或 pending（待发送）的提醒可以重试",
                                         f"alert {args.id} is {row.status}; only dead or pending alerts can be retried"))
            if not row.recipient_email:
                raise CommandError(zh_en(f"提醒 {args.id} 没有收件地址", f"alert {args.id} has no recipient address"))
            ids = [row.id]
        requeue_alerts(session, ids, now=now, audit_at=utc_now(), actor="cli")
    shown = f": {', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}" if ids else ""
    print(zh_en(f"已重新排队 {len(ids)} 条提醒", f"requeued {len(ids)} alert(s)") + shown)
    return 0
