"""`sample-inbox`: the sample inbox of a first `make run`, dated relative to today."""

from __future__ import annotations

import argparse
from pathlib import Path

from shortage_watch.clock import FixedClock, SystemClock
from shortage_watch.commands import CommandError, Context, aware_instant, setting_error
from shortage_watch.domain.labels import zh_en


def register(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser("sample-inbox", help="write sample distributor files dated relative to today into a folder")
    sample.add_argument("folder", type=Path, help="the inbox folder, e.g. var/inbox")
    sample.add_argument("--now", type=aware_instant, help="date the files as if today were this instant (ISO)")
    sample.set_defaults(handler=sample_inbox_command)


def sample_inbox_command(args: argparse.Namespace, ctx: Context) -> int:
    """Write the files and list them; 2 when the folder cannot be written or the calendar read."""
    from shortage_watch.calendar import CalendarError
    from shortage_watch.intake.sample_inbox import write_sample_inbox

    try:
        calendar = ctx.calendar()
    except CalendarError as exc:
        raise setting_error("calendar.overrides_dir", exc) from None
    clock = FixedClock(args.now) if args.now else SystemClock()
    try:
        written = write_sample_inbox(args.folder, calendar, clock.now())
    except OSError as exc:
        raise CommandError(zh_en(f"无法在 {args.folder} 写入样例文件", f"{args.folder}: cannot write the sample files: {exc.strerror}")) from None
    for path in written:
        print(path)
    return 0
