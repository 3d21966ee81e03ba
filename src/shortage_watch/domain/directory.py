"""Who is where: regions with explicit parents, bureau contacts, distributors and hospitals.

Pure: built from rows by `intake/directory_files.py`. Parents are explicit, never derived
from the digits of a code, so Chongqing's districts (directly under the municipality)
and special zones such as 两江新区 (a non-standard code) resolve like any other region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from shortage_watch.domain.records import RowError

Level = Literal["province", "city", "county"]
LEVELS: tuple[str, ...] = ("county", "city", "province")
_RANK = {"county": 1, "city": 2, "province": 3}
LEVEL_NAMES = {
    "province": "province", "省": "province", "省级": "province", "直辖市": "province", "自治区": "province",
    "city": "city", "市": "city", "地市": "city", "地级市": "city", "市级": "city", "州": "city",
    "county": "county", "区县": "county", "县": "county", "区": "county", "县级": "county", "县区": "county",
    "district": "county",
}
ROLE_NAMES = {
    "insurance": "insurance", "医保": "insurance", "医保局": "insurance", "医疗保障局": "insurance",
    "health": "health", "卫健": "health", "卫健委": "health", "卫生健康委员会": "health", "卫生健康委": "health",
}
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def is_valid_email(address: str) -> bool:
    """A plain addr-spec (no display name, no header-breaking characters)."""
    return len(address) <= 254 and _EMAIL.match(address) is not None


def split_emails(cell: str | None) -> tuple[str, ...]:
    """'a@x.cn; b@y.cn' (also full-width ；, commas, 、 or line breaks) -> ('a@x.cn', 'b@y.cn')."""
    if not cell:
        return ()
    parts = re.split(r"[;；,，、\s]+", cell)
    return tuple(p for p in (part.strip() for part in parts) if p)


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    parent_code: str | None
    level: Level


@dataclass(frozen=True)
class Contact:
    """A bureau's mailbox for one region and role (insurance bureau 医保局 or health commission 卫健委)."""

    region_code: str
    role: Literal["insurance", "health"]
    emails: tuple[str, ...]
    name: str | None
    delivery: Literal["single", "digest"] = "single"
    language: Literal["zh-CN", "en"] | None = None


@dataclass(frozen=True)
class Party:
    """A distributor (配送企业) or hospital (医疗机构) with its region and mailboxes."""

    code: str
    name: str
    region_code: str
    emails: tuple[str, ...]
    language: str | None = None


@dataclass
class Directory:
    """The loaded directory; lookups are dictionary reads. `load_problems` come from the files.

    `Directory()` is the empty directory: no regions, contacts or parties, so everything routes to operations.
    """

    regions: dict[str, Region] = field(default_factory=dict)
    contacts: dict[tuple[str, str], Contact] = field(default_factory=dict)
    distributors: dict[str, Party] = field(default_factory=dict)
    hospitals: dict[str, Party] = field(default_factory=dict)
    load_problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Lists are accepted too (Directory(regions=[...], ...)), indexed as `build` does.
        if not all(isinstance(part, dict) for part in (self.regions, self.contacts, self.distributors,
                                                         self.hospitals)):
            built = Directory.build(
                self.regions.values() if isinstance(self.regions, dict) else self.regions,
                self.contacts.values() if isinstance(self.contacts, dict) else self.contacts,
                self.distributors.values() if isinstance(self.distributors, dict) else self.distributors,
                self.hospitals.values() if isinstance(self.hospitals, dict) else self.hospitals,
                self.load_problems,
            )
            self.regions, self.contacts = built.regions, built.contacts
            self.distributors, self.hospitals, self.load_problems = built.distributors, built.hospitals, built.load_problems

    @classmethod
    def build(
        cls,
        regions: Iterable[Region] = (),
        contacts: Iterable[Contact] = (),
        distributors: Iterable[Party] = (),
        hospitals: Iterable[Party] = (),
        load_problems: Iterable[str] = (),
    ) -> "Directory":
        """A directory from lists; a later duplicate code is reported and ignored."""
        problems = list(load_problems)
        region_map: dict[str, Region] = {}
        for region in regions:
            if region.code in region_map:
                problems.append(f"region {region.code}: listed twice (second ignored)")
                continue
            region_map[region.code] = region
        contact_map: dict[tuple[str, str], Contact] = {}
        for contact in contacts:
            key = (contact.region_code, contact.role)
            if key in contact_map:
                # Two rows for one bureau: their addresses are merged.
                old = contact_map[key]
                merged = old.emails + tuple(e for e in contact.emails if e not in old.emails)
                contact_map[key] = Contact(old.region_code, old.role, merged, old.name or contact.name,
                                           old.delivery, old.language)
                continue
            contact_map[key] = contact
        parties: list[dict[str, Party]] = [{}, {}]
        for target, items, label in ((parties[0], distributors, "distributor"), (parties[1], hospitals, "hospital")):
            for party in items:
                if party.code in target:
                    problems.append(f"{label} {party.code}: listed twice (second ignored)")
                    continue
                target[party.code] = party
        return cls(region_map, contact_map, parties[0], parties[1], problems)

    def region(self, code: str | None) -> Region | None:
        return self.regions.get(code) if code else None

    def ancestors(self, code: str | None) -> list[Region]:
        """The region itself first, then its explicit parents up to the top; stops at a cycle."""
        chain: list[Region] = []
        seen: set[str] = set()
        current = self.region(code)
        while current is not None and current.code not in seen:
            chain.append(current)
            seen.add(current.code)
            current = self.region(current.parent_code)
        return chain

    def region_and_below(self, code: str | None) -> frozenset[str]:
        """The region's code and every code whose explicit parent chain reaches it (cycle-safe).

        Empty for a code the directory does not know: an officer of an unknown region sees nothing.
        """
        if self.region(code) is None:
            return frozenset()
        children: dict[str, list[str]] = {}
        for region in self.regions.values():
            if region.parent_code:
                children.setdefault(region.parent_code, []).append(region.code)
        found = {code}
        pending = [code]
        while pending:
            for child in children.get(pending.pop(), ()):
                if child not in found:
                    found.add(child)
                    pending.append(child)
        return frozenset(c for c in found if c)

    def at_level(self, code: str | None, level: str) -> Region | None:
        """The region itself or its nearest ancestor at `level` or higher.

        A Chongqing district sits directly under the municipality (level province), so
        its "city" is the municipality.
        """
        wanted = _RANK[level]
        for region in self.ancestors(code):
            if _RANK[region.level] >= wanted:
                return region
        return None

    def city_of(self, code: str | None) -> Region | None:
        return self.at_level(code, "city")

    def contact(self, region_code: str | None, role: str) -> Contact | None:
        """The bureau of exactly this region and role (no fallback: callers walk `ancestors`)."""
        return self.contacts.get((region_code, role)) if region_code else None

    def contacts_all(self) -> list[Contact]:
        return list(self.contacts.values())

    def distributor(self, code: str | None) -> Party | None:
        return self.distributors.get(code) if code else None

    def hospital(self, code: str | None) -> Party | None:
        return self.hospitals.get(code) if code else None

    def is_within(self, code: str | None, ancestor_code: str | None) -> bool:
        """True when `ancestor_code` is the region itself or one of its parents."""
        return ancestor_code is not None and any(r.code == ancestor_code for r in self.ancestors(code))

    def is_empty(self) -> bool:
        return not (self.regions or self.contacts or self.distributors or self.hospitals)

    def problems(self) -> list[str]:
        """Everything an operator should fix: unknown parents, cycles, levels, regions, addresses."""
        problems = list(self.load_problems)
        for region in self.regions.values():
            if region.parent_code is None:
                continue
            if region.parent_code == region.code:
                problems.append(f"region {region.code} {region.name}: is its own parent")
                continue
            parent = self.regions.get(region.parent_code)
            if parent is None:
                problems.append(f"region {region.code} {region.name}: unknown parent {region.parent_code}")
            elif _RANK[parent.level] < _RANK[region.level]:
                problems.append(
                    f"region {region.code} {region.name}: parent {parent.code} is a {parent.level}, "
                    f"below this {region.level}"
                )
        problems.extend(self._cycles())
        for contact in self.contacts.values():
            where = f"contact {contact.role}@{contact.region_code}"
            if contact.region_code not in self.regions:
                problems.append(f"{where}: unknown region {contact.region_code}")
            if not contact.emails:
                problems.append(f"{where}: no email address")
            problems.extend(f"{where}: invalid email {e!r}" for e in contact.emails if not is_valid_email(e))
        for label, parties in (("distributor", self.distributors), ("hospital", self.hospitals)):
            for party in parties.values():
                where = f"{label} {party.code} {party.name}"
                if party.region_code not in self.regions:
                    problems.append(f"{where}: unknown region {party.region_code}")
                problems.extend(f"{where}: invalid email {e!r}" for e in party.emails if not is_valid_email(e))
        return problems

    def coverage_warnings(self, operations_email: str | None) -> list[str]:
        """Where mail would not reach whom it is about: distributors without an address, regions
        without their own insurance or health contact (and where their mail goes instead), and
        a missing operations address. Not errors: routing falls back, but someone should know."""
        fallback_zh = "运维邮箱 directory.operations_email" if operations_email else "无人（保存为无法投递）"
        fallback_en = "directory.operations_email" if operations_email else "nobody (kept as undeliverable)"
        warnings = []
        if not operations_email:
            warnings.append(
                "未设置 directory.operations_email：找不到收件人的提醒只能保存为无法投递，目录未登记企业的运维日报也无人接收 / "
                "directory.operations_email is not set: alerts without a recipient are only kept as undeliverable "
                "and nobody gets the daily list of parties missing from the directory")
        for party in self.distributors.values():
            if not party.emails:
                warnings.append(
                    f"配送企业 {party.code} {party.name} 没有邮箱：回执和提醒将发往{fallback_zh} / "
                    f"distributor {party.code} {party.name} has no email address: its receipts and reminders go to {fallback_en}")
        for region in self.regions.values():
            for role, role_zh in (("insurance", "医疗保障局"), ("health", "卫生健康部门")):
                if self.contact(region.code, role) is not None:
                    continue
                above = next((self.contact(r.code, role) for r in self.ancestors(region.code)[1:] if self.contact(r.code, role)), None)
                goes_zh = f"{above.name or above.region_code}（{above.region_code}）" if above else fallback_zh
                goes_en = f"{above.name or role} ({above.region_code})" if above else fallback_en
                warnings.append(
                    f"区划 {region.code} {region.name} 没有{role_zh}联系人：其邮件发往{goes_zh} / "
                    f"region {region.code} {region.name} has no {role} contact: its mail goes to {goes_en}")
        return warnings

    def _cycles(self) -> list[str]:
        found: list[str] = []
        reported: set[str] = set()
        for start in self.regions:
            seen: list[str] = []
            current: str | None = start
            while current is not None and current in self.regions and current not in seen:
                seen.append(current)
                current = self.regions[current].parent_code
            if current is not None and current in seen and current != self.regions[current].parent_code:
                loop = seen[seen.index(current):]
                key = min(loop)
                if key not in reported:
                    reported.add(key)
                    found.append("regions form a cycle: " + " -> ".join(loop + [current]))
        return found


_PARTY_FIELDS = (
    ("distributor_code", "distributor", "配送企业"),
    ("hospital_code", "hospital", "医疗机构"),
)


def unknown_party_warnings(record: Any, row: int | None, directory: Directory) -> list[RowError]:
    """The distributor or hospital a record names that the directory does not list: the record
    is kept, but nobody may be told about it (no address, no region), so it is reported.
    An empty directory (none configured) warns of nothing: `directory check` says so instead."""
    if directory.is_empty():
        return []
    warnings = []
    for field_name, what, what_zh in _PARTY_FIELDS:
        code = getattr(record, field_name, None)
        if code is None:
            continue
        known = directory.distributor(code) if what == "distributor" else directory.hospital(code)
        if known is None:
            warnings.append(RowError(
                row, field_name,
                f"{what_zh} {code} 不在目录中，记录已接收，但无法通知该{what_zh}或确定其所在区划，请核对编码或补充目录 / "
                f"{what} {code} is not in the directory: the record is kept, but it cannot be mailed or placed "
                f"in a region; check the code or add it to the directory",
            ))
    return warnings
