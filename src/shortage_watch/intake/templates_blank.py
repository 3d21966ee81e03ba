"""Blank files a distributor or hospital fills in: Chinese headers, and a help sheet in XLSX."""

from __future__ import annotations

import csv
import io

from shortage_watch.domain.labels import CHOICE_FIELDS as CHOICE_GROUPS, choice_values, label
from shortage_watch.intake.columns import FIELDS, KIND_LABELS

# Columns a clerk picks from a list (an XLSX drop-down of the Chinese labels).
CHOICE_FIELDS = ("kind", "priority_class", "supply_status", "cause")
# Codes Excel would turn into numbers (losing leading zeros, or 1.2E+22): text-formatted cells.
CODE_FIELDS = ("notice_id", "report_id", "product_code", "distributor_code", "hospital_code", "region_code", "contact_phone")
# Rows prepared with drop-downs; a longer file still parses, it only lacks the list.
TEMPLATE_ROWS = 2000

RULES: dict[str, str] = {
    "notice_id": "文本，≤64 字符 / text, at most 64 characters",
    "report_id": "文本，≤64 字符 / text, at most 64 characters",
    "kind": "停产、断供 或 减产 / stoppage, interruption or reduction",
    "notified_on": "日期 YYYY-MM-DD，不晚于今天 / date YYYY-MM-DD, not in the future",
    "expected_resume_on": "日期，不早于通知日期 / date, not before notified_on",
    "reported_on": "日期 YYYY-MM-DD，不晚于今天 / date YYYY-MM-DD, not in the future",
    "submitted_at": "日期时间 YYYY-MM-DD HH:MM（北京时间），不晚于现在 / date-time (Beijing time), not in the future",
    "priority_class": "国谈药品、集采中选、短缺清单 或 其他 / negotiated, winning_bid, shortage_list or other",
    "supply_status": "短缺、严重短缺 或 已恢复 / short, severe or resolved",
    "cause": "供应短缺、采购原因 或 其他 / supply, procurement or other",
    "hospitals_notified": "整数 ≥ 0 / whole number ≥ 0",
    "stock_days": "数字 ≥ 0 / number ≥ 0",
    "monthly_demand": "数字 ≥ 0，单位填在“单位”列 / number ≥ 0, unit in demand_unit",
    "region_code": "六位行政区划代码；不填则取目录中的地区 / region code; defaults to the directory's region",
}
REQUIRED_LABEL = {"yes": "必填 / required", "no": "选填 / optional",
                  "described": "无通知编号时必填 / required without notice_id"}


def template_csv(kind: str) -> bytes:
    """One header row of Chinese column names, UTF-8 with BOM (Excel in China opens it as is)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerow([zh for _, zh, _ in FIELDS[kind]])
    return "\ufeff".encode("utf-8") + buffer.getvalue().encode("utf-8")


def template_xlsx(kind: str) -> bytes:
    """A workbook: the data sheet with Chinese headers, then a help sheet explaining each column."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    data = workbook.active
    data.title = "数据"
    data.append([zh for _, zh, _ in FIELDS[kind]])
    for cell in data[1]:
        cell.font = Font(bold=True)
    for index, (_key, zh, _) in enumerate(FIELDS[kind], start=1):
        data.column_dimensions[data.cell(1, index).column_letter].width = max(12, len(zh) * 2 + 4)
    data.freeze_panes = "A2"
    for index, (key, zh, _) in enumerate(FIELDS[kind], start=1):
        letter = data.cell(1, index).column_letter
        cells = f"{letter}2:{letter}{TEMPLATE_ROWS + 1}"
        if key in CHOICE_FIELDS:
            group = CHOICE_GROUPS[key]
            options = [label(group, value) for value in choice_values(group)]  # the words mail shows, accepted back
            # A list given inline in the formula; Excel shows it as a drop-down on each cell.
            validation = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=True,
                                        showErrorMessage=True, errorTitle=zh, error="请从下拉列表中选择 / pick from the list: " + "、".join(options))
            validation.add(cells)
            data.add_data_validation(validation)
        if key in CODE_FIELDS:
            # The column's style: every cell the clerk types into is text, without writing empty cells.
            data.column_dimensions[letter].number_format = "@"
    help_sheet = workbook.create_sheet("填写说明 Help")
    help_sheet.append([f"{KIND_LABELS[kind]} / {kind}"])
    help_sheet.append(["中文列名 / column", "英文键 / key", "是否必填 / required", "规则 / rule"])
    for key, zh, required in FIELDS[kind]:
        help_sheet.append([zh, key, REQUIRED_LABEL[required], RULES.get(key, "文本 / text")])
    for column, width in zip("ABCD", (18, 22, 26, 70)):
        help_sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
