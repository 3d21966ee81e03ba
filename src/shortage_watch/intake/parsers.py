"""Bytes -> raw rows: CSV (any of our encodings), XLSX (openpyxl read-only streaming) and JSON.

A parser finds the header row (skipping title rows above it), maps English or Chinese
headers to our keys, and yields one `RawRow` per non-empty data row with the row number
a spreadsheet shows (JSON: the record's index in its list, from 0). It decides the record
kind of each row when the source says `auto`. A file that cannot be used at all raises
`UnusableFile` with a reason in Chinese and English.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Iterable, Iterator, Mapping

from shortage_watch.domain.records import (
    HEADER_INDEX,
    KNOWN_HEADERS,
    RECORD_KINDS,
    RowError,
    clean_header,
    infer_kind,
    map_headers,
    normalize_kind_name,
)
from shortage_watch.intake.encodings import UnusableFile, decode_text

HEADER_SCAN_ROWS = 30
MAX_XLSX_UNCOMPRESSED = 512 * 1024 * 1024  # a zip bomb stops here, not in memory
MAX_JSON_DEPTH = 64
_CSV_FIELD_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class RawRow:
    """One data row: where it was, which kind it is, and its values under our keys."""

    row: int
    kind: str
    values: dict[str, Any]


@dataclass
class ParsedFile:
    """What a parser found: the rows to validate, rows it could not place, and feed paging."""

    format: str
    rows: Any = field(default_factory=list)  # list[RawRow], or an iterator of them when parsed lazily
    errors: list[RowError] = field(default_factory=list)
    next_cursor: str | None = None
    has_more: bool = False


def detect_format(name: str, content: bytes) -> str:
    """csv, xlsx or json: by the file name, else by the first bytes."""
    suffix = PurePath(name).suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix == ".json":
        return "json"
    if content.startswith(b"PK\x03\x04"):
        return "xlsx"
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return "json"
    return "csv"


def parse_payload(
    content: bytes, *, name: str, kind: str, field_map: Mapping[str, str] | None = None, format: str | None = None,
    lazy: bool = False,
) -> ParsedFile:
    """Parse `content` as `format` (detected from `name` when not given); `kind` may be 'auto'.

    With `lazy`, table rows are produced while iterating `rows` (a large file is never
    held as rows in memory), `errors` is complete only once `rows` is exhausted, and an
    XLSX damaged past its header raises UnusableFile during that iteration.
    """
    fmt = format or detect_format(name, content)
    renames = {clean_header(k): clean_header(v) for k, v in (field_map or {}).items()}
    if not content.strip():
        raise UnusableFile("文件为空 / the file is empty")
    if fmt == "json":
        return _parse_json(content, kind, renames)
    rows = _xlsx_rows(content) if fmt == "xlsx" else _csv_rows(content)
    parsed = _parse_table(fmt, rows, kind, renames)
    if not lazy:
        parsed.rows = list(parsed.rows)
    return parsed


# ---- tables ------------------------------------------------------------------------------------


def _csv_rows(content: bytes) -> Iterator[tuple[int, list[Any]]]:
    text, _encoding = decode_text(content)
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max((",", "\t", ";"), key=first_line.count)
    limit = csv.field_size_limit()
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        number = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UnusableFile(f"CSV 格式错误（第 {number + 1} 行） / malformed CSV at row {number + 1}: {exc}") from None
            number += 1
            yield number, cells
    finally:
        csv.field_size_limit(limit)


def _xlsx_rows(content: bytes) -> Iterator[tuple[int, list[Any]]]:
    """Rows of the first sheet that has a header row (a help sheet after it is ignored)."""
    import openpyxl  # heavy: loaded only when a spreadsheet arrives

    not_xlsx = "文件不是有效的 XLSX 表格 / not a readable XLSX workbook"
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNCOMPRESSED:
                raise UnusableFile("XLSX 解压后过大 / the XLSX workbook is too large once uncompressed")
            bad = archive.testzip()
            if bad is not None:
                raise UnusableFile(not_xlsx + f" ({bad})")
    except UnusableFile:
        raise
    except Exception:  # BadZipFile, zlib.error, EOFError, ...: every damaged archive is the same to the sender
        raise UnusableFile(not_xlsx) from None
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except UnusableFile:
        raise
    except Exception:  # openpyxl raises many types (KeyError, XML errors, TypeError) for damaged files
        raise UnusableFile(not_xlsx) from None
    try:
        sheets = list(workbook.worksheets)
        for index, sheet in enumerate(sheets):
            try:
                sheet.reset_dimensions()  # some writers record wrong dimensions; read every row
                rows = sheet.iter_rows(values_only=True)
                head: list[tuple[int, list[Any]]] = []
                for number, cells in enumerate(rows, start=1):
                    head.append((number, list(cells)))
                    if number >= HEADER_SCAN_ROWS or _looks_like_header(cells):
                        break
                if not any(_looks_like_header(cells) for _, cells in head) and index < len(sheets) - 1:
                    continue
                yield from head
                for number, cells in enumerate(rows, start=len(head) + 1):
                    yield number, list(cells)
                return
            except UnusableFile:
                raise
            except Exception:
                raise UnusableFile(not_xlsx) from None
    finally:
        workbook.close()


def _looks_like_header(cells: Iterable[Any], renames: Mapping[str, str] | None = None) -> bool:
    renames = renames or {}
    known = 0
    for cell in cells:
        if isinstance(cell, str):
            header = clean_header(cell)
            if renames.get(header, header) in KNOWN_HEADERS:
                known += 1
    return known >= 2


def _parse_table(fmt: str, rows: Iterator[tuple[int, list[Any]]], kind: str, renames: Mapping[str, str]) -> ParsedFile:
    parsed = ParsedFile(format=fmt)
    headers: list[str] | None = None
    for number, cells in rows:
        if not _looks_like_header(cells, renames):
            if number >= HEADER_SCAN_ROWS:
                break
            continue
        headers = [renames.get(h, h) for h in (clean_header(c) for c in cells)]
        break
    if headers is None:
        raise UnusableFile(
            "找不到表头行（应包含如 通知编号、药品编码 等列名） / "
            "no header row found (expected column names such as notice_id, product_code)"
        )
    mapping_for = _mapper(headers, kind)
    kind_column = headers.index("record_kind") if "record_kind" in headers else (
        headers.index("记录类型") if "记录类型" in headers else None
    )
    fixed_kind = None if kind == "auto" else kind
    inferred = infer_kind(headers) if fixed_kind is None else None
    if fixed_kind is None and kind_column is None and inferred is None:
        raise UnusableFile(
            "无法从表头判断记录类型，请指定类型 / cannot tell the record kind from the headers; name it (--kind)"
        )
    parsed.rows = _table_data(parsed, rows, mapping_for, kind_column, fixed_kind, inferred)
    return parsed


def _table_data(parsed: ParsedFile, rows: Iterator[tuple[int, list[Any]]], mapping_for: Any,
                kind_column: int | None, fixed_kind: str | None, inferred: str | None) -> Iterator[RawRow]:
    for number, cells in rows:
        if not any(c is not None and (not isinstance(c, str) or c.strip(" \t\u3000\u00a0")) for c in cells):
            continue  # blank rows between records are not errors
        row_kind = fixed_kind or inferred
        if kind_column is not None and kind_column < len(cells) and cells[kind_column] not in (None, ""):
            named = normalize_kind_name(cells[kind_column])
            if named is None or (fixed_kind is not None and named != fixed_kind):
                parsed.errors.append(RowError(number, "record_kind", _kind_problem(cells[kind_column], fixed_kind)))
                continue
            row_kind = named
        if row_kind is None:
            parsed.errors.append(RowError(number, "record_kind", _kind_problem(None, None)))
            continue
        mapping = mapping_for(row_kind)
        values = {key: cells[i] for i, key in mapping if i < len(cells)}
        yield RawRow(number, row_kind, values)


def _mapper(headers: list[str], kind: str):  # type: ignore[no-untyped-def]
    cache: dict[str, list[tuple[int, str]]] = {}

    def mapping_for(row_kind: str) -> list[tuple[int, str]]:
        if row_kind not in cache:
            index = HEADER_INDEX[row_kind]
            cache[row_kind] = [(i, index[h]) for i, h in enumerate(headers) if h in index and index[h] != "record_kind"]
        return cache[row_kind]

    return mapping_for


def _kind_problem(value: Any, fixed: str | None) -> str:
    if fixed is not None and value is not None and normalize_kind_name(value) is not None:
        return f"记录类型与来源要求的 {fixed} 不符 / record_kind {value!r} does not match this source ({fixed})"
    return (
        "记录类型应为 stoppage_notice、distributor_report 或 shortage_report / "
        f"record_kind must be one of {', '.join(RECORD_KINDS)}"
    )


# ---- JSON ---------------------------------------------------------------------------------------


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def _parse_json(content: bytes, kind: str, renames: Mapping[str, str]) -> ParsedFile:
    text, _encoding = decode_text(content)
    try:
        data = json.loads(text)
    except RecursionError:
        raise UnusableFile("JSON 嵌套过深 / JSON nested too deeply") from None
    except ValueError as exc:
        raise UnusableFile(f"JSON 格式错误 / invalid JSON: {exc}") from None
    if not _depth_ok(data, MAX_JSON_DEPTH):
        raise UnusableFile("JSON 嵌套过深 / JSON nested too deeply")
    parsed = ParsedFile(format="json")
    if isinstance(data, dict) and "records" in data:
        records = data["records"]
        if not isinstance(records, list):
            raise UnusableFile('"records" 应为列表 / "records" must be a list')
        cursor = data.get("next_cursor")
        parsed.next_cursor = str(cursor) if isinstance(cursor, (str, int)) and cursor != "" else None
        parsed.has_more = data.get("has_more") is True
    elif isinstance(data, dict):
        records = [data]
    elif isinstance(data, list):
        records = data
    else:
        raise UnusableFile("JSON 应为对象、列表或 {\"records\": [...]} / JSON must be an object, a list or {\"records\": [...]}")
    fixed_kind = None if kind == "auto" else kind
    for index, item in enumerate(records):
        if not isinstance(item, dict):
            parsed.errors.append(RowError(index, None, "记录应为 JSON 对象 / a record must be a JSON object"))
            continue
        keys = {renames.get(clean_header(k), clean_header(k)): v for k, v in item.items() if isinstance(k, str)}
        named_value = keys.get("record_kind", keys.get("记录类型"))
        row_kind = fixed_kind
        if named_value not in (None, ""):
            named = normalize_kind_name(named_value) if isinstance(named_value, str) else None
            if named is None or (fixed_kind is not None and named != fixed_kind):
                parsed.errors.append(RowError(index, "record_kind", _kind_problem(named_value, fixed_kind)))
                continue
            row_kind = named
        if row_kind is None:
            row_kind = infer_kind(list(keys))
        if row_kind is None:
            parsed.errors.append(RowError(index, "record_kind", _kind_problem(None, None)))
            continue
        mapped = map_headers(row_kind, list(keys))
        values = {key: keys[header] for header, key in mapped.items() if key != "record_kind"}
        parsed.rows.append(RawRow(index, row_kind, values))
    return parsed
