"""Escalation policy: ladders of levels, parsed from TOML text as plain data (settings.load_policy reads the file), and when each level fires.

A ladder is an ordered list of levels. A level fires at an offset in working days from
the due date (negative = before it), or at opening (`offset = "open"`). Each level names
its recipients as roles at region levels (`distributor`, `insurance@county`,
`health@city`, …), a template, whether it is urgent and whether it repeats.

Firing instants (Asia/Shanghai, via the working-day calendar):
- "open": the instant the obligation or case is opened;
- k = 0: the first second after the due instant (an obligation is overdue strictly after due_at);
- k > 0: 00:00 of the k-th working day after the due date;
- k < 0: 00:00 of the |k|-th working day before the due date.
A level with `repeat_every = r` fires again every r working days (00:00) until the next
level fires; on the last level it repeats for as long as the matter stays open.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator, Protocol

ROLES = ("distributor", "insurance", "health", "operations")
REGION_LEVELS = ("county", "city", "province")
LADDER_KINDS = ("report", "report_priority", "explanation", "explanation_priority", "regional")
EVENT_KINDS = ("late_report", "false_shortage", "deadline_changed")
# Events a policy file written before they existed may leave out: the rule each then follows.
# deadline_changed: the receipt of an estimated deadline promises the distributor word if the
# holiday arrangement moves it.
DEFAULT_EVENTS = {"deadline_changed": ("distributor",)}
PRIORITY_CLASSES = frozenset({"negotiated", "winning_bid", "shortage_list"})
OPEN = "open"
# A level at offset 0 fires just after the due instant: overdue means strictly after due_at.
OVERDUE_GRACE = timedelta(seconds=1)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the key and why."""


class WorkingDays(Protocol):
    def nth_working_day_after(self, day: date, n: int) -> tuple[date, object]: ...
    def nth_working_day_before(self, day: date, n: int) -> date: ...
    def start_of_day(self, day: date) -> datetime: ...


@dataclass(frozen=True)
class Level:
    """One rung of a ladder."""

    name: str
    offset: int | None  # None: fires at opening
    recipients: tuple[str, ...]
    template: str
    urgent: bool = False
    repeat_every: int = 0  # working days; 0 = fires once

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "offset": OPEN if self.offset is None else self.offset,
            "recipients": list(self.recipients),
            "template": self.template,
            "urgent": self.urgent,
            "repeat_every": self.repeat_every,
        }


@dataclass(frozen=True)
class Ladder:
    kind: str
    levels: tuple[Level, ...]

    def as_json(self) -> dict[str, Any]:
        """The snapshot stored with each obligation or case when it opens."""
        return {"kind": self.kind, "levels": [level.as_json() for level in self.levels]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Ladder":
        return cls(data["kind"], tuple(_level(f"snapshot.{data['kind']}", i, raw) for i, raw in enumerate(data["levels"])))


def stored_ladders() -> Callable[[dict[str, Any]], Ladder]:
    """`Ladder.from_json`, each distinct snapshot read once: the obligations of a set share a few."""
    known: dict[str, Ladder] = {}

    def ladder_of(policy: dict[str, Any]) -> Ladder:
        key = repr(policy)  # JSON values: the same text is the same ladder
        if key not in known:
            known[key] = Ladder.from_json(policy)
        return known[key]

    return ladder_of


@dataclass(frozen=True)
class EventRule:
    """A one-off alert on an event (a late report, a possible false shortage)."""

    name: str
    recipients: tuple[str, ...]
    template: str
    urgent: bool = False


@dataclass(frozen=True)
class Policy:
    ladders: dict[str, Ladder]
    events: dict[str, EventRule] = field(default_factory=dict)
    source: str = "built-in"

    def ladder_for(self, kind: str, priority: bool = False) -> Ladder:
        """The ladder for an obligation kind (`report`, `explanation`) or `regional`."""
        if priority and f"{kind}_priority" in self.ladders:
            return self.ladders[f"{kind}_priority"]
        return self.ladders[kind]


def is_priority(priority_class: str | None) -> bool:
    """Negotiated, winning-bid and listed shortage drugs climb the faster ladder (domain rule 8)."""
    return (priority_class or "").strip() in PRIORITY_CLASSES


def parse_recipient(spec: str) -> tuple[str, str | None]:
    """'insurance@county' -> ('insurance', 'county'); 'distributor' -> ('distributor', None)."""
    role, _, level = spec.partition("@")
    return role, (level or None)


def _check_recipient(where: str, spec: Any) -> str:
    if not isinstance(spec, str):
        raise PolicyError(f"{where}: recipient {spec!r} must be a string like 'insurance@county'")
    role, level = parse_recipient(spec)
    if role not in ROLES:
        raise PolicyError(f"{where}: recipient {spec!r}: role must be one of {', '.join(ROLES)}")
    if role in ("insurance", "health") and level not in REGION_LEVELS:
        raise PolicyError(f"{where}: recipient {spec!r}: say the region level, e.g. {role}@county")
    if role in ("distributor", "operations") and level is not None:
        raise PolicyError(f"{where}: recipient {spec!r}: '{role}' takes no region level")
    return spec


def _level(where: str, index: int, raw: Any) -> Level:
    here = f"{where}.levels[{index}]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{here}: must be a table")
    unknown = set(raw) - {"name", "offset", "recipients", "template", "urgent", "repeat_every"}
    if unknown:
        raise PolicyError(f"{here}: unknown key {sorted(unknown)[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or len(name) > 48 or ":" in name:
        raise PolicyError(f"{here}.name: a short text without ':' is required")
    offset = raw.get("offset")
    if offset == OPEN:
        offset = None
    elif not isinstance(offset, int) or isinstance(offset, bool) or not -30 <= offset <= 250:
        raise PolicyError(f"{here}.offset: 'open' or whole working days between -30 and 250, got {offset!r}")
    recipients = raw.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise PolicyError(f"{here}.recipients: a non-empty list is required")
    template = raw.get("template")
    if not isinstance(template, str) or not template:
        raise PolicyError(f"{here}.template: a template name is required")
    urgent = raw.get("urgent", False)
    if not isinstance(urgent, bool):
        raise PolicyError(f"{here}.urgent: true or false")
    repeat = raw.get("repeat_every", 0)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= 250:
        raise PolicyError(f"{here}.repeat_every: whole working days (0 = no repeat), got {repeat!r}")
    if repeat and offset is None:
        raise PolicyError(f"{here}.repeat_every: a level at opening cannot repeat")
    return Level(name, offset, tuple(_check_recipient(here, r) for r in recipients), template, urgent, repeat)


def _ladder(where: str, kind: str, raw: Any) -> Ladder:
    if not isinstance(raw, dict) or not isinstance(raw.get("levels"), list) or not raw["levels"]:
        raise PolicyError(f"{where}: needs a non-empty [[{where}.levels]] list")
    levels = tuple(_level(where, i, item) for i, item in enumerate(raw["levels"]))
    names = [level.name for level in levels]
    for name in names:
        if names.count(name) > 1:
            raise PolicyError(f"{where}: level name {name!r} is used twice")
    offsets = [-10**6 if level.offset is None else level.offset for level in levels]
    if offsets != sorted(offsets):
        raise PolicyError(f"{where}: levels must be in firing order ('open' first, then increasing offsets)")
    return Ladder(kind, levels)


def policy_from_data(data: dict[str, Any], source: str = "policy") -> Policy:
    """Validate plain data (as read from TOML); raises PolicyError naming the bad key."""
    ladders_raw = data.get("ladders")
    if not isinstance(ladders_raw, dict):
        raise PolicyError(f"{source}: a [ladders] table is required")
    unknown = set(ladders_raw) - set(LADDER_KINDS)
    if unknown:
        raise PolicyError(f"{source}: ladders.{sorted(unknown)[0]}: unknown ladder (known: {', '.join(LADDER_KINDS)})")
    ladders = {kind: _ladder(f"{source}: ladders.{kind}", kind, raw) for kind, raw in ladders_raw.items()}
    for required in ("report", "explanation", "regional"):
        if required not in ladders:
            raise PolicyError(f"{source}: ladders.{required} is required")
    events: dict[str, EventRule] = {}
    events_raw = data.get("events", {})
    if not isinstance(events_raw, dict):
        raise PolicyError(f"{source}: [events] must be a table")
    for name, raw in events_raw.items():
        where = f"{source}: events.{name}"
        if name not in EVENT_KINDS:
            raise PolicyError(f"{where}: unknown event (known: {', '.join(EVENT_KINDS)})")
        if not isinstance(raw, dict) or not isinstance(raw.get("recipients"), list) or not raw["recipients"]:
            raise PolicyError(f"{where}.recipients: a non-empty list is required")
        template = raw.get("template", name)
        urgent = raw.get("urgent", False)
        if not isinstance(template, str) or not isinstance(urgent, bool):
            raise PolicyError(f"{where}: template must be text and urgent true or false")
        events[name] = EventRule(name, tuple(_check_recipient(where, r) for r in raw["recipients"]), template, urgent)
    for name, recipients in DEFAULT_EVENTS.items():
        events.setdefault(name, EventRule(name, recipients, name))
    for name in EVENT_KINDS:
        if name not in events:
            raise PolicyError(f"{source}: events.{name} is required")
    return Policy(ladders, events, source)


def policy_from_toml(text: str, source: str = "policy") -> Policy:
    """Parse and validate a policy written in TOML (the file's text; settings.load_policy reads it)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    return policy_from_data(data, source)


@dataclass(frozen=True)
class Firing:
    """One firing of a level: step number in the ladder's schedule, the level, its instant."""

    step: int
    level: Level
    repeat: int  # 0 for the first firing, 1.. for repeats
    at: datetime

    @property
    def name(self) -> str:
        """The name in dedup keys: the level's, with '#n' for the n-th repeat."""
        return self.level.name if self.repeat == 0 else f"{self.level.name}#{self.repeat + 1}"


def level_instant(calendar: WorkingDays, level: Level, due_on: date, due_at: datetime, opened_at: datetime) -> datetime:
    """When `level` fires for a matter due on `due_on` (due instant `due_at`) opened at `opened_at`."""
    if level.offset is None:
        return opened_at
    if level.offset == 0:
        return due_at + OVERDUE_GRACE
    if level.offset > 0:
        day, _ = calendar.nth_working_day_after(due_on, level.offset)
    else:
        day = calendar.nth_working_day_before(due_on, -level.offset)
    return calendar.start_of_day(day)


def schedule(
    calendar: WorkingDays, ladder: Ladder, due_on: date, due_at: datetime, opened_at: datetime
) -> Iterator[Firing]:
    """Every firing of `ladder`, in order (infinite when the last level repeats)."""
    instants = [level_instant(calendar, level, due_on, due_at, opened_at) for level in ladder.levels]
    step = 0
    for index, level in enumerate(ladder.levels):
        at = instants[index]
        following = instants[index + 1] if index + 1 < len(ladder.levels) else None
        yield Firing(step, level, 0, at)
        step += 1
        if not level.repeat_every:
            continue
        repeat, day = 0, calendar_day(calendar, at)
        while True:
            day, _ = calendar.nth_working_day_after(day, level.repeat_every)
            at_repeat = calendar.start_of_day(day)
            if following is not None and at_repeat >= following:
                break
            repeat += 1
            yield Firing(step, level, repeat, at_repeat)
            step += 1


def calendar_day(calendar: WorkingDays, instant: datetime) -> date:
    """The local date of `instant` in the calendar's zone (start_of_day tells the zone)."""
    zone = calendar.start_of_day(date(2000, 1, 1)).tzinfo
    return instant.astimezone(zone).date()
