"""Inhibition: alerts that would only repeat a fact someone higher up already has, or chase a
matter that is no longer open, are recorded and not sent.

- A shortage case escalated to the province inhibits the county and city bureau alerts about
  that case (the case's own levels, and the explanation it asked of a distributor): the
  province already has the fact. Distributor mail is never inhibited: it is the legal reminder.
- An alert that chases an obligation (reminder, written reminder, overdue, interview,
  province) is not sent once the obligation is fulfilled or cancelled while it waited.
"""

from __future__ import annotations

from shortage_watch.domain.policy import Ladder, parse_recipient

BUREAU_ROLES = ("insurance", "health")
INHIBITED_LEVELS = ("county", "city")


def chases(ladder: Ladder | None, level_name: str) -> bool:
    """True when `level_name` (a firing name, '#n' for repeats) is a ladder level after opening."""
    if ladder is None:
        return False
    base = level_name.split("#", 1)[0]
    return any(level.name == base and level.offset is not None for level in ladder.levels)


def inhibited_by_province(spec_or_role: str, region_level: str | None) -> bool:
    """A bureau recipient at county or city level: inhibited once the case went to the province.

    `spec_or_role` is a recipient spec ('insurance@county') or a role ('insurance') whose
    region level is given separately.
    """
    role, level = parse_recipient(spec_or_role)
    level = level or region_level
    return role in BUREAU_ROLES and level in INHIBITED_LEVELS
