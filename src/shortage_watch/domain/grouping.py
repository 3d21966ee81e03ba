"""Grouping: alerts due for one recipient with the same template, urgency and language go as one
message that lists every item. Each item keeps its own outbox row (dedup key, audit, sent state);
only the message is shared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

# Mail that is already one message about many things: never grouped.
UNGROUPED_TEMPLATES = frozenset({"digest", "monthly_summary", "operations_digest", "test"})


@dataclass(frozen=True)
class GroupKey:
    recipient: str
    template: str
    urgent: bool
    language: str


def group_key(recipient: str | None, template: str, urgent: bool, language: str) -> GroupKey | None:
    """The group an alert joins, or None when it goes alone (no address, or a digest-like mail)."""
    if not recipient or template in UNGROUPED_TEMPLATES:
        return None
    return GroupKey(recipient.strip().lower(), template, urgent, language)


def plan_messages(alerts: Iterable[T], key_of: Callable[[T], GroupKey | None], max_items: int) -> list[list[T]]:
    """The messages to send, in the order each group's first alert came; at most `max_items` per message."""
    groups: dict[GroupKey | int, list[T]] = {}
    for position, alert in enumerate(alerts):
        key = key_of(alert)
        groups.setdefault(position if key is None else key, []).append(alert)
    messages: list[list[T]] = []
    for members in groups.values():
        messages.extend(members[i:i + max_items] for i in range(0, len(members), max_items))
    return messages


def group_wait_until(oldest_created_at: datetime, wait_seconds: int) -> datetime:
    """When a group whose first item was written at `oldest_created_at` may go."""
    return oldest_created_at + timedelta(seconds=wait_seconds)


def group_message_key(dedup_keys: Sequence[str]) -> str:
    """The stable key of a grouped message (its Message-ID derives from it): the same items, the same id."""
    digest = hashlib.sha256("\n".join(sorted(dedup_keys)).encode("utf-8")).hexdigest()[:32]
    return f"group:{digest}"


def daily_thread_key(recipient: str, day: date) -> str:
    """The recipient's thread for one day: grouped messages of that day thread together."""
    return f"day:{day.isoformat()}:{recipient.strip().lower()}"
