"""Grouped delivery: complete each claimed group with its due mates, hold young bureau groups for
`mail.group_wait`, and build one message (with an XLSX above `mail.group_attach_over` items) per group.

Each item stays its own outbox row: claimed, recorded sent (with the group's Message-ID) or
retried on its own, so a crash mid-batch still loses no item (at least once, per item).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from shortage_watch.clock import utc_now
from shortage_watch.domain.grouping import GroupKey, daily_thread_key, group_key, group_message_key, group_wait_until, plan_messages
from shortage_watch.mail.message import AddressError, Attachment, Envelope, build_message
from shortage_watch.mail.render import RenderError
from shortage_watch.store import claims
from shortage_watch.store import group_mates as store

if TYPE_CHECKING:
    from shortage_watch.services.deliver import AlertOutcome, ClaimedAlert, DeliverDeps


log = logging.getLogger(__name__)

GROUP_WAIT = "waiting for more items of its group (mail.group_wait)"


def key_of(alert: "ClaimedAlert") -> GroupKey | None:
    return group_key(alert.recipient_email, alert.template, alert.urgent, alert.language)


def messages_of(deps: "DeliverDeps", claimed: list["ClaimedAlert"]) -> list[list["ClaimedAlert"]]:
    """The claimed alerts as messages: one list per message, groups in claim order."""
    return plan_messages(claimed, key_of, deps.mail.group_max_items)


def complete_groups(
    session: Session, deps: "DeliverDeps", claimed: list["ClaimedAlert"], now: datetime, owner: str, lease: timedelta, *, wait: bool = True
) -> list["ClaimedAlert"]:
    """Add to a fresh claim every other due alert of the same groups, so a group leaves as one
    message however the batch cut it; with `wait`, give back the groups still inside their
    group wait (due again when it ends). Runs in the claim's transaction (commit is the caller's).
    """
    from shortage_watch.services.deliver import ClaimedAlert

    mail = deps.mail
    taken = {a.id for a in claimed}
    samples: dict[GroupKey, ClaimedAlert] = {}
    for alert in claimed:
        key = key_of(alert)
        if key is not None:
            samples.setdefault(key, alert)
    if not samples:
        return claimed
    real_now = utc_now()
    # The mates share the claim's lease: the whole group expires, and is re-claimed, together.
    until = store.lease_until(session, claimed[0].id) or real_now + lease
    # One read for every group the claim touched: rows of the same recipients, then keep those
    # of the same groups (at most mail.group_max_items each).
    candidates = store.claimable_of(session, {s.recipient_email for s in samples.values()}, taken, now, real_now, GROUP_WAIT)
    room = {key: mail.group_max_items for key in samples}
    ids = []
    for row_id, email, template, urgent, language in candidates:
        key = group_key(email, template, urgent, language)
        if key in room and room[key] > 0:
            room[key] -= 1
            ids.append(row_id)
    if not ids:
        return _give_back_young_groups(session, deps, claimed, now, owner) if wait else claimed
    rows = store.take_mates(session, ids, owner, until, now, real_now, GROUP_WAIT)
    mates = [
        ClaimedAlert(
            id=r.id, dedup_key=r.dedup_key, thread_key=r.thread_key, template=r.template, recipient_role=r.recipient_role,
            recipient_email=r.recipient_email, language=r.language, urgent=r.urgent, context=dict(r.context), attempts=r.attempts,
        )
        for r in rows
    ]
    complete = claimed + mates
    return _give_back_young_groups(session, deps, complete, now, owner) if wait else complete


def _give_back_young_groups(session: Session, deps: "DeliverDeps", claimed: list["ClaimedAlert"], now: datetime, owner: str) -> list["ClaimedAlert"]:
    from shortage_watch.services.deliver import working_hours_wait

    mail = deps.mail
    created = store.created_at_of(session, [a.id for a in claimed])
    groups: dict[GroupKey, list[ClaimedAlert]] = defaultdict(list)
    for alert in claimed:
        key = key_of(alert)
        if key is not None:
            groups[key].append(alert)
    young: set[int] = set()
    for members in groups.values():
        first = members[0]
        wait = mail.distributor_group_wait if first.recipient_role == "distributor" else mail.group_wait
        if wait <= 0 or working_hours_wait(deps, first, now) is not None:
            continue  # no wait, or a longer one: the whole group is deferred to working hours as one
        due = group_wait_until(min(created[a.id] for a in members), wait)
        if due <= now:
            continue
        ids = [a.id for a in members]
        claims.release(session, claims.ALERTS, ids, owner, next_attempt_at=due, last_error=GROUP_WAIT)
        young.update(ids)
    return [a for a in claimed if a.id not in young]


def prepare_message(deps: "DeliverDeps", alerts: list["ClaimedAlert"], now: datetime) -> "Envelope | AlertOutcome":
    """The message for `alerts` (one, or a group), or the outcome every one of them gets instead."""
    from shortage_watch.services.deliver import AlertOutcome, prepare, working_hours_wait

    first = alerts[0]
    if len(alerts) == 1:
        return prepare(deps, first, now)
    start = working_hours_wait(deps, first, now)
    if start is not None:
        return AlertOutcome(first.id, "deferred", defer_until=start)
    try:
        return build_group_envelope(deps, alerts, now)
    except (RenderError, AddressError) as exc:
        return AlertOutcome(first.id, "permanent", error=f"grouped message: {exc}")
    except Exception as exc:  # as in `prepare`: a group that cannot be built must not stop the batch (nor the daemon)
        log.exception("alerts %s: cannot build their grouped message", [a.id for a in alerts])
        return AlertOutcome(first.id, "permanent", error=f"grouped message: cannot build it: {type(exc).__name__}: {exc}")


def outcomes_for(alerts: list["ClaimedAlert"], outcome: "AlertOutcome") -> list["AlertOutcome"]:
    """The same outcome for every alert of one message."""
    return [replace(outcome, alert_id=a.id) for a in alerts]


def group_items(alerts: list["ClaimedAlert"], item_url: str | None) -> list[dict[str, Any]]:
    """One table row of facts per alert, from its stored context (missing facts are None)."""
    items = []
    for alert in alerts:
        c = alert.context
        product = c.get("product") or {}
        notice = c.get("notice") or {}
        case = c.get("case") or {}
        report = c.get("report") or {}
        number = c.get("case_number")
        late = c.get("overdue_working_days") or report.get("late_working_days")
        items.append({
            "case_number": number,
            "product": " ".join(p for p in (product.get("name"), product.get("specification")) if p) or None,
            "distributor": (c.get("distributor") or {}).get("name") or (c.get("distributor") or {}).get("code"),
            "region": (c.get("region") or {}).get("name") or case.get("city_name") or (c.get("region") or {}).get("code"),
            "due_at": (c.get("deadline") or {}).get("due_at"),
            "working_days_late": late,
            "notice_id": notice.get("notice_id") or None,
            "kind": notice.get("kind"),
            "manufacturer": c.get("manufacturer"),
            "hospitals": len(case.get("hospitals") or []) or None,
            # An explanation the distributor owes for a hospital's shortage (no notice), as the single templates tell it.
            "explanation": bool(case) and not c.get("notice"),
            "link": item_url.format(case_number=number) if item_url and number else None,
        })
    return items


_XLSX_HEADERS = {
    "zh-CN": ["案件编号", "药品", "配送企业", "地区", "通知编号", "生产企业", "报告期限", "逾期工作日", "链接"],
    "en": ["Case", "Drug", "Distributor", "Region", "Notice", "Manufacturer", "Deadline", "Working days late", "Link"],
}


def group_workbook(items: list[dict[str, Any]], language: str, tz: tzinfo) -> bytes:
    """Every item of a grouped message as one XLSX sheet (for the officer's spreadsheet)."""
    from shortage_watch.mail.workbook import table_workbook

    rows = [
        [i["case_number"], i["product"], i["distributor"], i["region"], i["notice_id"], i["manufacturer"],
         datetime.fromisoformat(i["due_at"]).astimezone(tz).strftime("%Y-%m-%d %H:%M") if i["due_at"] else None,
         i["working_days_late"], i["link"]]
        for i in items
    ]
    headers = _XLSX_HEADERS.get(language, _XLSX_HEADERS["zh-CN"])
    return table_workbook([("清单" if language == "zh-CN" else "Items", headers, rows)])


def build_group_envelope(deps: "DeliverDeps", alerts: list["ClaimedAlert"], now: datetime) -> Envelope:
    """One message listing every alert of a group; its Message-ID is stable for the same items."""
    first = alerts[0]
    if not first.recipient_email:
        raise AddressError("no recipient address")
    mail = deps.mail
    items = group_items(alerts, mail.item_url)
    attach = len(items) > mail.group_attach_over
    context = {
        "template": "grouped",
        "item_template": first.template,
        "case_number": None,
        "urgent": first.urgent,
        "written_at": now.isoformat(),
        "recipient": first.context.get("recipient") or {"role": first.recipient_role, "name": None},
        "items": items,
        "attached": attach,
        "with_links": any(i["link"] for i in items),
    }
    rendered = deps.renderer.render("grouped", context, first.language)
    attachments: tuple[Attachment, ...] = ()
    if attach:
        day = deps.calendar.local_date(now).isoformat()
        name = f"{'清单' if first.language == 'zh-CN' else 'items'}-{first.template}-{day}.xlsx"
        attachments = (Attachment(name, group_workbook(items, first.language, deps.calendar.tz)),)
    return build_message(
        rendered,
        sender=mail.from_,
        to=first.recipient_email,
        dedup_key=group_message_key([a.dedup_key for a in alerts]),
        thread_key=daily_thread_key(first.recipient_email, deps.calendar.local_date(now)),
        sent_at=utc_now(),
        installation=deps.installation_id,
        reply_to=mail.reply_to,
        tz=deps.timezone,
        attachments=attachments,
    )
