"""Sub-commands of `shortage-watch`, one module per area; each exposes `register(subparsers)`.

A handler is `handler(args, ctx) -> int` and sets itself with `parser.set_defaults(handler=...)`.
Every area module is imported to build the parser (`--help` too), so it imports at its top only
what declaring its arguments needs; a handler imports the services, store and App it uses when it
runs (tests/foundation/test_cli_startup.py holds the line: no sqlalchemy before a command runs).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

from shortage_watch.domain.labels import halves, joined, zh_en

if TYPE_CHECKING:
    from shortage_watch.app import App
    from shortage_watch.calendar import WorkingCalendar
    from shortage_watch.settings import Settings


class CommandError(Exception):
    """A user error: printed as one line on stderr; exit code 2 unless said otherwise."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


SCHEMA_NOT_CURRENT = (
    "数据库结构不是最新版本，请先运行 `shortage-watch db upgrade` / "
    "the database schema is not current: run `shortage-watch db upgrade`"
)


def database_unreachable(exc: Exception) -> CommandError:
    """One line (the driver's first), exit 1: the database may answer on a retry."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return CommandError(zh_en("无法连接数据库", f"database unreachable: {reason[0] if reason else type(exc).__name__}"),
                        exit_code=1)


def setting_error(key: str, problem: object) -> CommandError:
    """A setting that cannot be used, exit 2: '设置 KEY 有误 / setting KEY: why'."""
    return CommandError(zh_en(f"设置 {key} 有误", f"setting {key}: {problem}"))


def option_error(option: str, problem: Exception) -> CommandError:
    """"参数 --now：… / --now: …" for a value an option's type refused after parsing."""
    return CommandError(joined(f"参数 {option} / {option}", str(problem)))


# argparse's own messages (Python 3.11), as an operator meets them first: English only, so each
# known shape gets its Chinese; a shape argparse adds later still shows its English.
_USAGE_WORDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"the following arguments are required: (?P<names>COMMAND|ACTION)"), "缺少{names}"),
    (re.compile(r"the following arguments are required: (?P<names>.+)"), "缺少必需的参数 {names}"),
    (re.compile(r"one of the arguments (?P<names>.+) is required"), "须给出其中一个参数：{names}"),
    (re.compile(r"unrecognized arguments: (?P<names>.+)"), "无法识别的参数 {names}"),
    (re.compile(r"ambiguous option: (?P<option>\S+) could match (?P<names>.+)"), "选项 {option} 不明确，可能是 {names}"),
]
_ARGUMENT_WORDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)"), "{what} {value} 无效，可选：{choices}"),
    (re.compile(r"invalid int value: (?P<value>.+)"), "{what} 的值 {value} 不是整数"),
    (re.compile(r"invalid \S+ value: (?P<value>.+)"), "{what} 的值 {value} 无效"),
    (re.compile(r"expected (?:one|at least one|at most one|\d+) arguments?"), "{what} 缺少值"),
    (re.compile(r"not allowed with argument (?P<other>.+)"), "{what} 不能与 {other} 同时使用"),
    (re.compile(r"ignored explicit argument (?P<value>.+)"), "{what} 不接受值 {value}"),
]
_PLACEHOLDERS = {"COMMAND": "命令", "ACTION": "操作"}  # the metavars of the (sub)command choices


def usage_problem(message: str) -> str:
    """An argparse usage error as one bilingual line: the Chinese, then argparse's English."""
    argument = re.fullmatch(r"argument (?P<name>\S+?): (?P<rest>.*)", message, re.DOTALL)
    if argument is None:
        for pattern, words in _USAGE_WORDS:
            match = pattern.fullmatch(message)
            if match:
                names = {key: _PLACEHOLDERS.get(value, value) if key == "names" else value for key, value in match.groupdict().items()}
                return zh_en(words.format(**names), message)
        return zh_en("命令行参数有误", message)
    name, rest = argument["name"], argument["rest"]
    what = _PLACEHOLDERS.get(name) or f"参数 {name}"
    for pattern, words in _ARGUMENT_WORDS:
        match = pattern.fullmatch(rest)
        if match:
            return zh_en(words.format(what=what, **match.groupdict()), message)
    # A message of this project's own argument types ("中文 / English"), or one argparse added later.
    zh, en = halves(rest)
    return zh_en(f"{what}：{zh}" if zh != en else f"{what} 无效", f"argument {name}: {en}")


@dataclass
class Context:
    """What a handler gets: the settings, and the App built on first use.

    `settings_note` says, when no settings file was found, which paths were tried: the
    built-in defaults (a ledger in ./var) are then probably not what the operator meant.
    """

    settings: Settings
    config_path: Path
    make_app: Callable[[], App]
    settings_note: str | None = None
    environment_keys: frozenset[str] = frozenset()  # the SHORTAGE_WATCH_* variables set
    _app: App | None = field(default=None, init=False)

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = self.make_app()
        return self._app

    def calendar(self) -> WorkingCalendar:
        """The working calendar the settings name, built without the App (so without the database)."""
        from shortage_watch.calendar import WorkingCalendar

        return WorkingCalendar.from_overrides_dir(self.settings.calendar.overrides_dir, self.settings.timezone)

    def ready_app(self) -> App:
        """The App on a reachable database whose schema is current; a one-line CommandError otherwise."""
        from shortage_watch.store.errors import OperationalError

        from shortage_watch.store.db import schema_is_current

        self.refuse_missing_ledger()
        try:
            current = schema_is_current(self.app.engine)
        except OperationalError as exc:
            raise database_unreachable(exc) from None
        if not current:
            raise CommandError(self.explained(SCHEMA_NOT_CURRENT))
        return self.app

    def refuse_missing_ledger(self, exit_code: int = 2) -> None:
        """A SQLite URL naming no file is refused before connecting, which would create an empty ledger."""
        from shortage_watch.store.db import sqlite_ledger_missing

        missing = sqlite_ledger_missing(self.settings.database.url)
        if missing:
            advice = ("请在项目文件夹中运行，或用 --config 指定配置文件 / run from the project folder or pass --config FILE"
                      if self.settings_note else
                      "请检查 database.url，或运行 `shortage-watch db upgrade` 新建 / check database.url, or create it with "
                      "`shortage-watch db upgrade`")
            raise CommandError(self.explained(joined(missing, advice)), exit_code=exit_code)

    def explained(self, message: str) -> str:
        """`message`, after the note on the settings file when none was found."""
        return joined(self.settings_note, message, "；", "; ") if self.settings_note else message

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def iso_date(text: str) -> date:
    """argparse type: a date in the forms records accept (2024-09-27, 2024/9/27, 2024年9月27日)."""
    from shortage_watch.intake.cells import FieldProblem, parse_date

    try:
        day = parse_date(text)
    except FieldProblem as exc:
        zh, en = halves(str(exc))
        raise argparse.ArgumentTypeError(zh_en(f"{text!r} 不是有效日期：{zh}", f"{text!r} is not a date: {en}")) from None
    if day is None:
        raise argparse.ArgumentTypeError("日期为空 / empty date (expected YYYY-MM-DD)")
    return day


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(zh_en(f"{text!r} 不是整数", f"{text!r} is not an integer")) from None
    if value < 1:
        raise argparse.ArgumentTypeError(zh_en(f"{value} 应不小于 1", f"{value} must be at least 1"))
    return value


NOW_YEARS = (1970, 2999)  # what `--now` accepts


def aware_instant(text: str, tz: str = "Asia/Shanghai") -> datetime:
    """Parse a date-time for `--now` (ISO, or as records write it: 2024/10/8 09:00, 2024年10月8日 09:00);
    without a zone it is Asia/Shanghai."""
    from shortage_watch.intake.cells import FieldProblem, parse_instant

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parse_instant(text, ZoneInfo(tz))
        except (FieldProblem, OverflowError):
            parsed = None
        if parsed is None:
            raise argparse.ArgumentTypeError(zh_en(f"{text!r} 不是日期时间（如 2024-10-08T09:00）",
                                                   f"{text!r} is not an ISO date-time (e.g. 2024-10-08T09:00)")) from None
        value = parsed.astimezone(ZoneInfo(tz))
    value = value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))
    # Deadlines and calendars count days forward and back from `now`: near year 1 or 9999 that
    # overflows deep inside a rule, so an instant outside these years is refused here.
    try:
        year = value.astimezone(timezone.utc).year
    except OverflowError:
        year = 0
    if not NOW_YEARS[0] <= year <= NOW_YEARS[1]:
        raise argparse.ArgumentTypeError(zh_en(f"{text!r} 不在 {NOW_YEARS[0]} 至 {NOW_YEARS[1]} 年之间",
                                               f"{text!r} is not between the years {NOW_YEARS[0]} and {NOW_YEARS[1]}"))
    return value


from shortage_watch.commands import basics  # noqa: E402  (modules register against the names above)
from shortage_watch.commands import daemon  # noqa: E402
from shortage_watch.commands import intake  # noqa: E402
from shortage_watch.commands import ledger  # noqa: E402
from shortage_watch.commands import mail  # noqa: E402
from shortage_watch.commands import samples  # noqa: E402
from shortage_watch.commands import silences  # noqa: E402
from shortage_watch.commands import web  # noqa: E402

COMMAND_MODULES = [basics, daemon, intake, ledger, mail, samples, silences, web]
