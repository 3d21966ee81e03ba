"""What an alert carries to its template: the contract between escalation and mail.

The sweep stores one `AlertContext` (as JSON) in each outbox row; the mail templates
read only these keys. Dates are ISO strings (`YYYY-MM-DD`), instants ISO 8601 with
offset; templates format them for the reader (Asia/Shanghai, with the weekday).
Optional parts are present with the value None, never missing, so StrictUndefined
templates can test them.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Party(TypedDict):
    code: str
    name: str | None


class Recipient(TypedDict):
    role: str  # distributor | hospital | insurance | health | operations
    region_code: str | None
    region_name: str | None
    name: str | None  # the bureau or company name, for the salutation
    email: str | None


class Product(TypedDict):
    code: str
    name: str
    specification: str | None


class Notice(TypedDict):
    notice_id: str
    kind: str  # stoppage | interruption | reduction
    notified_on: str
    reason: str | None
    expected_resume_on: str | None
    priority_class: str | None  # negotiated | winning_bid | shortage_list | other | None


class DeadlineInfo(TypedDict):
    received_on: str
    working_days: int
    due_on: str
    due_at: str
    calendar: str  # official | override | estimated


class ReportInfo(TypedDict):
    report_id: str
    submitted_at: str
    late_working_days: int | None


class HospitalLine(TypedDict):
    code: str
    name: str | None
    region_code: str | None
    reported_on: str
    supply_status: str
    stock_days: float | None
    monthly_demand: float | None
    demand_unit: str | None
    substitute_in_use: str | None
    cause: str | None


class CaseInfo(TypedDict):
    city_code: str
    city_name: str | None
    state: str  # open | regional | escalated | resolved
    opened_at: str
    regional_at: str | None
    hospitals: list[HospitalLine]
    possible_false_shortages: int  # reports with cause 'procurement'
    linked_notices: list[str]
    first_reported_on: str  # the earliest date a hospital reported the shortage (首次上报)
    unresolved_working_days: int | None  # working days since it became regional, at writing time


class CatchUp(TypedDict):
    """Set on a message that comes later than its level's moment or stands for levels not mailed."""

    level_due_on: str  # the local date this level was due to go out
    skipped: list[str]  # templates of the earlier levels not mailed to this recipient (stood for by this one)
    entered_after_due: bool  # the matter entered the ledger after its deadline (a backlog), not a stopped daemon


class PreviousDeadline(TypedDict):
    """The deadline a `deadline_changed` mail replaces, as the distributor was last told it."""

    due_on: str
    due_at: str
    calendar: str  # official | override | estimated


# The keys only some alerts carry (NotRequired below; with string annotations TypedDict cannot tell).
OPTIONAL_CONTEXT_KEYS = frozenset({"previous_deadline"})


class AlertContext(TypedDict):
    template: str  # the template name, e.g. "written_reminder"
    level: str  # the ladder level's name
    case_number: str  # shown to people: "SW-O-000123" (obligation) or "SW-C-000045" (case)
    thread_key: str  # all mail with one thread key threads together
    urgent: bool
    written_at: str  # the ledger instant the alert was written
    region: Party  # the region the matter belongs to (code, name)
    recipient: Recipient
    distributor: Party | None
    manufacturer: str | None
    product: Product | None
    notice: Notice | None
    deadline: DeadlineInfo | None
    overdue_working_days: int | None  # working days past due at writing time
    report: ReportInfo | None
    case: CaseInfo | None
    entered_at: str  # when the matter entered the ledger (an obligation opened, a case became regional)
    prior_steps: dict[str, str]  # template -> local date, for steps actually mailed at least one working day before
    sent_with: list[str]  # templates mailed to other recipients in the same moment (e.g. the written reminder)
    catch_up: CatchUp | None
    previous_deadline: NotRequired[PreviousDeadline]  # only on a deadline_changed mail
