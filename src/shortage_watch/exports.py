"""Tables as CSV and XLSX files an officer opens in Excel or WPS, safe against formula injection.

Record text comes from distributors and hospitals: a cell such as `=HYPERLINK(...)`
must stay text. CSV cells starting with `=`, `+`, `-`, `@` (or a tab or carriage
return, which spreadsheets strip first) get a leading apostrophe; XLSX cells keep the
exact text, stored as a string with Excel's quote prefix, so they stay text even when
someone edits them.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any, Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: str) -> str:
    """The text as a spreadsheet shows it without ever evaluating it."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def table_csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (so Excel in China reads the Chinese headers), CRLF lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        out = []
        for value in row:
            value = _cell(value)
            if value is None:
                out.append("")
            elif isinstance(value, str):
                out.append(neutralise_formula(value))
            elif isinstance(value, date):
                out.append(value.isoformat())
            else:
                out.append(value)
        writer.writerow(out)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _display_width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def table_xlsx(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """One sheet: bold frozen header row, filters, fitting column widths; every text cell is text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=False)
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(list(headers))
    widths = [_display_width(h) for h in headers]
    for row in rows:
        values = [_cell(v) for v in row]
        sheet.append(values)
        for index, value in enumerate(values):
            widths[index] = max(widths[index], _display_width(value))
    for line in sheet.iter_rows(min_row=2):
        for cell in line:
            if isinstance(cell.value, str):
                # openpyxl would store "=..." as a formula: force text, with Excel's quote prefix.
                cell.data_type = "s"
                if cell.value.startswith(FORMULA_STARTS):
                    cell.quotePrefix = True
            elif isinstance(cell.value, date) and not isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd"
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(60, width + 3)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
