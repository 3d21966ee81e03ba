"""The three record kinds of records.md as models, and how one raw row becomes a record.

Pure: no I/O. A raw row is a mapping of our keys to cell values as a parser found them
(text, numbers, Excel dates); each field reads its cell as intake/cells.py says (column
names are intake/columns.py's). `validate_record` returns a record model or the list of
problems, each naming the field and the reason in Chinese then English.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta
from typing import Any, Annotated, Literal, Mapping
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, model_validator

from shortage_watch.domain.kinds import RECORD_KINDS
from shortage_watch.intake.cells import DEFAULT_TZ, SPACES, FieldProblem, choice_cell, number_cell, parse_date, parse_instant, text_cell

RecordKind = Literal["stoppage_notice", "distributor_report", "shortage_report"]
# A submission a few minutes ahead of our clock is clock skew, not a future date.
CLOCK_SKEW = timedelta(minutes=10)

# What a report without notice_id must give to describe the notice it answers.
DESCRIBED_FIELDS = ("manufacturer", "product_code", "product_name", "kind", "notified_on")


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


def _date_field(value: object, info: ValidationInfo) -> date | None:
    if type(value) is str:
        return parse_date(value)  # the zone matters only for an aware datetime cell
    return parse_date(value, _tz(info))


def _instant_field(value: object, info: ValidationInfo) -> datetime | None:
    return parse_instant(value, _tz(info))


def _tz(info: ValidationInfo) -> ZoneInfo:
    context = info.context or {}
    return context.get("tz") or ZoneInfo(DEFAULT_TZ)


Id = Annotated[str, BeforeValidator(text_cell(64, identifier=True))]
OptId = Annotated[str | None, BeforeValidator(text_cell(64, identifier=True))]
Code = Annotated[str, BeforeValidator(text_cell(64, code=True))]
OptCode = Annotated[str | None, BeforeValidator(text_cell(64, code=True))]
Region = Annotated[str | None, BeforeValidator(text_cell(32, identifier=True))]
Text = Annotated[str, BeforeValidator(text_cell(2000))]
OptText = Annotated[str | None, BeforeValidator(text_cell(2000))]
Day = Annotated[date, BeforeValidator(_date_field)]
OptDay = Annotated[date | None, BeforeValidator(_date_field)]
Instant = Annotated[datetime, BeforeValidator(_instant_field)]
NoticeKind = Annotated[str, BeforeValidator(choice_cell("kind"))]
OptNoticeKind = Annotated[str | None, BeforeValidator(choice_cell("kind"))]
Priority = Annotated[str | None, BeforeValidator(choice_cell("priority_class"))]
SupplyStatus = Annotated[str, BeforeValidator(choice_cell("supply_status"))]
Cause = Annotated[str | None, BeforeValidator(choice_cell("cause"))]
Count = Annotated[int | None, BeforeValidator(number_cell(integer=True))]
Amount = Annotated[float | None, BeforeValidator(number_cell(integer=False))]


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
    contact_phone: Annotated[str | None, BeforeValidator(text_cell(64))] = None

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
    demand_unit: Annotated[str | None, BeforeValidator(text_cell(32))] = None
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
    present = {k: v for k, v in values.items() if v is not None and not (isinstance(v, str) and not v.strip(SPACES))}
    present.pop("record_kind", None)
    try:
        record = MODELS[kind].model_validate(present, context=_validation_context(now, tz))
    except ValidationError as exc:
        return None, _explain(exc, row)
    return record, []  # type: ignore[return-value]
