"""The three record kinds of records.md, their headers, and how one raw row becomes a record.

Pure: no I/O. A raw row is a mapping of our keys to cell values as a parser found them
(text, numbers, Excel dates). `validate_record` returns a record model or the list of
problems, each naming the field and the reason in Chinese then English.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Annotated, Literal, Mapping
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, model_validator

from shortage_watch.domain.kinds import RECORD_KINDS
from shortage_watch.domain.labels import CHOICE_FIELDS, accepted_words, choice_values, label as label_of

RecordKind = Literal["stoppage_notice", "distributor_report", "shortage_report"]
KIND_LABELS = {
    "stoppage_notice": "停产断供通知",
    "distributor_report": "配送企业书面反馈",
    "shortage_report": "医疗机构短缺直报",
}
DEFAULT_TZ = "Asia/Shanghai"
# A submission a few minutes ahead of our clock is clock skew, not a future date.
CLOCK_SKEW = timedelta(minutes=10)

# key, Chinese column name, required (per kind; "described" = required when notice_id is absent)
FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "stoppage_notice": [
        ("notice_id", "通知编号", "yes"),
        ("manufacturer", "生产企业", "yes"),
        ("product_code", "药品编码", "yes"),
        ("product_name", "药品名称", "yes"),
        ("specification", "规格", "no"),
        ("kind", "类型", "yes"),
        ("distributor_code", "配送企业编码", "yes"),
        ("distributor_name", "配送企业名称", "no"),
        ("notified_on", "通知日期", "yes"),
        ("region_code", "行政区划代码", "no"),
        ("expected_resume_on", "预计恢复日期", "no"),
        ("reason", "原因", "no"),
        ("priority_class", "药品类别", "no"),
    ],
    "distributor_report": [
        ("report_id", "反馈编号", "yes"),
        ("distributor_code", "配送企业编码", "yes"),
        ("notice_id", "通知编号", "no"),
        ("manufacturer", "生产企业", "described"),
        ("product_code", "药品编码", "described"),
        ("product_name", "药品名称", "described"),
        ("kind", "类型", "described"),
        ("notified_on", "通知日期", "described"),
        ("submitted_at", "提交时间", "yes"),
        ("hospitals_notified", "已通知医疗机构数", "no"),
        ("substitutes", "替代药品", "no"),
        ("contact_name", "联系人", "no"),
        ("contact_phone", "联系电话", "no"),
    ],
    "shortage_report": [
        ("report_id", "直报编号", "yes"),
        ("hospital_code", "医疗机构编码", "yes"),
        ("hospital_name", "医疗机构名称", "no"),
        ("region_code", "行政区划代码", "no"),
        ("product_code", "药品编码", "yes"),
        ("product_name", "药品名称", "yes"),
        ("reported_on", "上报日期", "yes"),
        ("supply_status", "供应状态", "yes"),
        ("stock_days", "库存可用天数", "no"),
        ("monthly_demand", "月需求量", "no"),
        ("demand_unit", "单位", "no"),
        ("distributor_code", "配送企业编码", "no"),
        ("substitute_in_use", "替代药品", "no"),
        ("cause", "原因分类", "no"),
    ],
}
RECORD_KIND_HEADERS = ("record_kind", "记录类型")
DESCRIBED_FIELDS = ("manufacturer", "product_code", "product_name", "kind", "notified_on")

# Full-width and no-break spaces that Chinese spreadsheets leave around values.
_SPACES = " \t\r\n\u3000\u00a0\ufeff\u200b"


def clean_header(text: object) -> str:
    """A header cell as compared: trimmed of all spaces, lower-case."""
    return str(text).strip(_SPACES).lower() if text is not None else ""


def _header_index(kind: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for key, zh, _ in FIELDS[kind]:
        index[key] = key
        index[zh] = key
    for header in RECORD_KIND_HEADERS:
        index[header] = "record_kind"
    return index


HEADER_INDEX: dict[str, dict[str, str]] = {kind: _header_index(kind) for kind in RECORD_KINDS}
REQUIRED: dict[str, tuple[str, ...]] = {
    kind: tuple(key for key, _, req in FIELDS[kind] if req == "yes") for kind in RECORD_KINDS
}
ZH_NAME: dict[str, dict[str, str]] = {kind: {key: zh for key, zh, _ in FIELDS[kind]} for kind in RECORD_KINDS}
KNOWN_HEADERS: frozenset[str] = frozenset(h for index in HEADER_INDEX.values() for h in index)


def map_headers(kind: str, headers: list[str]) -> dict[str, str]:
    """Raw (cleaned) header -> our key for `kind`; unknown headers are left out."""
    index = HEADER_INDEX[kind]
    return {h: index[h] for h in headers if h in index}


def infer_kind(headers: list[str]) -> str | None:
    """The record kind a header row describes: the kind whose required keys are best covered."""
    best: tuple[float, int, str] | None = None
    for kind in RECORD_KINDS:
        keys = set(map_headers(kind, headers).values())
        required = REQUIRED[kind]
        score = (sum(k in keys for k in required) / len(required), len(keys), kind)
        # Distinctive keys break ties between kinds that share most columns.
        if best is None or score[:2] > best[:2]:
            best = score
    if best is None or best[0] < 0.5:
        return None
    return best[2]


def wrong_kind_for_headers(kind: str, headers: list[str]) -> str | None:
    """Why a header row does not fit `kind` when it plainly describes another kind (a wrong
    --kind): one reason for the whole file instead of a missing-field error on every row."""
    keys = set(map_headers(kind, headers).values())
    missing = [key for key in REQUIRED[kind] if key not in keys]
    described = infer_kind(headers)
    if not missing or described is None or described == kind:
        return None
    columns = "、".join(ZH_NAME[kind][key] for key in missing)
    return (
        f"文件的表头是{KIND_LABELS[described]}，不是{KIND_LABELS[kind]}（缺少 {columns} 列），请改用 --kind {described} 或 auto / "
        f"the headers describe {described}, not {kind} (no column {', '.join(missing)}): use --kind {described} or auto"
    )


def normalize_kind_name(value: object) -> str | None:
    """'stoppage_notice' / '停产断供通知' / 'Stoppage Notice' -> the record kind, else None."""
    text = clean_header(value).replace(" ", "_").replace("-", "_")
    if text in RECORD_KINDS:
        return text
    for kind, label in KIND_LABELS.items():
        if text == label:
            return kind
    return None


class FieldProblem(ValueError):
    """One field's problem, already worded Chinese first then English."""


@dataclass(frozen=True)
class RowError:
    """A rejected row (or JSON index), the field at fault (None: the whole row or file) and why;
    `column` is the field's header as the clerk wrote it (通知日期, Notified_On), when known."""

    row: int | None
    field: str | None
    reason: str
    column: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "column": self.column or self.field, "reason": self.reason}

    def in_columns(self, columns: Mapping[str, str]) -> "RowError":
        """The same error naming the header the clerk used for its field."""
        return RowError(self.row, self.field, self.reason, columns.get(self.field or "", self.column))


# ---- value parsing (cells arrive as text, numbers, datetimes) -------------------------------

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
        text = value.strip(_SPACES)
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
    text = value.strip(_SPACES)
    if _CONTROL.search(text):
        raise FieldProblem("含有控制字符 / contains control characters")
    return text or None


def _text(max_len: int | None = None, identifier: bool = False):  # type: ignore[no-untyped-def]
    def parse(value: object) -> str | None:
        if type(value) is str:
            # The common cell, as `as_text` treats it: printable text holds no control character.
            text = value.strip(_SPACES)
            if text.isprintable():
                if max_len is not None and len(text) > max_len:
                    raise FieldProblem(f"长度超过 {max_len} 个字符 / longer than {max_len} characters")
                return text or None
        text = as_text(value)
        if text is None:
            return None
        # Printable text holds no control character, so most ids skip the scan.
        if identifier and not text.isprintable() and _ID_FORBIDDEN.search(text):
            raise FieldProblem("编号不能含有换行或控制字符 / an id cannot contain line breaks or control characters")
        if max_len is not None and len(text) > max_len:
            raise FieldProblem(f"长度超过 {max_len} 个字符 / longer than {max_len} characters")
        return text

    return BeforeValidator(parse)


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


def _choice(field: str):  # type: ignore[no-untyped-def]
    """Accept the value, any label a mail or workbook shows for it (Chinese or English, any case), or a synonym."""
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

    return BeforeValidator(parse)


def _number(integer: bool):  # type: ignore[no-untyped-def]
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

    return BeforeValidator(parse)


def _date_field(value: object, info: ValidationInfo) -> date | None:
    if type(value) is str:
        return parse_date(value)  # the zone matters only for an aware datetime cell
    return parse_date(value, _tz(info))


def _instant_field(value: object, info: ValidationInfo) -> datetime | None:
    return parse_instant(value, _tz(info))


def _tz(info: ValidationInfo) -> ZoneInfo:
    context = info.context or {}
    return context.get("tz") or ZoneInfo(DEFAULT_TZ)


Id = Annotated[str, _text(64, identifier=True)]
OptId = Annotated[str | None, _text(64, identifier=True)]
Code = Annotated[str, _text(64)]
OptCode = Annotated[str | None, _text(64)]
Region = Annotated[str | None, _text(32, identifier=True)]
Text = Annotated[str, _text(2000)]
OptText = Annotated[str | None, _text(2000)]
Day = Annotated[date, BeforeValidator(_date_field)]
OptDay = Annotated[date | None, BeforeValidator(_date_field)]
Instant = Annotated[datetime, BeforeValidator(_instant_field)]
NoticeKind = Annotated[str, _choice("kind")]
OptNoticeKind = Annotated[str | None, _choice("kind")]
Priority = Annotated[str | None, _choice("priority_class")]
SupplyStatus = Annotated[str, _choice("supply_status")]
Cause = Annotated[str | None, _choice("cause")]
Count = Annotated[int | None, _number(integer=True)]
Amount = Annotated[float | None, _number(integer=False)]


def _today(info: ValidationInfo) -> date | None:
    context = info.context or {}
    if "today" in context:
        return context["today"]
    now: datetime | None = context.get("now")
    return now.astimezone(_tz(info)).date() if now is not None else None


@lru_cache(maxsize=16)
def _validation_context(now: datetime | None, tz: ZoneInfo) -> dict[str, Any]:
    """What the validators read: `now`, `tz` and today's date in `tz` (worked out once per file)."""
    return {"now": now, "tz": tz, "today": now.astimezone(tz).date() if now is not None else None}


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def data(self) -> dict[str, Any]:
        """The record as JSON-ready data (dates ISO), the form that is hashed and versioned."""
        return self.model_dump(mode="json")

    def canonical_json(self) -> str:
        """The normalized record as compact JSON: the same data, hashed and stored in one text."""
        # Fields serialize in declaration order, so equal records give equal text.
        return self.model_dump_json()

    def content_hash(self) -> str:
        """sha256 of the normalized record: equal records hash equal whatever their file format."""
        return hash_canonical_json(self.canonical_json())


class StoppageNoticeRecord(_Record):
    """A manufacturer told a distributor that a product stops (停产), is interrupted (断供) or reduced (减产)."""

    record_kind: Literal["stoppage_notice"] = "stoppage_notice"
    notice_id: Id
    manufacturer: Text
    product_code: Code
    product_name: Text
    specification: OptText = None
    kind: NoticeKind
    distributor_code: Id
    distributor_name: OptText = None
    notified_on: Day
    region_code: Region = None
    expected_resume_on: OptDay = None
    reason: OptText = None
    priority_class: Priority = None

    @model_validator(mode="after")
    def _dates(self, info: ValidationInfo) -> "StoppageNoticeRecord":
        today = _today(info)
        if today is not None and self.notified_on > today:
            raise _field_error("notified_on", "通知日期不能晚于今天 / notified_on is in the future")
        if self.expected_resume_on is not None and self.expected_resume_on < self.notified_on:
            raise _field_error(
                "expected_resume_on", "预计恢复日期不能早于通知日期 / expected_resume_on is before notified_on"
            )
        return self

    def identity(self) -> str:
        return record_key(self.notice_id, self.distributor_code)


class DistributorReportRecord(_Record):
    """A distributor's written report (书面反馈) about a notice to the insurance bureau."""

    record_kind: Literal["distributor_report"] = "distributor_report"
    report_id: Id
    distributor_code: Id
    notice_id: OptId = None
    manufacturer: OptText = None
    product_code: OptCode = None
    product_name: OptText = None
    kind: OptNoticeKind = None
    notified_on: OptDay = None
    submitted_at: Instant
    hospitals_notified: Count = None
    substitutes: OptText = None
    contact_name: OptText = None
    contact_phone: Annotated[str | None, _text(64)] = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> "DistributorReportRecord":
        context = info.context or {}
        now: datetime | None = context.get("now")
        if now is not None and self.submitted_at > now + CLOCK_SKEW:
            raise _field_error("submitted_at", "提交时间不能晚于现在 / submitted_at is in the future")
        today = _today(info)
        if today is not None and self.notified_on is not None and self.notified_on > today:
            raise _field_error("notified_on", "通知日期不能晚于今天 / notified_on is in the future")
        if self.notice_id is None:
            missing = self.missing_description()
            if missing:
                raise _field_error(
                    missing[0],
                    "未填写通知编号时必须描述通知（生产企业、药品编码、药品名称、类型、通知日期） / "
                    "without notice_id the notice must be described "
                    "(manufacturer, product_code, product_name, kind, notified_on)",
                )
        return self

    def missing_description(self) -> list[str]:
        """The fields describing the notice that this report leaves empty."""
        return [name for name in DESCRIBED_FIELDS if getattr(self, name) is None]

    def identity(self) -> str:
        return record_key(self.distributor_code, self.report_id)


class ShortageReportRecord(_Record):
    """A hospital's direct report (短缺直报) that it lacks a product."""

    record_kind: Literal["shortage_report"] = "shortage_report"
    report_id: Id
    hospital_code: Id
    hospital_name: OptText = None
    region_code: Region = None
    product_code: Code
    product_name: Text
    reported_on: Day
    supply_status: SupplyStatus
    stock_days: Amount = None
    monthly_demand: Amount = None
    demand_unit: Annotated[str | None, _text(32)] = None
    distributor_code: OptId = None
    substitute_in_use: OptText = None
    cause: Cause = None

    @model_validator(mode="after")
    def _dates(self, info: ValidationInfo) -> "ShortageReportRecord":
        today = _today(info)
        if today is not None and self.reported_on > today:
            raise _field_error("reported_on", "上报日期不能晚于今天 / reported_on is in the future")
        return self

    def identity(self) -> str:
        return record_key(self.hospital_code, self.report_id)


Record = StoppageNoticeRecord | DistributorReportRecord | ShortageReportRecord
MODELS: dict[str, type[_Record]] = {
    "stoppage_notice": StoppageNoticeRecord,
    "distributor_report": DistributorReportRecord,
    "shortage_report": ShortageReportRecord,
}


def hash_canonical_json(text: str) -> str:
    """The content hash of a record given its `canonical_json()`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_key(*parts: str) -> str:
    """The identity key stored in record_versions (ids cannot hold control characters)."""
    return "\x1f".join(parts)


class _FieldError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _field_error(field: str, reason: str) -> _FieldError:
    return _FieldError(field, reason)


_PYDANTIC_REASONS = {
    "missing": "必填字段缺失 / required field is missing",
    "string_type": "应为文本 / must be text",
    "date_type": "日期格式应为 YYYY-MM-DD / not a date (expected YYYY-MM-DD)",
    "datetime_type": "时间格式应为 YYYY-MM-DD HH:MM / not a date-time (expected YYYY-MM-DD HH:MM)",
}


def _explain(exc: ValidationError, row: int | None) -> list[RowError]:
    errors: list[RowError] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else None
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _FieldError):
            errors.append(RowError(row, cause.field, cause.reason))
        elif isinstance(cause, FieldProblem):
            errors.append(RowError(row, field, str(cause)))
        else:
            reason = _PYDANTIC_REASONS.get(err["type"], f"无效的值 / invalid value ({err['msg']})")
            errors.append(RowError(row, field, reason))
    return errors


def validate_record(
    kind: str, values: Mapping[str, object], *, row: int | None, now: datetime | None, tz: ZoneInfo
) -> tuple[Record | None, list[RowError]]:
    """One raw row (our keys -> cell values) as a record of `kind`, or why it is rejected."""
    present = {k: v for k, v in values.items() if v is not None and not (isinstance(v, str) and not v.strip(_SPACES))}
    present.pop("record_kind", None)
    try:
        record = MODELS[kind].model_validate(present, context=_validation_context(now, tz))
    except ValidationError as exc:
        return None, _explain(exc, row)
    return record, []  # type: ignore[return-value]
