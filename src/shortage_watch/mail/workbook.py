"""XLSX workbooks attached to mail: the monthly summary's tables and a grouped message's items.

Built when the mail is sent, from the context stored with it (no ledger access); headers
and labels in Chinese, as the mail shows them.
"""

from __future__ import annotations

import io
from typing import Any

from shortage_watch.domain.labels import label
from shortage_watch.mail.message import Attachment


def _word(group: str, value: str | None) -> str | None:
    """The workbook shows the same Chinese label as the mail (domain/labels.py); a blank stays blank."""
    return None if value is None else label(group, value)


def _sheets(context: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    shortages = [
        [s["case_number"], s["product_code"], s["product"], s["hospital"], s["region_name"], s["reported_on"], _word("supply", s["supply_status"]),
         s["monthly_demand"], s["demand_unit"], s["stock_days"], s["substitute_in_use"], _word("cause", s["cause"]), _word("case_state", s["case_state"])]
        for s in context["shortages"]
    ]
    stoppages = [
        [s["case_number"], s["notice_id"], s["product_code"], s["product"], s["specification"], s["manufacturer"], s["distributor"], s["region_name"],
         _word("kind", s["kind"]), s["notified_on"], s["expected_resume_on"], _word("priority", s["priority_class"])]
        for s in context["stoppages"]
    ]
    compliance = [[c["distributor_code"], c["distributor"], c["obligations"], c["on_time"], c["late"], c["overdue"], c["open"]] for c in context["compliance"]]
    return [
        ("短缺清单及医疗机构需求", ["案件编号", "药品编码", "药品名称", "医疗机构", "地区", "上报日期", "供应状态", "月需求量", "单位", "库存可用天数", "替代药品", "原因分类", "案件状态"], shortages),
        ("停产断供通知", ["案件编号", "通知编号", "药品编码", "药品名称", "规格", "生产企业", "配送企业", "地区", "类型", "通知日期", "预计恢复日期", "药品类别"], stoppages),
        ("配送企业履约情况", ["配送企业编码", "配送企业", "报告义务", "按时报告", "迟报", "逾期未报", "未到期"], compliance),
    ]


def _display_width(value: Any) -> int:
    """Column width in Excel units: CJK characters are about two Latin ones wide."""
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def monthly_workbook(context: dict[str, Any]) -> bytes:
    """The monthly summary as XLSX: one sheet per table, Chinese headers, frozen header row, fitting widths."""
    return table_workbook(_sheets(context))


def table_workbook(sheets: list[tuple[str, list[str], list[list[Any]]]]) -> bytes:
    """XLSX with one sheet per (title, headers, rows): bold header row, frozen, filterable, fitting widths."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE6F0")
    for title, headers, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append(headers)
        for row in rows:
            sheet.append(row)
        for line in sheet.iter_rows(min_row=2):
            for cell in line:
                if cell.data_type == "f":
                    # Record text such as "=HYPERLINK(...)" stays text, never a formula.
                    cell.data_type = "s"
        for cell in sheet[1]:
            cell.font, cell.fill = header_font, header_fill
            cell.alignment = Alignment(vertical="center")
        sheet.freeze_panes = "A2"
        if rows:
            sheet.auto_filter.ref = sheet.dimensions
        for index, header in enumerate(headers, start=1):
            widest = max([_display_width(header)] + [_display_width(r[index - 1]) for r in rows])
            sheet.column_dimensions[get_column_letter(index)].width = min(60, widest + 3)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def monthly_attachment(context: dict[str, Any]) -> Attachment:
    region = (context.get("region") or {}).get("name") or ""
    year, month = context["month"].split("-")
    return Attachment(f"{region}{year}年{int(month)}月药品短缺月度汇总.xlsx", monthly_workbook(context))
