"""Routing: a recipient spec ('insurance@county', 'distributor') and a region → who gets the alert.

A role at a region level resolves by walking the directory's explicit parents: first the
region at that level (or the nearest higher one: a Chongqing district's "city" is the
municipality 500000), then, when that region has no contact for the role, its parents
in turn, then the configured operations address. No address at all is *undeliverable*:
the alert is still written, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from shortage_watch.domain.policy import parse_recipient


class DirectoryView(Protocol):
    """The part of `domain.directory.Directory` routing reads."""

    def region(self, code: str) -> Any: ...
    def ancestors(self, code: str) -> Sequence[Any]: ...
    def at_level(self, code: str, level: str) -> Any: ...
    def contact(self, region_code: str, role: str) -> Any: ...
    def distributor(self, code: str) -> Any: ...


@dataclass(frozen=True)
class Route:
    """One resolved recipient; `email` None means undeliverable."""

    role: str  # distributor | insurance | health | operations
    region_code: str | None  # the region whose bureau this is (None for a distributor)
    region_name: str | None
    name: str | None  # bureau or company name for the salutation
    email: str | None
    language: str | None = None
    delivery: str = "single"  # single | digest
    fallback: str | None = None  # None, "parent:<code>", "operations"

    @property
    def key(self) -> str:
        """The recipient part of a dedup key: the address, or role@region when there is none."""
        return self.email or f"{self.role}@{self.region_code or '-'}"


def _operations(role: str, region_code: str | None, region_name: str | None, operations_email: str | None) -> list[Route]:
    if operations_email:
        return [Route(role, region_code, region_name, None, operations_email, None, "single", "operations")]
    return [Route(role, region_code, region_name, None, None, None, "single", "undeliverable")]


def route(
    directory: DirectoryView,
    spec: str,
    *,
    region_code: str | None,
    distributor_code: str | None = None,
    operations_email: str | None = None,
) -> list[Route]:
    """Every recipient for `spec` about a matter in `region_code`; at least one Route (maybe undeliverable)."""
    role, level = parse_recipient(spec)
    region = directory.region(region_code) if region_code else None
    region_name = getattr(region, "name", None)
    if role == "operations":
        return _operations("operations", region_code, region_name, operations_email)
    if role == "distributor":
        party = directory.distributor(distributor_code) if distributor_code else None
        emails = tuple(getattr(party, "emails", ()) or ())
        if emails:
            language = getattr(party, "language", None)
            return [Route("distributor", None, None, party.name, e, language) for e in emails]
        return [
            Route(r.role, r.region_code, r.region_name, getattr(party, "name", None), r.email, None, r.delivery, r.fallback)
            for r in _operations("distributor", None, None, operations_email)
        ]
    target = directory.at_level(region_code, level) if region_code and level else None
    if target is None:
        return _operations(role, region_code, region_name, operations_email)
    for place in directory.ancestors(target.code):
        contact = directory.contact(place.code, role)
        emails = tuple(getattr(contact, "emails", ()) or ()) if contact is not None else ()
        if emails:
            fallback = None if place.code == target.code else f"parent:{place.code}"
            return [
                Route(role, place.code, place.name, contact.name, e, contact.language, contact.delivery, fallback)
                for e in emails
            ]
    return _operations(role, target.code, target.name, operations_email)


def same_bureau_as_city(directory: DirectoryView, spec: str, region_code: str | None, earlier_specs: Sequence[str]) -> bool:
    """True when `spec` names the province but, for this region, the province is the city (a municipality
    such as 重庆: its districts sit directly under it) and an earlier level already names that city's bureau.
    Escalating "to the province" would then tell the same bureau about itself, in the third person."""
    role, level = parse_recipient(spec)
    if level != "province" or f"{role}@city" not in earlier_specs or not region_code:
        return False
    city = directory.at_level(region_code, "city")
    province = directory.at_level(region_code, "province")
    return city is not None and province is not None and city.code == province.code
