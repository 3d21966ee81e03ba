"""The directory from CSV/XLSX files named in settings (`[directory]`), reloaded when they change.

Columns take the English key or a Chinese name (see config/examples/README.md); several
emails in one cell are separated by `;`. A bad row becomes a problem line for
`shortage-watch directory check`, never an exception; a missing or unreadable file is a
`DirectoryError`.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from shortage_watch.domain.directory import (
    LEVEL_NAMES,
    ROLE_NAMES,
    Contact,
    Directory,
    Party,
    Region,
    split_emails,
)
from shortage_watch.intake.cells import FieldProblem, as_text
from shortage_watch.intake.columns import clean_header
from shortage_watch.intake.encodings import UnusableFile, decode_text
from shortage_watch.settings import DirectorySettings

log = logging.getLogger(__name__)

COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "regions": {
        "code": ("code", "行政区划代码", "区划代码", "代码"),
        "name": ("name", "名称", "区划名称", "地区名称"),
        "parent_code": ("parent_code", "上级代码", "上级区划代码"),
        "level": ("level", "级别", "层级"),
    },
    "contacts": {
        "region_code": ("region_code", "行政区划代码", "区划代码"),
        "role": ("role", "角色", "机构类型"),
        "email": ("email", "emails", "邮箱", "电子邮箱"),
        "name": ("name", "名称", "机构名称"),
        "delivery": ("delivery", "发送方式"),
        "language": ("language", "语言"),
    },
    "distributors": {
        "code": ("code", "配送企业编码", "企业编码", "编码"),
        "name": ("name", "配送企业名称", "企业名称", "名称"),
        "region_code": ("region_code", "行政区划代码", "区划代码"),
        "email": ("email", "emails", "邮箱", "电子邮箱"),
        "language": ("language", "语言"),
    },
    "hospitals": {
        "code": ("code", "医疗机构编码", "机构编码", "编码"),
        "name": ("name", "医疗机构名称", "机构名称", "名称"),
        "region_code": ("region_code", "行政区划代码", "区划代码"),
        "email": ("email", "emails", "邮箱", "电子邮箱"),
        "language": ("language", "语言"),
    },
}
REQUIRED_COLUMNS = {
    "regions": ("code", "name", "level"),
    "contacts": ("region_code", "role", "email"),
    "distributors": ("code", "name", "region_code"),
    "hospitals": ("code", "name", "region_code"),
}
DELIVERY_NAMES = {"single": "single", "逐条": "single", "digest": "digest", "每日汇总": "digest", "汇总": "digest"}
LANGUAGE_NAMES = {"zh-cn": "zh-CN", "zh": "zh-CN", "中文": "zh-CN", "en": "en", "english": "en", "英文": "en"}


class DirectoryError(Exception):
    """A directory file that is configured but cannot be read."""


def _table_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DirectoryError(f"file not found: {path}") from None
    except OSError as exc:
        raise DirectoryError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
            sheet = workbook.worksheets[0]
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]
            workbook.close()
        except Exception:  # openpyxl raises many types for a damaged workbook
            raise DirectoryError(f"{path}: not a readable XLSX workbook") from None
        yield from enumerate(rows, start=1)
        return
    import csv

    try:
        text, _ = decode_text(content)
    except UnusableFile as exc:
        raise DirectoryError(f"{path}: {exc.reason}") from None
    try:
        yield from enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
    except csv.Error as exc:
        raise DirectoryError(f"{path}: malformed CSV: {exc}") from None


def read_table(path: Path, table: str) -> tuple[list[tuple[int, dict[str, str | None]]], list[str]]:
    """Rows of one directory file as {column: text}, and problems about the file itself."""
    aliases = {clean_header(alias): key for key, names in COLUMNS[table].items() for alias in names}
    rows = _table_rows(path)
    header: list[str | None] | None = None
    for _number, cells in rows:
        mapped = [aliases.get(clean_header(c)) if c is not None else None for c in cells]
        if sum(m is not None for m in mapped) >= 2:
            header = mapped
            break
    if header is None:
        return [], [f"{path}: no header row (expected columns {', '.join(COLUMNS[table])})"]
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in header]
    if missing:
        return [], [f"{path}: missing column(s) {', '.join(missing)}"]
    out: list[tuple[int, dict[str, str | None]]] = []
    problems: list[str] = []
    for number, cells in rows:
        values: dict[str, str | None] = {}
        try:
            for key, cell in zip(header, cells):
                if key is not None:
                    values[key] = as_text(cell)
        except FieldProblem as exc:
            problems.append(f"{path} row {number}: {exc}")
            continue
        if any(values.values()):
            out.append((number, values))
    return out, problems


def load_directory(settings: DirectorySettings) -> Directory:
    """The directory from the configured files; unset files leave their part empty."""
    problems: list[str] = []
    regions: list[Region] = []
    contacts: list[Contact] = []
    distributors: list[Party] = []
    hospitals: list[Party] = []

    def rows_of(table: str) -> list[tuple[int, dict[str, str | None]]]:
        path = getattr(settings, table)
        if path is None:
            return []
        try:
            rows, file_problems = read_table(Path(path), table)
        except DirectoryError as exc:
            raise DirectoryError(f"directory.{table}: {exc}") from None
        problems.extend(file_problems)
        return [(n, v) for n, v in rows]

    def where(table: str, number: int) -> str:
        return f"{Path(getattr(settings, table)).name} row {number}"

    for number, row in rows_of("regions"):
        level = LEVEL_NAMES.get((row.get("level") or "").lower())
        if not row.get("code") or not row.get("name"):
            problems.append(f"{where('regions', number)}: code and name are required")
        elif level is None:
            problems.append(f"{where('regions', number)}: level {row.get('level')!r} is not province, city or county")
        else:
            regions.append(Region(row["code"], row["name"], row.get("parent_code"), level))  # type: ignore[arg-type]
    for number, row in rows_of("contacts"):
        role = ROLE_NAMES.get((row.get("role") or "").lower())
        delivery = DELIVERY_NAMES.get((row.get("delivery") or "single").lower())
        language = LANGUAGE_NAMES.get((row.get("language") or "").lower()) if row.get("language") else None
        if not row.get("region_code"):
            problems.append(f"{where('contacts', number)}: region_code is required")
        elif role is None:
            problems.append(f"{where('contacts', number)}: role {row.get('role')!r} is not insurance or health")
        elif delivery is None:
            problems.append(f"{where('contacts', number)}: delivery {row.get('delivery')!r} is not single or digest")
        else:
            if row.get("language") and language is None:
                problems.append(f"{where('contacts', number)}: language {row.get('language')!r} is not zh-CN or en")
            contacts.append(Contact(row["region_code"], role, split_emails(row.get("email")),  # type: ignore[arg-type]
                                    row.get("name"), delivery, language))  # type: ignore[arg-type]
    for table, target in (("distributors", distributors), ("hospitals", hospitals)):
        for number, row in rows_of(table):
            if not row.get("code") or not row.get("name") or not row.get("region_code"):
                problems.append(f"{where(table, number)}: code, name and region_code are required")
                continue
            language = LANGUAGE_NAMES.get((row.get("language") or "").lower()) if row.get("language") else None
            target.append(Party(row["code"], row["name"], row["region_code"],  # type: ignore[arg-type]
                                split_emails(row.get("email")), language))
    return Directory.build(regions, contacts, distributors, hospitals, problems)


class DirectoryFiles:
    """The current directory, reloaded on access when a configured file's mtime changes.

    A reload that fails keeps the last good directory (and logs why); the first load
    raises DirectoryError.
    """

    def __init__(self, settings: DirectorySettings) -> None:
        self._settings = settings
        self._paths = [Path(p) for p in (settings.regions, settings.contacts, settings.distributors,
                                         settings.hospitals) if p is not None]
        self._stamp: tuple[Any, ...] | None = None
        self._directory: Directory | None = None
        self._lock = threading.Lock()

    def _mtimes(self) -> tuple[Any, ...]:
        stamp = []
        for path in self._paths:
            try:
                info = os.stat(path)
                stamp.append((info.st_mtime_ns, info.st_size))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def current(self) -> Directory:
        if not self._paths:
            return self._directory or self._empty()
        stamp = self._mtimes()
        with self._lock:
            if self._directory is not None and stamp == self._stamp:
                return self._directory
            try:
                self._directory = load_directory(self._settings)
            except DirectoryError:
                if self._directory is None:
                    raise
                log.exception("directory reload failed; keeping the previous directory")
            self._stamp = stamp
            return self._directory

    def _empty(self) -> Directory:
        self._directory = Directory()
        return self._directory
