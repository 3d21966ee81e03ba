"""The `shortage-watch` command: parses arguments, builds Settings and the App, dispatches.

Exit codes: 0 success, 1 a check found problems (or some input rows were rejected),
2 bad usage, bad settings or unusable input. Errors are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

from shortage_watch import __version__
from shortage_watch.commands import COMMAND_MODULES, CommandError, Context, database_unreachable, setting_error, usage_problem
from shortage_watch.domain.labels import zh_en
from shortage_watch.logs import configure_logging

if TYPE_CHECKING:
    from shortage_watch.app import App
    from shortage_watch.settings import Settings

# Start-up time is part of the interface: `--help` and `deadline` answer in well under 0.3 s, so this
# module and commands/ import settings, the App (sqlalchemy) and services only when a command runs
# (tests/foundation/test_cli_startup.py fails on a top-level import that brings sqlalchemy back).

DEFAULT_CONFIG = Path("config/shortage_watch.toml")  # when neither --config nor SHORTAGE_WATCH_CONFIG names one

log = logging.getLogger("shortage_watch")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, Chinese then English, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {usage_problem(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shortage-watch", description="Drug shortage early warning for regional bureaus.")
    parser.add_argument("--version", action="version", version=f"shortage-watch {__version__}")
    parser.add_argument("--config", type=Path, help=f"settings file (default $SHORTAGE_WATCH_CONFIG or {DEFAULT_CONFIG})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _settings_path(args: argparse.Namespace) -> tuple[Path, bool]:
    if args.config is not None:
        return args.config, True
    env_path = os.environ.get("SHORTAGE_WATCH_CONFIG")
    if env_path:
        return Path(env_path), True
    return DEFAULT_CONFIG, False


def _settings_note(path: Path, explicit: bool) -> str | None:
    """One line naming the paths tried when no settings file was found (None when one was)."""
    if explicit or path.is_file():
        return None
    tried = path.absolute()
    return (f"未找到配置文件（已尝试 {tried}；未设置 SHORTAGE_WATCH_CONFIG，也未用 --config），使用内置默认值 / "
            f"no settings file found (tried {tried}; SHORTAGE_WATCH_CONFIG not set, no --config): built-in defaults")


def _configure_logging(level: str, fmt: str = "text") -> None:
    # One line per event, text or JSON (logs.py); alembic/apscheduler chatter is kept at WARNING there.
    configure_logging(level, fmt)


def _make_app(settings: Settings) -> App:
    """The App, imported when a command first asks for it: it brings sqlalchemy."""
    from shortage_watch.app import App

    return App(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from shortage_watch.settings import SettingsError, load_settings

    path, explicit = _settings_path(args)
    try:
        settings = load_settings(path, explicit=explicit)
    except SettingsError as exc:
        for line in exc.problems:
            print(f"shortage-watch: 设置有误 / setting {line}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        _configure_logging(settings.logging.level, settings.logging.format)
    context = Context(settings=settings, config_path=path, make_app=lambda: _make_app(settings),
                      settings_note=_settings_note(path, explicit),
                      environment_keys=frozenset(k for k in os.environ if k.upper().startswith("SHORTAGE_WATCH_")))
    try:
        code = int(args.handler(args, context) or 0)
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at interpreter exit
        return code
    except BrokenPipeError:
        # `... | head`: the reader left. Point stdout at devnull so the exit flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CommandError as exc:
        print(f"shortage-watch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _report_error(exc)
    finally:
        context.close()


def _report_error(exc: Exception) -> int:
    """One line on stderr for an error no command turned into a CommandError; the exit code."""
    # Imported here, not at the top: each brings in a library a command may never need.
    from shortage_watch.calendar import CalendarError

    if isinstance(exc, CalendarError):
        print(f"shortage-watch: error: {setting_error('calendar.overrides_dir', exc)}", file=sys.stderr)
        return 2
    from shortage_watch.domain.policy import PolicyError

    if isinstance(exc, PolicyError):
        # Any command that reaches the ledger (submit, once, sweep…) reads the policy first.
        print(f"shortage-watch: error: {setting_error('escalation.policy', exc)}", file=sys.stderr)
        return 2
    from shortage_watch.store.errors import OperationalError

    if isinstance(exc, OperationalError):
        # The database went away mid-command (down, restarted, network): worth retrying, so exit 1.
        log.debug("database error", exc_info=True)
        print(f"shortage-watch: error: {database_unreachable(exc)}", file=sys.stderr)
        return 1
    # The last net: a user sees one line, a developer the traceback at DEBUG.
    log.debug("unexpected error", exc_info=True)
    print(
        "shortage-watch: error: " + zh_en(f"意外错误 {type(exc).__name__}（设置 SHORTAGE_WATCH_LOGGING__LEVEL=DEBUG 可查看详情）",
                                          f"unexpected {type(exc).__name__}: {exc} (SHORTAGE_WATCH_LOGGING__LEVEL=DEBUG shows the details)"),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
