"""`config check`, `calendar`, `deadline`, `db upgrade|current`."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from shortage_watch.commands import CommandError, Context, database_unreachable, iso_date, positive_int, setting_error
from shortage_watch.domain.deadline import report_deadline
from shortage_watch.domain.labels import joined, label, weekday_zh, zh_en

# A year's calendar in a word, for the `calendar` listing (the label table's words are sentences).
CALENDAR_WORDS = {"official": "官方公布", "override": "本地配置", "estimated": "估算"}


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="inspect settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_sub.required = True
    check = config_sub.add_parser("check", help="print the effective settings, secrets masked")
    check.set_defaults(handler=config_check)

    cal = sub.add_parser("calendar", help="which years are official, overridden or estimated")
    cal.add_argument("--year", type=int, help="one year's rest weekdays and make-up working days")
    cal.add_argument("--json", action="store_true")
    cal.set_defaults(handler=calendar_command)

    deadline = sub.add_parser("deadline", help="the report deadline for a receipt date")
    deadline.add_argument("--received", type=iso_date, required=True, help="YYYY-MM-DD the notice was received")
    deadline.add_argument("--working-days", type=positive_int, help="N (default: calendar.working_days)")
    deadline.add_argument("--json", action="store_true")
    deadline.set_defaults(handler=deadline_command)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    db_sub.add_parser("upgrade", help="create or upgrade the schema").set_defaults(handler=db_upgrade)
    db_sub.add_parser("current", help="print the schema revision").set_defaults(handler=db_current)


def config_check(args: argparse.Namespace, ctx: Context) -> int:
    """Print where each setting comes from, then the effective settings; 2 when the calendar
    overrides or the policy cannot be read."""
    from shortage_watch.calendar import CalendarError
    from shortage_watch.domain.policy import PolicyError
    from shortage_watch.settings import load_policy

    masked = ctx.settings.masked()
    if ctx.settings_note:
        print(f"# {ctx.settings_note}")
        file_data: dict[str, Any] = {}
    else:
        print("# " + zh_en(f"配置文件 {ctx.config_path.absolute()}", f"settings file: {ctx.config_path.absolute()}"))
        file_data = tomllib.loads(ctx.config_path.read_text(encoding="utf-8"))
    print("# 每项设置的来源 / where each setting comes from:")
    for key, source in setting_sources(masked, file_data, ctx.environment_keys, ctx.config_path.absolute()):
        print(f"#   {key}: {source}")
    print(json.dumps(masked, ensure_ascii=False, indent=2))
    try:
        ctx.calendar()
    except CalendarError as exc:
        raise setting_error("calendar.overrides_dir", exc) from None
    try:
        load_policy(ctx.settings.escalation.policy)
    except PolicyError as exc:
        raise setting_error("escalation.policy", exc) from None
    return 0


def setting_sources(masked: dict[str, Any], file_data: dict[str, Any], environment: frozenset[str],
                    file: Path) -> list[tuple[str, str]]:
    """(dotted key, source) for every setting: an environment variable, the settings file, a
    secret file named by its `*_file` key, or the built-in default, each named in Chinese and English.
    The environment wins over the file, as pydantic-settings applies them."""
    env = {name.upper() for name in environment}
    out = []

    def walk(data: dict[str, Any], given: Any, path: list[str]) -> None:
        for key, value in data.items():
            dotted = [*path, key]
            in_file = isinstance(given, dict) and key in given
            if isinstance(value, dict) and value:
                walk(value, given.get(key) if in_file else None, dotted)
                continue
            # A whole section may come from one variable (SHORTAGE_WATCH_SMTP='{"…"}').
            names = ["SHORTAGE_WATCH_" + "__".join(dotted[:i]).upper() for i in range(len(dotted), 0, -1)]
            secret_file = data.get(f"{key}_file")
            if any(name in env for name in names):
                source = "环境变量 environment " + next(name for name in names if name in env)
            elif secret_file:
                source = f"密钥文件 secret file {secret_file} ({'.'.join([*path, key + '_file'])})"
            elif in_file:
                source = f"配置文件 file {file}"
            else:
                source = "默认值 default"
            out.append((".".join(dotted), source))

    walk(masked, file_data, [])
    return out


def calendar_command(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.clock import SystemClock

    calendar = ctx.calendar()
    if args.year is not None:
        if not 1950 <= args.year <= 2199:
            raise CommandError(zh_en(f"--year {args.year} 超出范围（1950–2199）", f"--year {args.year} is out of range (1950-2199)"))
        summary = calendar.year_summary(args.year)
        if args.json:
            print(json.dumps(summary))
        else:
            status = summary["calendar"]
            print(zh_en(f"{args.year}：{label('calendar', status)}", f"{args.year}: {status}"))
            print("  休息的工作日 rest weekdays:   " + (", ".join(summary["weekday_rest_days"]) or "无 none"))
            print("  调休上班日 make-up workdays: " + (", ".join(summary["makeup_workdays"]) or "无 none"))
        return 0
    this_year = calendar.local_date(SystemClock().now()).year
    years = calendar.known_years(around=this_year)
    if args.json:
        print(json.dumps({str(y): s.value for y, s in years.items()}))
    else:
        for year, status in years.items():
            print(f"{year}  {zh_en(CALENDAR_WORDS[status.value], status.value)}")
    return 0


def deadline_command(args: argparse.Namespace, ctx: Context) -> int:
    n = args.working_days or ctx.settings.calendar.working_days
    try:
        deadline = report_deadline(ctx.calendar(), args.received, n, ctx.settings.calendar.cutoff)
    except OverflowError:  # counting working days ran past 9999-12-31
        raise CommandError(zh_en(f"{args.received} 收到的通知，报告期限超出日历范围",
                                 f"no deadline within the calendar's range for a receipt on {args.received}")) from None
    if args.json:
        print(json.dumps(deadline.as_json()))
    else:
        official = deadline.calendar == "official"
        print(zh_en(
            f"{args.received.isoformat()}（{weekday_zh(args.received)}）收到：须在 {n} 个工作日内报告，"
            f"截止 {deadline.due_at:%Y-%m-%d %H:%M}（{weekday_zh(deadline.due)}）"
            + ("" if official else f"（按{CALENDAR_WORDS[deadline.calendar]}的节假日安排）"),
            f"received {args.received.isoformat()} ({args.received:%a}): report due within {n} working days, "
            f"by {deadline.due_at:%Y-%m-%d %H:%M} ({deadline.due:%a})" + ("" if official else f" ({deadline.calendar} calendar)"),
        ))
    return 0


def db_upgrade(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.store.db import current_revision, upgrade_schema
    from shortage_watch.store.errors import OperationalError

    if ctx.settings_note:
        # Creating a ledger is what this command is for; say where, when it is the default one.
        url = ctx.settings.database.url
        print(f"shortage-watch: {joined(ctx.settings_note, f'数据库 {url} / database.url = {url}', '；', '; ')}", file=sys.stderr)
    engine = ctx.app.engine
    try:
        before = current_revision(engine)
        upgrade_schema(engine)
        after = current_revision(engine)
    except OperationalError as exc:
        raise database_unreachable(exc) from None
    same = before == after
    print(zh_en(f"数据库结构{'已是' if same else '已升级到'}版本 {after}（原为{' ' + before if before else '空'}）",
                f"schema {'already at' if same else 'upgraded to'} {after} (was {before or 'empty'})"))
    return 0


def db_current(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.store.db import current_revision, head_revision
    from shortage_watch.store.errors import OperationalError

    ctx.refuse_missing_ledger(exit_code=1)
    try:
        current = current_revision(ctx.app.engine)
    except OperationalError as exc:
        raise database_unreachable(exc) from None
    head = head_revision()
    print(zh_en(f"当前版本 {current or '空'}，最新版本 {head}", f"current {current or 'empty'}, head {head}"))
    return 0 if current == head else 1
