"""`run` (the daemon), `health [--json]`, `demo`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shortage_watch.commands import CommandError, Context
from shortage_watch.domain.labels import zh_en


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the daemon: poll, escalate, deliver on timers until SIGTERM")
    run.set_defaults(handler=run_command)

    health = sub.add_parser(
        "health", help="exit 0 when healthy (database, heartbeat, sources, dead letters), 1 otherwise"
    )
    who = health.add_mutually_exclusive_group()
    who.add_argument("--replica", metavar="ID", help="check this replica's heartbeat (default: any replica)")
    who.add_argument("--local", action="store_true", help="check the heartbeat of replicas on this host")
    health.add_argument("--json", action="store_true", help="print the checks as JSON")
    health.set_defaults(handler=health_command)

    demo = sub.add_parser("demo", help="play a scripted scenario on a throwaway database with a simulated clock")
    demo.add_argument(
        "--mail-dir", type=Path, default=Path("var/demo-mail"), help="where the demo's mails go (default var/demo-mail)"
    )
    demo.set_defaults(handler=demo_command)


def run_command(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.daemon import Daemon, DaemonStartError
    from shortage_watch.store.errors import SQLAlchemyError

    ctx.refuse_missing_ledger()
    try:
        return Daemon(ctx.app).run()
    except DaemonStartError as exc:
        raise CommandError(str(exc), exit_code=exc.exit_code) from None
    except SQLAlchemyError as exc:  # the database went away while starting or stopping
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise CommandError(zh_en("数据库出错", f"database error: {reason[0] if reason else type(exc).__name__}")) from None


def health_command(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.health import check_health, this_host

    report = check_health(ctx.settings, replica=args.replica, host=this_host() if args.local else None)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        print(zh_en("正常", "healthy") if report.ok else zh_en("不正常", "unhealthy"))
        for line in report.lines():
            print(f"  {line}")
    return 0 if report.ok else 1


def demo_command(args: argparse.Namespace, ctx: Context) -> int:
    import logging

    from shortage_watch.demo import DemoError, run_demo

    # The timeline is the output; the services' INFO lines would only interleave with it.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        return run_demo(args.mail_dir, base=ctx.settings)
    except DemoError as exc:
        raise CommandError(zh_en("演示无法运行", str(exc))) from None
    finally:
        root.setLevel(level)
