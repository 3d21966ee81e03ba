"""Exports: exactly the filtered rows, Chinese headers, and record text that can never run as a formula."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.exports import neutralise_formula, table_csv, table_xlsx
from shortage_watch.services.dashboard import OBLIGATION_HEADERS, obligation_table, officer_regions
from shortage_watch.store import dashboard_queries as q
from tests.dashboard.conftest import NOW, seed_ledger

HYPERLINK = '=HYPERLINK("http://x.example","点我")'


def test_text_starting_like_a_formula_is_neutralised() -> None:
    assert [neutralise_formula(v) for v in ("=1+1", "+86 138", "-2", "@SUM(A1)", "\t=1", "头孢", "1=1")] == [
        "'=1+1", "'+86 138", "'-2", "'@SUM(A1)", "'\t=1", "头孢", "1=1",
    ]


def _filtered(sessions, sample_directory) -> list[list]:
    with sessions() as session:
        rows = list(q.iter_obligations(session, officer_regions(sample_directory, "350900"), q.ObligationFilter(drug="硝酸"), now=NOW))
    return list(obligation_table(sample_directory, WorkingCalendar(), rows))


def test_csv_export_is_the_filtered_rows_with_formulas_neutralised(sessions, sample_directory) -> None:
    seed_ledger(sessions)
    data = table_csv(OBLIGATION_HEADERS, _filtered(sessions, sample_directory))
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == OBLIGATION_HEADERS
    assert len(rows) == 2  # 福安's 硝酸甘油片 only: 重庆's has the same drug and never appears
    record = dict(zip(rows[0], rows[1]))
    assert record["生产企业"] == "'" + HYPERLINK
    assert (record["配送企业"], record["地区"], record["状态"], record["报告截止"]) == ("福安市医药物流有限公司", "福安市", "待报告", "2024-10-16 23:59")


def test_xlsx_export_keeps_record_text_as_text(sessions, sample_directory) -> None:
    seed_ledger(sessions)
    book = load_workbook(io.BytesIO(table_xlsx("报告义务", OBLIGATION_HEADERS, _filtered(sessions, sample_directory))))
    sheet = book.active
    assert [c.value for c in sheet[1]] == OBLIGATION_HEADERS
    assert sheet.max_row == 2
    cell = sheet.cell(2, OBLIGATION_HEADERS.index("生产企业") + 1)
    assert (cell.value, cell.data_type, cell.quotePrefix) == (HYPERLINK, "s", True)
    assert sheet.freeze_panes == "A2"
