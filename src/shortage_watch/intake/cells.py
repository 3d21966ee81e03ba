"""Reading cells: what a parser found in a CSV/XLSX cell or a JSON value (text, numbers, Excel dates)
as a value of the record contract (records.md), or a FieldProblem worded Chinese first then English.

Pure: no I/O. The record models (domain/records.py) read their fields with these.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from shortage_watch.domain.labels import CHOICE_FIELDS, accepted_words, choice_values, label as label_of

DEFAULT_TZ = "Asia/Shanghai"
# Full-width and no-break spaces that Chinese spreadsheets leave around values.
SPACES = " \t\r\n\u3000\u00a0\ufeff\u200b"


class FieldProblem(ValueError):
    """One field's problem, already worded Chinese first then English."""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_TIME_RE = re.compile(r"^(?:[ T]+|\s*)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
_EXCEL_EPOCH = date(1899, 12, 30)
_LARGEST_NUMBER = 10**64  # no code, count or amount in a record comes near this



def as_text(value: object) -> str | None:
    """A cell as text: trimmed, None when empty; integral floats (Excel codes) lose '.0'."""
    if value is None:
        return None
    if type(value) is str:
        text = value.strip(SPACES)
        # Fast path for the common cell: printable text needs no control-character scan.
        if text.isprintable() or not _CONTROL.search(text):
            return text or None
        raise FieldProblem("含有控制字符 / contains control characters")
    if isinstance(value, bool):
        raise FieldProblem("应为文本 / must be text")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise FieldProblem("应为文本 / must be text")
        value = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, int):
        if abs(value) > _LARGEST_NUMBER:
            raise FieldProblem("数值过大 / too large")
        value = str(value)
    elif isinstance(value, (datetime, date)):
        value = value.isoformat()
    elif not isinstance(value, str):
        raise FieldProblem("应为文本，不能是列表或对象 / must be text, not a list or object")
    text = value.strip(SPACES)
    if _CONTROL.search(text):
        raise FieldProblem("含有控制字符 / contains control characters")
    return text or None


# The full-width forms of ASCII (Ａ-Ｚ, ０-９, －, ／ ...) a Chinese input method types: in an id or a code they
# are the ASCII characters, and must match the id the directory, a later report or the portal gives.
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


def text_cell(max_len: int | None = None, identifier: bool = False, code: bool = False) -> Callable[[object], str | None]:
    """A text cell's reader: trimmed, None when empty, at most `max_len` characters; an identifier holds no
    line break or control character; an identifier or `code` has full-width ASCII forms made ASCII."""
    narrow = identifier or code

    def parse(value: object) -> str | None:
        if type(value) is str:
            # The common cell, as `as_text` treats it: printable text holds no control character.
            text = value.strip(SPACES)
            if narrow and not text.isascii():
                text = text.translate(_FULL_WIDTH_TO_ASCII)
            if text.isprintable():
                if max_len is not None and len(text) > max_len:
                    raise FieldProblem(f"长度超过 {max_len} 个字符 / longer than {max_len} characters")
                return text or None
        text = as_text(value)
        if text is None:
            return None
        if narrow and not text.isascii():
            text = text.translate(_FULL_WIDTH_TO_ASCII)
        # Printable text holds no control character, so most ids skip the scan.
        if identifier and not text.isprintable() and _ID_FORBIDDEN.search(text):
            raise FieldProblem("编号不能含有换行或控制字符 / an id cannot contain line breaks or control characters")
        if max_len is not None and len(text) > max_len:
            raise FieldProblem(f"长度超过 {max_len} 个字符 / longer than {max_len} characters")
        return text

    return parse


# Dates outside these bounds are typing slips (a year 1024 for 2024): a notice "received"
# centuries ago would be overdue at once and mail every bureau up to the province.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2199, 12, 31)


def _plausible(day: date) -> date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise FieldProblem(
            f"日期 {day.isoformat()} 不在 {EARLIEST_DATE.year}–{LATEST_DATE.year} 年之间，请核对年份 / "
            f"date {day.isoformat()} is outside {EARLIEST_DATE.year}-{LATEST_DATE.year}: check the year"
        )
    return day


def parse_date(value: object, tz: ZoneInfo | None = None) -> date | None:
    """A date from `YYYY-MM-DD`, `YYYY/M/D`, `YYYY年M月D日`, an Excel date cell or serial number,
    between EARLIEST_DATE and LATEST_DATE."""
    day = _parse_date(value, tz)
    return None if day is None else _plausible(day)


def _parse_date(value: object, tz: ZoneInfo | None = None) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(tz or ZoneInfo(DEFAULT_TZ)).date()
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # An Excel date serial (a date cell exported without its format). The range test
        # comes first: float() of a 400-digit integer would raise OverflowError.
        if 20000 <= value <= 80000 and float(value).is_integer():
            return _EXCEL_EPOCH + timedelta(days=int(value))
        raise FieldProblem("日期格式应为 YYYY-MM-DD / not a date (expected YYYY-MM-DD)")
    text = as_text(value)
    if text is None:
        return None
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        # The common `YYYY-MM-DD`; anything odd about it (no such date) takes the full path below.
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    match = _DATE_RE.match(text)
    rest = text[match.end():] if match else ""
    if not match or (rest and not re.fullmatch(r"[ T]*0{1,2}:00(:00(\.0+)?)?", rest)):
        raise FieldProblem("日期格式应为 YYYY-MM-DD / not a date (expected YYYY-MM-DD)")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise FieldProblem("日期不存在 / no such date") from None


def parse_instant(value: object, tz: ZoneInfo) -> datetime | None:
    """An aware UTC instant; a date-time without a zone is in `tz`, a bare date is its start."""
    if value is None:
        return None
    if isinstance(value, datetime):
        _plausible(value.date())
        local = value if value.tzinfo else value.replace(tzinfo=tz)
        return local.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(_plausible(value), time(0), tz).astimezone(timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        day = parse_date(value)
        assert day is not None
        return datetime.combine(day, time(0), tz).astimezone(timezone.utc)
    text = as_text(value)
    if text is None:
        return None
    problem = "时间格式应为 YYYY-MM-DD HH:MM / not a date-time (expected YYYY-MM-DD HH:MM)"
    match = _DATE_RE.match(text)
    if not match:
        raise FieldProblem(problem)
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise FieldProblem("日期不存在 / no such date") from None
    _plausible(day)
    rest = text[match.end():]
    if not rest.strip():
        return datetime.combine(day, time(0), tz).astimezone(timezone.utc)
    tmatch = _TIME_RE.match(rest)
    if not tmatch:
        raise FieldProblem(problem)
    hour, minute, second = int(tmatch[1]), int(tmatch[2]), int(tmatch[3] or 0)
    micro = int((tmatch[4] or "0").ljust(6, "0"))
    zone: Any = tz
    if tmatch[5]:
        if tmatch[5] == "Z":
            zone = timezone.utc
        else:
            sign = 1 if tmatch[5][0] == "+" else -1
            digits = tmatch[5][1:].replace(":", "")
            zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=zone).astimezone(timezone.utc)
    except ValueError:
        raise FieldProblem(problem) from None


def choice_cell(field: str) -> Callable[[object], str | None]:
    """A choice cell's reader: the value, any label a mail or workbook shows for it (Chinese or English, any
    case), or a synonym."""
    group = CHOICE_FIELDS[field]
    lookup = accepted_words(group)
    allowed = "、".join(f"{label_of(group, value)}（{value}）" for value in choice_values(group))

    def parse(value: object) -> str | None:
        text = as_text(value)
        if text is None:
            return None
        found = lookup.get(text.lower())
        if found is None:
            raise FieldProblem(f"取值应为{allowed}之一 / must be one of {', '.join(choice_values(group))}")
        return found

    return parse


def number_cell(integer: bool) -> Callable[[object], float | int | None]:
    """A number cell's reader: not negative, finite, bounded; `integer` wants a whole number."""

    def parse(value: object) -> float | int | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise FieldProblem("应为数字 / must be a number")
        if isinstance(value, int) and abs(value) > _LARGEST_NUMBER:
            # Caught before float(), which raises OverflowError past about 309 digits.
            raise FieldProblem("数值过大 / too large")
        if isinstance(value, (int, float)):
            number = float(value)
        else:
            text = as_text(value)
            if text is None:
                return None
            try:
                number = float(text.replace(",", "").replace("，", ""))
            except ValueError:
                raise FieldProblem("应为数字 / must be a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise FieldProblem("应为数字 / must be a number")
        if number < 0:
            raise FieldProblem("不能为负数 / must not be negative")
        if integer:
            if not number.is_integer():
                raise FieldProblem("应为整数 / must be a whole number")
            if number > 2**31 - 1:
                raise FieldProblem("数值过大 / too large")
            return int(number)
        if number > 1e12:
            raise FieldProblem("数值过大 / too large")
        return number

    return parse
