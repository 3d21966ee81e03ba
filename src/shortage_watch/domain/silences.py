"""Silences: which alerts an officer's silence holds, which silences are refused, and what each
held item becomes when its silence ends.

A silence holds mail only. Deadlines, overdue states, escalation levels and compliance run
exactly as without it; when it ends, each held item still relevant goes out once, at its
current level (the latest level held for that matter and recipient), never replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Mapping


# Not alerts about one matter but the mail that lists them (the daily digest names what silences
# hold) and the periodic summaries: a silence never holds them. Held, they came back on release
# as 'digest' alerts of a digest-reading bureau, and the next digest swallowed them unsent.
NEVER_HELD = frozenset({"digest", "monthly_summary", "operations_digest"})


@dataclass(frozen=True)
class SilenceRule:
    """What a silence matches; every matcher given must match (a region covers the regions under it)."""

    id: int
    region_code: str | None
    distributor_code: str | None
    product_code: str | None
    template: str | None
    starts_at: datetime
    ends_at: datetime

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, item: "AlertFacts") -> bool:
        return (
            item.template not in NEVER_HELD
            and (self.region_code is None or self.region_code in item.region_chain)
            and (self.distributor_code is None or self.distributor_code == item.distributor_code)
            and (self.product_code is None or self.product_code == item.product_code)
            and (self.template is None or self.template == item.template)
        )

    def describe(self) -> str:
        """'region=350902 template=overdue_alert': the matchers, for lists and audit."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("region", self.region_code), ("distributor", self.distributor_code),
                ("product", self.product_code), ("template", self.template),
            )
            if value is not None
        ]
        return " ".join(parts)


@dataclass(frozen=True)
class AlertFacts:
    """What a silence can match in one alert."""

    template: str
    region_chain: tuple[str, ...]  # the item's region, then its parents
    distributor_code: str | None
    product_code: str | None


def holding_silence(rules: Iterable[SilenceRule], item: AlertFacts, now: datetime) -> SilenceRule | None:
    """The active silence that holds `item` at `now` (the oldest when several match), or None."""
    matching = [r for r in rules if r.active_at(now) and r.matches(item)]
    return min(matching, key=lambda r: r.id) if matching else None


def refusal(
    *, matchers: dict[str, str | None], until: datetime | None, reason: str | None, now: datetime, max_days: int
) -> str | None:
    """Why a silence may not be created (one line, Chinese then English), or None when it may."""
    if not any(value for value in matchers.values()):
        return "静默须指定 --region、--distributor、--product 或 --template 之一 / a silence needs --region, --distributor, --product or --template"
    if not (reason or "").strip():
        return "静默须说明原因 (--reason) / a silence needs a reason (--reason)"
    if until is None:
        return "静默须有结束时间 (--until) / a silence needs an end (--until)"
    if until <= now:
        return f"结束时间 {until.isoformat()} 已过 / --until {until.isoformat()} is not in the future"
    if until - now > timedelta(days=max_days):
        return f"静默最长 {max_days} 天 (silences.max_days) / a silence may last at most {max_days} days (silences.max_days)"
    return None


@dataclass(frozen=True)
class HeldItem:
    """One held alert, as the release decides about it."""

    alert_id: int
    thread_key: str  # the matter (obligation or case)
    recipient: str
    matter_open: bool  # the obligation is still owed / the case unresolved
    chases: bool  # its level chases an open matter (reminder, overdue, interview, province)
    on_ladder: bool = True  # a level of the matter's ladder (not a one-off event: late_report, false_shortage)


SEND, SUPERSEDED, STALE = "send", "superseded", "stale"


def release_plan(items: Iterable[HeldItem], later: Mapping[tuple[str, str], int] | None = None) -> dict[int, str]:
    """Per held alert: send it, or not (superseded by a later level held for the same matter and
    recipient; stale because it chases a matter that is no longer open).

    Alerts of one matter are written in ladder order, so the highest id is the current level.
    `later`: per (matter, recipient), the highest id of its other ladder levels that reached or will
    reach the recipient (sent meanwhile because no silence matched them, or held by another silence):
    an earlier level of the ladder released after them would go back down it ("due tomorrow" after
    "overdue"). A one-off event of the matter is no level: it neither supersedes nor is superseded so.
    """
    items = list(items)
    later = later or {}
    latest: dict[tuple[str, str], HeldItem] = {}
    for item in items:
        key = (item.thread_key, item.recipient)
        if key not in latest or item.alert_id > latest[key].alert_id:
            latest[key] = item
    plan: dict[int, str] = {}
    for item in items:
        key = (item.thread_key, item.recipient)
        current = latest[key]
        if item is not current or (item.on_ladder and later.get(key, 0) > item.alert_id):
            plan[item.alert_id] = SUPERSEDED
        elif item.chases and not item.matter_open:
            plan[item.alert_id] = STALE
        else:
            plan[item.alert_id] = SEND
    return plan

