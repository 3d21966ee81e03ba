"""The ledger's tables (SQLAlchemy 2 typed declarative models).

Every datetime is stored as an aware UTC instant (`UTCDateTime`); calendar days are
computed in Asia/Shanghai by the calendar, never here.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC instants")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        """The column's reader, remembering what each stored value became (see `_remembered`)."""
        return _remembered(super().result_processor(dialect, coltype))


REMEMBERED_VALUES = 4096  # distinct stored instants a reader keeps converted, per column type and backend


def _remembered(process: Any) -> Any:
    """`process` (a reader of stored values), giving one value read again the object it gave before.

    Rows read together share few instants: a sweep batch's obligations were opened and are due at a
    handful, their alerts mailed at one. Parsing SQLite's text (or converting PostgreSQL's zone) cost
    about a fifth of the sweep's Python; a dict lookup replaces it. Datetimes are immutable, so one
    object serves every row; the memory is bounded by starting afresh when full."""
    if process is None:
        return None
    known: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        if value is None:
            return None
        found = known.get(value)
        if found is None:
            if len(known) >= REMEMBERED_VALUES:
                known.clear()
            found = known[value] = process(value)
        return found

    return remembered


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class SourceState(Base):
    """Where each source stands, and which replica may poll it (the lease)."""

    __tablename__ = "source_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]


class RawPayload(Base):
    """Received bytes, stored once per content hash."""

    __tablename__ = "raw_payloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime]
    # Last: SQLite keeps a zeroblob as a count of zeros only in a row's last column, which lets
    # `archive_payload` insert one and write the bytes into it in pieces (migration 0011).
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # None once pruned by retention


class RawReceipt(Base):
    """One arrival (a file, a feed page): archived before parsing, with its outcome."""

    __tablename__ = "raw_receipts"
    # The sender asks, every tick, which files are still being stored (store/outbox.py).
    __table_args__ = (Index("ix_raw_receipts_status_received", "status", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(Text)  # file name or URL
    payload_id: Mapped[int] = mapped_column(ForeignKey("raw_payloads.id"))
    received_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # received | accepted | partial | rejected
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any] | None]
    # Stored a chunk at a time: the last row (or JSON index) whose chunk committed, so an
    # interrupted file resumes after it; None while nothing is committed or when stored at once.
    rows_done: Mapped[int | None] = mapped_column(Integer)
    # Inbox files: where the file went ("archive/a.csv"), watched for a tail appended after it
    # was read; or why it could not be moved out of the inbox (it then waits, not re-ingested).
    moved_to: Mapped[str | None] = mapped_column(Text)
    move_error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[Any] | None]  # accepted rows naming a party the directory does not list


class RecordVersion(Base):
    """Every distinct version of every record received: the history behind revisions."""

    __tablename__ = "record_versions"
    __table_args__ = (UniqueConstraint("kind", "record_key", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(String(64))
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("raw_receipts.id"))
    received_at: Mapped[datetime]


class StoppageNotice(Base):
    """Current version of a manufacturer's notice to one distributor."""

    __tablename__ = "stoppage_notices"
    __table_args__ = (
        UniqueConstraint("notice_id", "distributor_code"),
        Index("ix_stoppage_notices_product", "product_code"),
        # The dashboard lists an officer's regions' notices, newest first.
        Index("ix_stoppage_notices_region_notified", "region_code", "notified_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[str] = mapped_column(String(64))
    distributor_code: Mapped[str] = mapped_column(String(64))
    distributor_name: Mapped[str | None] = mapped_column(Text)
    manufacturer: Mapped[str] = mapped_column(Text)
    product_code: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(Text)
    specification: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    notified_on: Mapped[date] = mapped_column(Date)
    region_code: Mapped[str | None] = mapped_column(String(32))
    expected_resume_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(Text)
    priority_class: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DistributorReport(Base):
    """Current version of a distributor's written report to the insurance bureau."""

    __tablename__ = "distributor_reports"
    __table_args__ = (UniqueConstraint("distributor_code", "report_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[str] = mapped_column(String(64))
    distributor_code: Mapped[str] = mapped_column(String(64))
    notice_id: Mapped[str | None] = mapped_column(String(64))
    manufacturer: Mapped[str | None] = mapped_column(Text)
    product_code: Mapped[str | None] = mapped_column(String(64))
    product_name: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    notified_on: Mapped[date | None] = mapped_column(Date)
    submitted_at: Mapped[datetime]
    hospitals_notified: Mapped[int | None] = mapped_column(Integer)
    substitutes: Mapped[str | None] = mapped_column(Text)
    contact_name: Mapped[str | None] = mapped_column(Text)
    contact_phone: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ShortageCase(Base):
    """One product short in one city; climbs its own ladder once regional."""

    __tablename__ = "shortage_cases"
    __table_args__ = (
        Index("ix_shortage_cases_next_action_at", "next_action_at"),
        Index("ix_shortage_cases_product_city", "product_code", "city_code"),
        # The sweep re-dates cases whose due date the calendar only estimated: few rows, read by this.
        Index("ix_shortage_cases_calendar_status", "calendar_status", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_code: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(Text)
    city_code: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # open | regional | escalated | resolved
    opened_at: Mapped[datetime]
    regional_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer, default=0)
    policy: Mapped[dict[str, Any] | None]
    next_action_at: Mapped[datetime | None]
    # Set when the case becomes regional: its due instant for the province and how sure the calendar was.
    due_at: Mapped[datetime | None]
    calendar_status: Mapped[str | None] = mapped_column(String(16))  # official | override | estimated
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ShortageReport(Base):
    """Current version of a hospital's direct report; joins one case."""

    __tablename__ = "shortage_reports"
    __table_args__ = (
        UniqueConstraint("hospital_code", "report_id"),
        # The dashboard finds an officer's cases through its regions' hospital reports.
        Index("ix_shortage_reports_region_case", "region_code", "case_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[str] = mapped_column(String(64))
    hospital_code: Mapped[str] = mapped_column(String(64))
    hospital_name: Mapped[str | None] = mapped_column(Text)
    region_code: Mapped[str | None] = mapped_column(String(32))
    product_code: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(Text)
    reported_on: Mapped[date] = mapped_column(Date)
    supply_status: Mapped[str] = mapped_column(String(16))
    stock_days: Mapped[float | None]
    monthly_demand: Mapped[float | None]
    demand_unit: Mapped[str | None] = mapped_column(String(32))
    distributor_code: Mapped[str | None] = mapped_column(String(64))
    substitute_in_use: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[str | None] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("shortage_cases.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Obligation(Base):
    """Who owes what by when, and where on its escalation ladder it stands."""

    __tablename__ = "obligations"
    __table_args__ = (
        # The sweep reads only due rows through this index: cost follows due items.
        Index("ix_obligations_next_action_at", "next_action_at"),
        Index("ix_obligations_party", "party_code", "state"),
        # The sweep re-dates in-flight obligations whose due date the calendar only estimated.
        Index("ix_obligations_calendar_status", "calendar_status", "state"),
        # The dashboard: open/overdue counts and lists by region and deadline; months by due date;
        # obligations fulfilled late within the weekly chart's window.
        Index("ix_obligations_state_region_due", "state", "region_code", "due_at"),
        Index("ix_obligations_region_due_on", "region_code", "due_on", "state", "kind", "due_at"),
        Index("ix_obligations_state_region_fulfilled", "state", "region_code", "fulfilled_at"),
        UniqueConstraint("kind", "subject_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # report | explanation
    subject_key: Mapped[str] = mapped_column(String(200))  # what it is about, e.g. notice id + distributor
    party_code: Mapped[str] = mapped_column(String(64))
    region_code: Mapped[str | None] = mapped_column(String(32))
    notice_pk: Mapped[int | None] = mapped_column(ForeignKey("stoppage_notices.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("shortage_cases.id"))
    product_code: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    received_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime]
    calendar_status: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # open | overdue | fulfilled | fulfilled_late | cancelled
    level: Mapped[int] = mapped_column(Integer, default=0)  # index of the next ladder level to apply
    policy: Mapped[dict[str, Any]]  # the ladder as it was when opened
    next_action_at: Mapped[datetime | None]
    fulfilled_at: Mapped[datetime | None]
    report_pk: Mapped[int | None] = mapped_column(ForeignKey("distributor_reports.id"))
    late_working_days: Mapped[int | None] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Alert(Base):
    """The outbox: one message to one recipient, written in the escalating transaction."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_alerts_obligation", "obligation_id"),
        Index("ix_alerts_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    obligation_id: Mapped[int | None] = mapped_column(ForeignKey("obligations.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("shortage_cases.id"))
    thread_key: Mapped[str] = mapped_column(String(200))  # mail about one case threads together
    level: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(64))
    recipient_role: Mapped[str] = mapped_column(String(64))
    recipient_region: Mapped[str | None] = mapped_column(String(32))
    recipient_email: Mapped[str | None] = mapped_column(Text)  # None: undeliverable
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    context: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # pending | sending | sent | dead | undeliverable
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # While status is 'held': the silence holding it (kept afterwards: which silence held it).
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silences.id"))


class Silence(Base):
    """An officer's silence: matching alerts are held (not sent, not dropped) until it ends."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_released", "released_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_code: Mapped[str | None] = mapped_column(String(32))  # the region and every region under it
    distributor_code: Mapped[str | None] = mapped_column(String(64))
    product_code: Mapped[str | None] = mapped_column(String(64))
    template: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]  # --until; `silences expire` moves it to the expiry instant
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expired_by: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[datetime | None]  # when its held alerts were released (None: still to do)


class AuditEvent(Base):
    """Every state change: what, who or what caused it, when."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]


class Lease(Base):
    """A named lease, for jobs that one replica at a time should run (digests, housekeeping)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128))
    until: Mapped[datetime | None]


class Heartbeat(Base):
    """One row per running replica, refreshed on a timer."""

    __tablename__ = "heartbeats"

    replica_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    version: Mapped[str] = mapped_column(String(32))


class Installation(Base):
    """This ledger's random identity, created with the schema: it makes Message-IDs unique per installation."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1: one row
    installation_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class WebAccount(Base):
    """A person who logs in to the web app. `role` says which pages they may use:
    `distributor` (party_code: their distributor code); `officer` is the bureau dashboard's."""

    __tablename__ = "web_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    party_code: Mapped[str | None] = mapped_column(String(64), index=True)
    # Officers: the region they oversee (and every region below it) and their bureau (insurance | health).
    region_code: Mapped[str | None] = mapped_column(String(32))
    bureau: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on password change, reset and disable: every session cookie signed before is void.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class EndedWebSession(Base):
    """A session cookie ended by logging out before it expired: the cookie opens nothing any more.

    `session_id` is the sha256 of the cookie's random nonce; a row is needed only until `expires_at`
    (the cookie's own expiry), after which the signature check refuses the cookie anyway."""

    __tablename__ = "ended_web_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("web_accounts.id"))
    ended_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    """A bearer token of one account; only its sha256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("web_accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a token can be recognised
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Per-token rate limit: requests counted in the current one-minute window.
    rate_window_start: Mapped[datetime | None]
    rate_count: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(Base):
    """The first answer to an API request carrying an Idempotency-Key, replayed for repeats."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("web_accounts.id"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)


class LoginAttempt(Base):
    """One password login attempt, for the per-account-and-address rate limit."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_name_address_at", "name", "address", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)


class WebSubmission(Base):
    """Which account handed in a receipt through the web app, how, and (for a correction) why."""

    __tablename__ = "web_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("web_accounts.id"), index=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("raw_receipts.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # form | upload | api | correction
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class OfficerAction(Base):
    """An interview (约谈) or written reminder (书面提醒) an officer did offline and recorded on the dashboard."""

    __tablename__ = "officer_actions"
    __table_args__ = (Index("ix_officer_actions_distributor", "distributor_code", "done_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # interview | written_reminder
    distributor_code: Mapped[str] = mapped_column(String(64))
    region_code: Mapped[str] = mapped_column(String(32))  # the recording officer's region: who may see it
    obligation_id: Mapped[int | None] = mapped_column(ForeignKey("obligations.id"), index=True)
    done_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("web_accounts.id"))
    recorded_at: Mapped[datetime]


# A stored record of any kind, as the ingest hands it to its listener.
RecordRow = StoppageNotice | DistributorReport | ShortageReport
