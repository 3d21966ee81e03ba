"""`silences add|list|expire`: officers hold matching mail for a while, with a reason and an end."""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from shortage_watch.clock import FixedClock
from shortage_watch.commands import CommandError, Context, aware_instant, option_error, positive_int
from shortage_watch.domain.labels import zh_en
from shortage_watch.domain.silences import refusal
from shortage_watch.mail.names import ALERT_TEMPLATES

if TYPE_CHECKING:
    from shortage_watch.store.tables import Silence


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "operator"


def register(sub: argparse._SubParsersAction) -> None:
    silences = sub.add_parser("silences", help="hold matching mail until a stated end (the ledger keeps running)")
    silences_sub = silences.add_subparsers(dest="silences_command", metavar="ACTION")
    silences_sub.required = True
    add = silences_sub.add_parser("add", help="hold alerts about a region, distributor, product or template")
    add.add_argument("--region", help="region code: this region and every region under it")
    add.add_argument("--distributor", help="distributor code")
    add.add_argument("--product", help="product code")
    add.add_argument("--template", help=f"mail template, one of: {', '.join(ALERT_TEMPLATES)}")
    add.add_argument("--until", help="end: ISO date-time (Asia/Shanghai unless a zone is given); a date alone means the end of that day")
    add.add_argument("--reason", help="why (shown in the audit trail and the digest)")
    add.add_argument("--by", default=None, help="who sets it (default: the login name)")
    add.add_argument("--json", action="store_true")
    add.add_argument("--now", help=NOW_HELP)
    add.set_defaults(handler=silences_add)
    listing = silences_sub.add_parser("list", help="silences in force (with --all: also ended ones)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--now", help=NOW_HELP)
    listing.set_defaults(handler=silences_list)
    expire = silences_sub.add_parser("expire", help="end a silence now: its held mail is released at the current level")
    expire.add_argument("id", type=positive_int)
    expire.add_argument("--by", default=None, help="who ends it (default: the login name)")
    expire.add_argument("--now", help=NOW_HELP)
    expire.set_defaults(handler=silences_expire)


NOW_HELP = "act as if at this instant (ISO date-time), as `once --now` does for replays"


def _ledger_now(args: argparse.Namespace, ctx: Context) -> datetime:
    """The ledger's now: --now when given (replays), else the clock."""
    app = ctx.ready_app()
    if args.now:
        try:
            app.clock = FixedClock(aware_instant(args.now, ctx.settings.timezone))
        except argparse.ArgumentTypeError as exc:
            raise option_error("--now", exc) from None
    return app.clock.now()


def _until(text: str | None, tz: str) -> datetime | None:
    """--until as an aware instant; a date alone means the end of that day."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        try:
            return aware_instant(text, tz)
        except argparse.ArgumentTypeError as exc:
            raise option_error("--until", exc) from None
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(tz))


def silences_add(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.silences import add_silence

    now = _ledger_now(args, ctx)
    app = ctx.app
    until = _until(args.until, app.settings.timezone)
    matchers = {"region": args.region, "distributor": args.distributor, "product": args.product, "template": args.template}
    why = refusal(matchers=matchers, until=until, reason=args.reason, now=now, max_days=app.settings.silences.max_days)
    if why is not None:
        raise CommandError(why)
    assert until is not None
    if args.template and args.template not in ALERT_TEMPLATES:
        raise CommandError(f"没有名为 {args.template!r} 的邮件模板 / --template {args.template!r} is not an alert template ({', '.join(ALERT_TEMPLATES)})")
    directory = app.usable_directory()
    if args.region and not directory.is_empty() and directory.region(args.region) is None:
        raise CommandError(f"名录中没有地区 {args.region} / --region {args.region}: not in the directory's regions")
    if args.distributor and not directory.is_empty() and directory.distributor(args.distributor) is None:
        raise CommandError(f"名录中没有配送企业 {args.distributor} / --distributor {args.distributor}: not in the directory's distributors")
    silence_id, held, described = add_silence(
        app.sessions, directory, region=args.region, distributor=args.distributor, product=args.product, template=args.template,
        until=until, reason=args.reason.strip(), by=args.by or _default_actor(), now=now,
    )
    if args.json:
        print(json.dumps({"id": silence_id, "matches": described, "until": until.isoformat(), "held": held}, ensure_ascii=False))
    else:
        local = until.astimezone(ZoneInfo(app.settings.timezone))
        print(zh_en(f"静默 #{silence_id} 已设置：{described}，至 {local:%Y-%m-%d %H:%M}，暂扣 {held} 条待发提醒",
                    f"silence #{silence_id} set: {described} until {local:%Y-%m-%d %H:%M}; {held} waiting alert(s) held"))
    return 0


def silences_list(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.silences import rule_of
    from shortage_watch.store.silences import held_counts, list_silences

    now = _ledger_now(args, ctx)
    app = ctx.app
    tz = ZoneInfo(app.settings.timezone)
    with app.read_sessions() as session:
        rows = list_silences(session, include_ended=args.all)
        held = held_counts(session)
        items = [
            {
                "id": r.id, "matches": rule_of(r).describe(), "starts_at": r.starts_at.isoformat(), "until": r.ends_at.isoformat(),
                "reason": r.reason, "by": r.created_by, "state": _state(r, now), "held": held.get(r.id, 0),
            }
            for r in rows
        ]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    if not items:
        print("没有生效的静默 / no silences in force")
    for item in items:
        until = datetime.fromisoformat(item["until"]).astimezone(tz)
        print(f"#{item['id']:<4} {STATE_WORDS[item['state']]} {item['state']:<7} 至 until {until:%Y-%m-%d %H:%M}  {item['matches']}  "
              f"暂扣 held={item['held']}  设置人 by {item['by']}: {item['reason']}")
    return 0


STATE_WORDS = {"active": "生效", "ending": "待结束", "ended": "已结束"}  # `silences list`, before the state itself


def _state(row: Silence, now: datetime) -> str:
    if row.released_at is not None:
        return "ended"
    return "active" if row.starts_at <= now < row.ends_at else "ending"


def silences_expire(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.silences import end_silence, release_ended_silences

    now = _ledger_now(args, ctx)
    app = ctx.app
    problem = end_silence(app.sessions, args.id, by=args.by or _default_actor(), now=now)
    if problem is not None:
        raise CommandError(problem, exit_code=1 if "already" in problem else 2)
    released = release_ended_silences(app.sessions, app.usable_directory(), app.calendar, now)
    print(zh_en(f"静默 #{args.id} 已结束：放行 {released.sent} 条暂扣的提醒，{released.superseded} 条已由更高级别取代，"
                f"{released.stale} 条已无需发送",
                f"silence #{args.id} ended: {released.sent} held alert(s) released, "
                f"{released.superseded} superseded by a later level, {released.stale} no longer relevant"))
    return 0
