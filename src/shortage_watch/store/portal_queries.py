"""Read queries for the web app, with typed results: a distributor's obligations, records and receipts.

Every query that takes `party_code` returns only that distributor's rows: the web app
passes the logged-in account's code, never a code from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shortage_watch.domain.records import record_key
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT
from shortage_watch.store.tables import (
    Alert,
    AuditEvent,
    DistributorReport,
    Obligation,
    RecordVersion,
    StoppageNotice,
    WebSubmission,
)

IN_CHUNK = 500


@dataclass(frozen=True)
class ObligationRow:
    id: int
    kind: str  # report | explanation
    state: str
    received_on: date
    due_on: date
    due_at: datetime
    calendar_status: str
    fulfilled_at: datetime | None
    late_working_days: int | None
    product_code: str | None
    notice_pk: int | None
    notice_id: str | None
    product_name: str | None
    manufacturer: str | None
    stoppage_kind: str | None
    report_pk: int | None


def _obligation_query() -> Any:
    return select(Obligation, StoppageNotice).outerjoin(StoppageNotice, StoppageNotice.id == Obligation.notice_pk)


def _obligation_row(ob: Obligation, notice: StoppageNotice | None) -> ObligationRow:
    return ObligationRow(
        id=ob.id, kind=ob.kind, state=ob.state, received_on=ob.received_on, due_on=ob.due_on, due_at=ob.due_at,
        calendar_status=ob.calendar_status, fulfilled_at=ob.fulfilled_at, late_working_days=ob.late_working_days,
        product_code=ob.product_code, notice_pk=ob.notice_pk, notice_id=notice.notice_id if notice else None,
        product_name=notice.product_name if notice else None, manufacturer=notice.manufacturer if notice else None,
        stoppage_kind=notice.kind if notice else None, report_pk=ob.report_pk,
    )


def open_obligations(session: Session, party_code: str) -> list[ObligationRow]:
    """The distributor's open and overdue obligations, earliest deadline first."""
    rows = session.execute(_obligation_query().where(Obligation.party_code == party_code,
                                                     Obligation.state.in_(OBLIGATION_IN_FLIGHT))
                           .order_by(Obligation.due_at, Obligation.id))
    return [_obligation_row(ob, notice) for ob, notice in rows]


@dataclass(frozen=True)
class ObligationPage:
    total: int
    rows: list[ObligationRow]


def obligations_page(session: Session, party_code: str, *, states: Sequence[str] | None, since: datetime | None,
                     limit: int, offset: int) -> ObligationPage:
    """One page of the distributor's obligations (newest first), optionally in `states`, opened or
    changed since `since`."""
    where = [Obligation.party_code == party_code]
    if states:
        where.append(Obligation.state.in_(list(states)))
    if since is not None:
        where.append(Obligation.updated_at >= since)
    total = session.scalar(select(func.count()).select_from(Obligation).where(*where)) or 0
    # An offset past the end reads nothing; stopping it at the end keeps any offset within the database's integer.
    rows = session.execute(_obligation_query().where(*where).order_by(Obligation.id.desc()).limit(limit).offset(min(offset, total)))
    return ObligationPage(total, [_obligation_row(ob, notice) for ob, notice in rows])


def obligation_of(session: Session, party_code: str, obligation_id: int) -> ObligationRow | None:
    """The obligation if it is this distributor's; None otherwise (also when it does not exist)."""
    found = session.execute(_obligation_query().where(Obligation.id == obligation_id,
                                                      Obligation.party_code == party_code)).first()
    return _obligation_row(*found) if found else None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str  # an audit action (opened, fulfilled, ...) or "mail:<template>"
    detail: dict[str, Any]


def obligation_timeline(session: Session, obligation_id: int) -> list[TimelineEntry]:
    """What happened to an obligation as its distributor sees it: its audit events (without the addresses
    a skipped level would have gone to) and the mail written to the distributor, in time order."""
    # Mail up the ladder and the bureaus' addresses are the bureaus' correspondence, not the distributor's.
    entries = [TimelineEntry(e.at, e.action, {k: v for k, v in (e.detail or {}).items() if k != "recipients"})
               for e in session.scalars(select(AuditEvent).where(AuditEvent.entity == "obligation", AuditEvent.entity_id == obligation_id))]
    entries += [TimelineEntry(a.created_at, f"mail:{a.template}", {"level": a.level, "to": a.recipient_role,
                                                                    "status": a.status})
                for a in session.scalars(select(Alert).where(Alert.obligation_id == obligation_id, Alert.recipient_role == "distributor"))]
    # At one instant the state change comes before the mail it caused.
    return sorted(entries, key=lambda e: (e.at, e.what.startswith("mail:")))


@dataclass(frozen=True)
class RecordReceipt:
    """The receipt (回执) of one stored record: what it is and the obligation it opened or answered."""

    kind: str
    pk: int
    record_id: str  # notice_id or report_id
    version: int
    product_name: str | None
    received_at: datetime
    obligation_id: int | None
    obligation_state: str | None
    due_on: date | None
    due_at: datetime | None
    late_working_days: int | None


def _receipt(kind: str, record: StoppageNotice | DistributorReport, record_id: str, ob: Obligation | None) -> RecordReceipt:
    """A record's receipt, with its obligation's number, state and dates when it has one."""
    return RecordReceipt(kind, record.id, record_id, record.version, record.product_name, record.updated_at,
                         ob.id if ob else None, ob.state if ob else None, ob.due_on if ob else None,
                         ob.due_at if ob else None, ob.late_working_days if ob else None)


def _notice_receipts(session: Session, party_code: str, notice_ids: list[str]) -> list[RecordReceipt]:
    out = []
    for start in range(0, len(notice_ids), IN_CHUNK):
        rows = session.execute(
            select(StoppageNotice, Obligation)
            .outerjoin(Obligation, (Obligation.notice_pk == StoppageNotice.id) & (Obligation.kind == "report"))
            .where(StoppageNotice.distributor_code == party_code,
                   StoppageNotice.notice_id.in_(notice_ids[start:start + IN_CHUNK])))
        out += [_receipt("stoppage_notice", n, n.notice_id, ob) for n, ob in rows]
    return out


def _report_receipts(session: Session, party_code: str, report_ids: list[str]) -> list[RecordReceipt]:
    out = []
    for start in range(0, len(report_ids), IN_CHUNK):
        rows = session.execute(
            select(DistributorReport, Obligation)
            .outerjoin(Obligation, Obligation.report_pk == DistributorReport.id)
            .where(DistributorReport.distributor_code == party_code,
                   DistributorReport.report_id.in_(report_ids[start:start + IN_CHUNK])))
        out += [_receipt("distributor_report", r, r.report_id, ob) for r, ob in rows]
    return out


def receipts_of_arrival(session: Session, receipt_id: int, party_code: str) -> list[RecordReceipt]:
    """A receipt per record of this distributor stored (new or revised) by one arrival."""
    keys = session.execute(select(RecordVersion.kind, RecordVersion.record_key)
                           .where(RecordVersion.receipt_id == receipt_id).order_by(RecordVersion.id)).all()
    notice_ids = [key.split("\x1f")[0] for kind, key in keys if kind == "stoppage_notice"]
    report_ids = [key.split("\x1f")[1] for kind, key in keys if kind == "distributor_report"]
    found = {(r.kind, r.record_id): r for r in _notice_receipts(session, party_code, notice_ids)
             + _report_receipts(session, party_code, report_ids)}
    order = [("stoppage_notice", n) for n in notice_ids] + [("distributor_report", r) for r in report_ids]
    return [found[k] for k in order if k in found]


def record_receipt(session: Session, party_code: str, kind: str, pk: int) -> RecordReceipt | None:
    """The receipt of one of this distributor's records, by row id."""
    if kind == "stoppage_notice":
        notice = session.scalar(select(StoppageNotice.notice_id).where(
            StoppageNotice.id == pk, StoppageNotice.distributor_code == party_code))
        found = _notice_receipts(session, party_code, [notice]) if notice else []
    elif kind == "distributor_report":
        report = session.scalar(select(DistributorReport.report_id).where(
            DistributorReport.id == pk, DistributorReport.distributor_code == party_code))
        found = _report_receipts(session, party_code, [report]) if report else []
    else:
        found = []
    return found[0] if found else None


def history(session: Session, party_code: str, *, limit: int, offset: int) -> tuple[int, list[RecordReceipt]]:
    """The distributor's records (notices and reports, from every source), most recently changed first."""
    notices = session.scalars(select(StoppageNotice.notice_id).where(StoppageNotice.distributor_code == party_code)).all()
    reports = session.scalars(select(DistributorReport.report_id)
                              .where(DistributorReport.distributor_code == party_code)).all()
    everything = _notice_receipts(session, party_code, list(notices)) + _report_receipts(session, party_code, list(reports))
    everything.sort(key=lambda r: (r.received_at, r.pk), reverse=True)
    return len(everything), everything[offset:offset + limit]


@dataclass(frozen=True)
class VersionRow:
    version: int
    data: dict[str, Any]
    source: str
    received_at: datetime
    channel: str | None  # form | upload | api | correction when it came through the web app
    reason: str | None  # a correction's reason


def record_versions(session: Session, kind: str, first: str, second: str) -> list[VersionRow]:
    """Every version of one record (identity `first`, `second` as ingest keys it), oldest first."""
    rows = session.execute(
        select(RecordVersion, WebSubmission)
        .outerjoin(WebSubmission, WebSubmission.receipt_id == RecordVersion.receipt_id)
        .where(RecordVersion.kind == kind, RecordVersion.record_key == record_key(first, second))
        .order_by(RecordVersion.version))
    return [VersionRow(v.version, v.data, v.source, v.received_at, s.channel if s else None, s.reason if s else None)
            for v, s in rows]


def current_record(session: Session, party_code: str, kind: str, pk: int) -> dict[str, Any] | None:
    """The current version's data of one of this distributor's records, with its identity under `_key`."""
    if kind == "stoppage_notice":
        row: Any = session.scalar(select(StoppageNotice).where(StoppageNotice.id == pk,
                                                               StoppageNotice.distributor_code == party_code))
        key = (row.notice_id, row.distributor_code) if row else None
    elif kind == "distributor_report":
        row = session.scalar(select(DistributorReport).where(DistributorReport.id == pk,
                                                             DistributorReport.distributor_code == party_code))
        key = (row.distributor_code, row.report_id) if row else None
    else:
        return None
    if row is None or key is None:
        return None
    data = session.scalar(select(RecordVersion.data).where(
        RecordVersion.kind == kind, RecordVersion.record_key == record_key(*key), RecordVersion.version == row.version))
    return {**(data or {}), "_key": key}

