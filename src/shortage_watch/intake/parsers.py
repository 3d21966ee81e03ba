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
import itertools
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Iterable, Iterator, Mapping

from shortage_watch.domain.records import RECORD_KINDS, RowError
from shortage_watch.intake.columns import (
    HEADER_INDEX,
    KNOWN_HEADERS,
    clean_header,
    infer_kind,
    map_headers,
    normalize_kind_name,
    wrong_kind_for_headers,
)
from shortage_watch.intake.encodings import UnusableFile, decode_text, decoded_lines, text_encoding

HEADER_SCAN_ROWS = 30
MAX_JSON_DEPTH = 64
_CSV_FIELD_LIMIT = 1024 * 1024
_DELIMITERS = (",", "\t", ";")
UNBALANCED_QUOTE = ("引号不配对：此行开始的引号没有在本行闭合，此行未读取，其后各行照常读取 / "
                    "unbalanced quote: a quote opened in this row does not close in it; this row was not read, "
                    "the rows after it were")


@dataclass(frozen=True)
class ParseLimits:
    """How much a spreadsheet may unpack to (settings `intake.max_unpacked_bytes`, `intake.max_cell_chars`)."""

    max_unpacked_bytes: int = 256 * 1024 * 1024  # a zip bomb stops here, not in memory
    max_cell_chars: int = 32767  # Excel's own limit for one cell's text


@dataclass(frozen=True)
class RawRow:
    """One data row: where it was, which kind it is, and its values under our keys."""

    row: int
    kind: str
    values: dict[str, Any]
    columns: dict[str, str] = field(default_factory=dict)  # our key -> the header (or JSON key) as written


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
    lazy: bool = False, limits: ParseLimits = ParseLimits(),
) -> ParsedFile:
    """Parse `content` as `format` (detected from `name` when not given); `kind` may be 'auto'.

    With `lazy`, table rows are produced while iterating `rows` (a large file is never
    held as rows in memory), `errors` is complete only once `rows` is exhausted, and an
    XLSX damaged past its header raises UnusableFile during that iteration.
    """
    fmt = format or detect_format(name, content)
    renames = {clean_header(k): clean_header(v) for k, v in (field_map or {}).items()}
    if not content or content.isspace():  # not strip(): that copied the whole file
        raise UnusableFile("文件为空 / the file is empty")
    if fmt == "json":
        return _parse_json(content, kind, renames)
    rows = _xlsx_rows(content, limits) if fmt == "xlsx" else _csv_rows(content, renames)
    parsed = _parse_table(fmt, rows, kind, renames)
    if not lazy:
        parsed.rows = list(parsed.rows)
    return parsed


# ---- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BadRow:
    """Yielded in place of a row's cells when the row itself cannot be read."""

    reason: str


@dataclass(frozen=True)
class _Text:
    """A text file's bytes and the codec that reads them: its lines are decoded as they are read (the text of a
    file of 1,000,000 notices would hold 170 MB more) and read again from any line."""

    content: bytes
    codec: str

    def lines(self, start: int = 0) -> Iterator[str]:
        """The lines from line `start` on, each with its ending (`decoded_lines`)."""
        return itertools.islice(decoded_lines(self.content, self.codec), start, None)


def _delimiter(text: _Text, renames: Mapping[str, str]) -> tuple[str, int | None]:
    """The delimiter that splits a header row among the first lines (a title row may hold
    any of them) and how many the header holds; else the one most frequent in the first
    non-empty line (and None)."""
    lines = [line for line in itertools.islice(text.lines(), HEADER_SCAN_ROWS * 2) if line.strip()]
    for line in lines[:HEADER_SCAN_ROWS]:
        for delimiter in _DELIMITERS:
            if line.count(delimiter) and _looks_like_header(next(csv.reader([line], delimiter=delimiter), []),
                                                            renames):
                return delimiter, line.count(delimiter)
    first_line = lines[0] if lines else ""
    return max(_DELIMITERS, key=first_line.count), None


def _csv_rows(content: bytes, renames: Mapping[str, str]) -> Iterator[tuple[int, Any]]:
    """Each record's number and cells. A record whose quote never closes, or whose quoted
    cell swallowed whole rows, is a `_BadRow`, and reading resumes on the line after its
    first, so the rows behind it are read, not lost inside one cell."""
    text = _Text(content, text_encoding(content))
    delimiter, header_width = _delimiter(text, renames)
    # A line inside a cell with half a header's delimiters or more is a row, not prose.
    row_like = max(2, header_width // 2) if header_width else None
    limit = csv.field_size_limit()
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        number = 0
        start_line: int | None = 0
        while start_line is not None:
            reader = csv.reader(text.lines(start_line), delimiter=delimiter)
            # One record held back: only the last record of the text can end inside a quote.
            held: tuple[int, list[Any], int, int] | None = None
            resume = None
            while True:
                first = reader.line_num
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise UnusableFile(
                        f"CSV 格式错误（第 {number + 1} 行） / malformed CSV at row {number + 1}: {exc}") from None
                number += 1
                if held is not None:
                    yield held[0], held[1]
                    held = None
                if reader.line_num - first > 1 and row_like and _holds_rows(cells, delimiter, row_like):
                    yield number, _BadRow(UNBALANCED_QUOTE)
                    resume = start_line + first + 1
                    break
                held = (number, cells, first, reader.line_num)
            if held is not None:
                held_number, cells, first, last = held
                if last - first > 1 and _quote_left_open(text, start_line + first, delimiter):
                    yield held_number, _BadRow(UNBALANCED_QUOTE)
                    resume = start_line + first + 1
                else:
                    yield held_number, cells
            start_line = resume
    finally:
        csv.field_size_limit(limit)


def _holds_rows(cells: list[str], delimiter: str, row_like: int) -> bool:
    """Whether a cell spans lines that look like rows of their own (a stray quote joined them)."""
    for cell in cells:
        if "\n" in cell or "\r" in cell:
            if any(line.count(delimiter) >= row_like for line in cell.splitlines()[1:]):
                return True
    return False


def _quote_left_open(text: _Text, line: int, delimiter: str) -> bool:
    """Whether the record starting on `line` runs to the end of the text inside a quote."""
    try:
        next(csv.reader(text.lines(line), delimiter=delimiter, strict=True), None)
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _xlsx_rows(content: bytes, limits: ParseLimits) -> Iterator[tuple[int, list[Any]]]:
    """Rows of the first sheet that has a header row (a help sheet after it is ignored)."""
    import openpyxl  # heavy: loaded only when a spreadsheet arrives

    not_xlsx = "文件不是有效的 XLSX 表格 / not a readable XLSX workbook"
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if sum(info.file_size for info in archive.infolist()) > limits.max_unpacked_bytes:
                raise UnusableFile(f"XLSX 解压后超过 {limits.max_unpacked_bytes} 字节 / the XLSX workbook is larger "
                                   f"than intake.max_unpacked_bytes={limits.max_unpacked_bytes} once uncompressed")
            bad = archive.testzip()
            if bad is not None:
                raise UnusableFile(not_xlsx + f" ({bad})")
            for info in archive.infolist():
                # openpyxl loads the shared-string table whole and each cell's text whole, so
                # one huge string is refused here, read as a stream, before it fills the memory.
                if info.filename.lower().endswith(".xml"):
                    with archive.open(info) as stream:
                        _check_cell_text(stream, limits.max_cell_chars)
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


def _check_cell_text(stream: Any, max_chars: int) -> None:
    """UnusableFile when a text between two XML tags is longer than `max_chars`, read as a stream.

    Counted in bytes first (a character takes one to four), at C speed per chunk; only a
    run longer than `max_chars` bytes is decoded and counted in characters. What is held
    is at most one chunk and one run of 4 x `max_chars` bytes.
    """
    too_long = UnusableFile(f"XLSX 中有单元格文本超过 {max_chars} 个字符 / a cell's text is longer than "
                            f"intake.max_cell_chars={max_chars} characters")
    carried = b""
    while chunk := stream.read(1 << 20):
        pieces = (carried + chunk).split(b"<")
        carried = pieces.pop()  # the text after the last tag may go on in the next chunk
        if len(carried) > 4 * max_chars:
            raise too_long
        if max(map(len, pieces), default=0) > max_chars:
            if any(len(p.decode("utf-8", "ignore")) > max_chars for p in pieces if len(p) > max_chars):
                raise too_long
    if len(carried.decode("utf-8", "ignore")) > max_chars:
        raise too_long


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
        if isinstance(cells, _BadRow) or not _looks_like_header(cells, renames):
            if number >= HEADER_SCAN_ROWS:
                break
            continue
        headers = [renames.get(h, h) for h in (clean_header(c) for c in cells)]
        written = [as_written(c) for c in cells]
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
    misfit = wrong_kind_for_headers(fixed_kind, headers) if fixed_kind is not None and kind_column is None else None
    if misfit:
        raise UnusableFile(misfit)
    inferred = infer_kind(headers) if fixed_kind is None else None
    if fixed_kind is None and kind_column is None and inferred is None:
        raise UnusableFile(
            "无法从表头判断记录类型，请指定类型 / cannot tell the record kind from the headers; name it (--kind)"
        )
    # Two columns giving one field (notice_id and 通知编号): which to believe is a guess, so
    # the whole file is refused, for every kind its rows may be.
    for candidate in (fixed_kind or inferred,) if kind_column is None else RECORD_KINDS:
        problem = _ambiguous(candidate, headers, "列 / columns") if candidate else None
        if problem is not None:
            raise UnusableFile(problem)
    parsed.rows = _table_data(parsed, rows, mapping_for, kind_column, fixed_kind, inferred, written)
    return parsed


def _table_data(parsed: ParsedFile, rows: Iterator[tuple[int, list[Any]]], mapping_for: Any,
                kind_column: int | None, fixed_kind: str | None, inferred: str | None, written: list[str]) -> Iterator[RawRow]:
    columns_for: dict[str, dict[str, str]] = {}
    for number, cells in rows:
        if isinstance(cells, _BadRow):
            parsed.errors.append(RowError(number, None, cells.reason))
            continue
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
        if row_kind not in columns_for:
            columns_for[row_kind] = {key: written[i] for i, key in mapping}
        yield RawRow(number, row_kind, values, columns_for[row_kind])


def as_written(header: object) -> str:
    """A header cell as the clerk wrote it, for messages: trimmed, case kept."""
    return "" if header is None else str(header).strip(" \t\u3000\u00a0")


def _mapper(headers: list[str], kind: str):  # type: ignore[no-untyped-def]
    cache: dict[str, list[tuple[int, str]]] = {}

    def mapping_for(row_kind: str) -> list[tuple[int, str]]:
        if row_kind not in cache:
            index = HEADER_INDEX[row_kind]
            cache[row_kind] = [(i, index[h]) for i, h in enumerate(headers) if h in index and index[h] != "record_kind"]
        return cache[row_kind]

    return mapping_for


def _ambiguous(kind: str, headers: Iterable[str], what: str) -> str | None:
    """Why these headers are ambiguous for `kind` (two of them give one field), or None."""
    index = HEADER_INDEX[kind]
    given: dict[str, list[str]] = {}
    for header in headers:
        if header in index:
            given.setdefault(index[header], []).append(header)
    for key, names in given.items():
        if len(names) > 1:
            shown = "、".join(names)
            return (f"{what.split(' / ')[0]} {shown} 都对应字段 {key}，无法判断用哪一个 / "
                    f"{what.split(' / ')[1]} {', '.join(names)} all give the field {key}: ambiguous, keep only one")
    return None


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


class _JsonObject(dict):  # type: ignore[type-arg]
    """A JSON object that remembers the keys it was given more than once (json keeps the last)."""

    repeated: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> "_JsonObject":
        made = cls(pairs)
        if len(made) < len(pairs):
            keys = [k for k, _ in pairs]
            made.repeated = tuple(sorted({k for k in keys if keys.count(k) > 1}))
        return made


def _parse_json(content: bytes, kind: str, renames: Mapping[str, str]) -> ParsedFile:
    text, _encoding = decode_text(content)
    try:
        data = json.loads(text, object_pairs_hook=_JsonObject.from_pairs)
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
        names = [renames.get(clean_header(k), clean_header(k)) for k in item]
        repeated = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) < len(names) else []
        if repeated or getattr(item, "repeated", ()):
            shown = ", ".join(repeated or item.repeated)
            parsed.errors.append(RowError(index, shown, f"键重复：{shown}，无法判断用哪一个值 / "
                                                        f"duplicate key {shown}: ambiguous, keep only one"))
            continue
        keys = dict(zip(names, item.values()))
        written = dict(zip(names, (as_written(k) for k in item)))
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
        problem = _ambiguous(row_kind, keys, "键 / keys")
        if problem is not None:
            parsed.errors.append(RowError(index, None, problem))
            continue
        mapped = map_headers(row_kind, list(keys))
        values = {key: keys[header] for header, key in mapped.items() if key != "record_kind"}
        parsed.rows.append(RawRow(index, row_kind, values, {key: written[header] for header, key in mapped.items()}))
    return parsed
