"""`submit`, `poll`, `template` and `directory check`: what distributors and operators run by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from shortage_watch.clock import FixedClock
from shortage_watch.commands import CommandError, Context, aware_instant
from shortage_watch.domain.kinds import RECORD_KINDS
from shortage_watch.domain.labels import zh_en

if TYPE_CHECKING:
    from shortage_watch.services.poll import PollOutcome

KIND_CHOICES = (*RECORD_KINDS, "auto")
DIRECTORY_WORDS = {"regions": "区划", "contacts": "联系人", "distributors": "配送企业", "hospitals": "医疗机构"}


def register(sub: argparse._SubParsersAction) -> None:
    submit = sub.add_parser("submit", help="ingest one CSV, XLSX or JSON file now")
    submit.add_argument("file", type=Path, help="the file to ingest")
    submit.add_argument("--kind", choices=KIND_CHOICES, default="auto",
                        help="record kind (default auto: from a record_kind column or the headers)")
    submit.add_argument("--json", action="store_true", help='print {"accepted", "duplicates", "rejected", "errors", "warnings"}')
    submit.add_argument("--errors-csv", type=Path, help="also write the errors as a CSV Excel opens (UTF-8 BOM)")
    submit.add_argument("--source", default="cli", type=_source_name,
                        help="source name recorded on the receipt (default cli)")
    submit.add_argument("--now", type=aware_instant, help="ledger time (ISO; default: now)")
    submit.set_defaults(handler=submit_command)

    poll = sub.add_parser("poll", help="poll the configured sources now, one line per source")
    poll.add_argument("--source", help="only this source")
    poll.add_argument("--now", type=aware_instant, help="ledger time (ISO; default: now)")
    poll.set_defaults(handler=poll_command)

    template = sub.add_parser("template", help="write a blank file with the Chinese headers to fill in")
    template.add_argument("kind", choices=RECORD_KINDS)
    template.add_argument("--format", choices=("xlsx", "csv"), help="must agree with the --output name (default: from it)")
    template.add_argument("--output", type=Path, required=True, help="a .xlsx or .csv file")
    template.set_defaults(handler=template_command)

    directory = sub.add_parser("directory", help="the directory of regions, bureaus, distributors and hospitals")
    directory_sub = directory.add_subparsers(dest="directory_command", metavar="ACTION")
    directory_sub.required = True
    check = directory_sub.add_parser("check", help="list problems in the directory files")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=directory_check)


def _source_name(text: str) -> str:
    """argparse type: a source name as settings allow it (letters, digits, . _ -; at most 64)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
        raise argparse.ArgumentTypeError(zh_en(f"{text!r} 不是数据来源名称（字母、数字、. _ -，最多 64 个字符）",
                                               f"{text!r} is not a source name (letters, digits, . _ -; at most 64)"))
    return text


def _ready_app(ctx: Context, now: object) -> object:
    app = ctx.ready_app()
    if now is not None:
        app.clock = FixedClock(now)  # type: ignore[arg-type]
    return app


def submit_command(args: argparse.Namespace, ctx: Context) -> int:
    """Exit 0 when nothing was rejected, 1 when some rows were or the database was busy (retry), 2 when the file is unusable."""
    from shortage_watch.store.errors import InterfaceError, OperationalError, SQLAlchemyError

    from shortage_watch.intake.encodings import UnusableFile
    from shortage_watch.intake.sources_inbox import errors_csv_bytes
    from shortage_watch.services.ingest import IngestResult, ingest_payload, read_input_file

    try:
        content = read_input_file(args.file, ctx.settings.intake.max_bytes)
    except UnusableFile as exc:
        result = IngestResult(name=str(args.file), status="unusable",
                              errors=[{"row": None, "field": None, "reason": exc.reason}])
    else:
        app = _ready_app(ctx, args.now)
        try:
            result = ingest_payload(app.ingest_deps(), source=args.source, name=args.file.name, content=content, kind=args.kind,
                                    now=app.clock.now())  # type: ignore[attr-defined]
        except (OperationalError, InterfaceError) as exc:
            # Locked, busy, restarted, unreachable: the same command may well succeed later.
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise CommandError(
                f"数据库暂时不可用，未保存任何记录，请稍后重试 / database temporarily unavailable, nothing stored, try again: "
                f"{reason[0] if reason else type(exc).__name__}",
                exit_code=1,
            ) from None
        except SQLAlchemyError as exc:
            raise CommandError(f"数据库拒绝了这些数据，未保存任何记录 / the database refused the data, nothing stored: {type(exc).__name__}") from None
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        print(f"{args.file}: 接受 accepted {result.accepted}, 重复 duplicates {result.duplicates}, "
              f"拒绝 rejected {result.rejected}")
        for error in result.errors:
            where = "文件 file" if error["row"] is None else f"第 {error['row']} 行 row {error['row']}"
            field = f" [{error.get('column') or error['field']}]" if error["field"] else ""
            print(f"  {where}{field}: {error['reason']}")
        for warning in result.warnings:
            field = f" [{warning['field']}]" if warning["field"] else ""
            print(f"  提示 warning 第 {warning['row']} 行 row {warning['row']}{field}: {warning['reason']}")
    if args.errors_csv is not None:
        # After the summary: the rows are stored already, whatever happens to this file.
        try:
            args.errors_csv.write_bytes(errors_csv_bytes(result.errors))
        except OSError as exc:
            raise CommandError(zh_en(f"无法写入错误清单 {args.errors_csv}",
                                     f"--errors-csv {args.errors_csv}: cannot write: {exc.strerror or exc}")) from None
    if result.unusable:
        return 2
    return 1 if result.rejected else 0


def poll_command(args: argparse.Namespace, ctx: Context) -> int:
    """One line per source; exit 1 when a source failed, 2 for an unknown source name."""
    from shortage_watch.services.poll import poll_sources

    names = [s.name for s in ctx.settings.sources]
    if args.source is not None and args.source not in names:
        configured = ", ".join(names)
        raise CommandError(zh_en(f"没有名为 {args.source!r} 的数据来源（已配置：{configured or '无'}）",
                                 f"no source named {args.source!r} (configured: {configured or 'none'})"))
    if not names:
        print(zh_en("未配置数据来源（配置文件中的 [[sources]]）", "no sources configured ([[sources]] in the settings file)"))
        return 0
    app = _ready_app(ctx, args.now)
    outcomes = poll_sources(app.poll_deps(), app.clock.now(), only=args.source, force=True)  # type: ignore[attr-defined]
    for outcome in outcomes:
        print(poll_line(outcome))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def poll_line(outcome: PollOutcome) -> str:
    """One source's poll as `poll` and `once` print it: the Chinese, then the English line the log also writes."""
    unusable = sum(1 for r in outcome.results if r.unusable)
    zh = {
        "failed": "失败",
        "busy": "已跳过（另一个副本正在轮询）",
        "not_due": "未到轮询时间",
        "not_modified": "没有新内容",
    }.get(outcome.status) or (f"正常，{outcome.items} 项，接受 {outcome.accepted}，重复 {outcome.duplicates}，"
                              f"拒绝 {outcome.rejected}" + (f"，{unusable} 个无法使用" if unusable else ""))
    return zh_en(f"{outcome.source}：{zh}", outcome.line())


def template_command(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.intake.templates_blank import template_csv, template_xlsx

    suffix = args.output.suffix.lower().lstrip(".")
    if suffix not in ("xlsx", "csv"):
        raise CommandError(f"--output {args.output}: 文件名应以 .xlsx 或 .csv 结尾 / the file name must end in .xlsx or .csv")
    if args.format is not None and args.format != suffix:
        raise CommandError(f"--format {args.format} 与文件名 {args.output.name} 不符 / --format {args.format} does not match "
                           f"{args.output.name}: Excel would refuse to open it")
    fmt = suffix
    content = template_xlsx(args.kind) if fmt == "xlsx" else template_csv(args.kind)
    try:
        args.output.write_bytes(content)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise CommandError(f"无法写入 / cannot write {args.output!r}: {getattr(exc, 'strerror', None) or exc}") from None
    print(zh_en(f"已写入 {args.output}（{args.kind}，{fmt}）", f"wrote {args.output} ({args.kind}, {fmt})"))
    return 0


def directory_check(args: argparse.Namespace, ctx: Context) -> int:
    """Exit 0 when the directory has no problems, 1 when it has, 2 when a file cannot be read."""
    from shortage_watch.intake.directory_files import DirectoryError, load_directory

    settings = ctx.settings.directory
    if all(getattr(settings, name) is None for name in ("regions", "contacts", "distributors", "hospitals")):
        raise CommandError(zh_en("未配置目录文件（[directory] 的 regions、contacts、distributors、hospitals）",
                                 "no directory files configured ([directory] regions, contacts, distributors, hospitals)"),
                           exit_code=1)
    try:
        directory = load_directory(settings)
    except DirectoryError as exc:
        raise CommandError(zh_en("目录文件无法读取", str(exc))) from None
    problems = directory.problems()
    warnings = directory.coverage_warnings(settings.operations_email)
    counts = {"regions": len(directory.regions), "contacts": len(directory.contacts),
              "distributors": len(directory.distributors), "hospitals": len(directory.hospitals)}
    if args.json:
        print(json.dumps({"counts": counts, "problems": problems, "warnings": warnings}, ensure_ascii=False))
    else:
        print("，".join(f"{DIRECTORY_WORDS[name]} {name} {n}" for name, n in counts.items()))
        for problem in problems:
            print(f"问题 problem: {problem}")
        for warning in warnings:
            print(f"提示 warning: {warning}")
        if not problems:
            print(zh_en("没有问题" + (f"（{len(warnings)} 条提示：这些邮件改投他处）" if warnings else ""),
                        "no problems" + (f" ({len(warnings)} warning(s): mail that falls back)" if warnings else "")))
    # Warnings do not fail the check: routing falls back, and a county without its own
    # bureau mailbox is common; they are printed so an operator knows where mail goes.
    return 1 if problems else 0
