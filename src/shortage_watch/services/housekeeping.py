"""The daily housekeeping: prune what the retention period lets go, and warn about a working-day
calendar that is not official yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import CalendarStatus, WorkingCalendar
from shortage_watch.store import retention


@dataclass
class HousekeepingResult:
    payloads_pruned: int = 0
    alerts_deleted: int = 0
    warnings: list[str] = field(default_factory=list)


def prune_old_records(sessions: sessionmaker[Session], retention_days: int, now: datetime) -> HousekeepingResult:
    """Drop raw payload bytes and sent alerts older than `retention_days` (one transaction).

    Payload rows, receipts and parsed records stay: only the archived bytes go, and never
    those of a receipt still waiting to be parsed. Pending, dead and undeliverable alerts stay.
    """
    cutoff = now - timedelta(days=retention_days)
    with sessions.begin() as session:
        pruned = retention.drop_old_payload_bytes(session, cutoff)
        deleted = retention.delete_sent_alerts_before(session, cutoff)
    return HousekeepingResult(payloads_pruned=pruned, alerts_deleted=deleted)


def calendar_warnings(calendar: WorkingCalendar, overrides_dir: Path | None, now: datetime) -> list[str]:
    """From 1 November: say so when next year's working-day arrangement is not yet official."""
    today = calendar.local_date(now)
    warnings = []
    years = [today.year] + ([today.year + 1] if today.month >= 11 else [])
    for year in years:
        if calendar.status(year) == CalendarStatus.ESTIMATED:
            warnings.append(
                f"the {year} working-day calendar is not official yet (estimated, erring late): when the "
                f"State Council publishes the {year} holiday arrangement, add {overrides_dir}/"
                f"{year}.toml (see docs/production.md), or upgrade to a shortage_watch release whose pinned holidays carries it"
            )
    return warnings
