"""Templates for distributors are real spreadsheets: the format follows the file name, the XLSX has
drop-down lists and text-formatted code columns, and a file given the wrong --kind is one error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import openpyxl
import pytest

from shortage_watch.cli import main
from tests.intake.conftest import STOPPAGE_HEADER_ZH, notice_row, sample_directory_settings


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    path = write_config({"directory": sample_directory_settings()})
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return path


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_output_name_ending_in_csv_writes_csv_without_format(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "停产断供通知.csv"
    assert run(config, "template", "stoppage_notice", "--output", str(out)) == 0
    assert out.read_bytes().startswith("\ufeff通知编号,生产企业".encode("utf-8"))


@pytest.mark.parametrize("name, extra, fragment", [
    ("x.csv", ["--format", "xlsx"], "--format xlsx 与文件名 x.csv 不符"),
    ("x.xlsx", ["--format", "csv"], "--format csv 与文件名 x.xlsx 不符"),
    ("x.txt", [], "文件名应以 .xlsx 或 .csv 结尾"),
])
def test_a_format_the_name_contradicts_is_refused_in_one_line(config: Path, tmp_path: Path, capsys: Any,
                                                              name: str, extra: list[str], fragment: str) -> None:
    capsys.readouterr()
    assert run(config, "template", "stoppage_notice", "--output", str(tmp_path / name), *extra) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("kind, lists", [
    ("stoppage_notice", {"类型": ["停产", "断供", "减产"], "药品类别": ["国家谈判药品", "集采中选药品", "短缺药品清单", "其他"]}),
    ("shortage_report", {"供应状态": ["短缺", "严重短缺", "已恢复"], "原因分类": ["供应短缺", "采购原因", "其他"]}),
])
def test_xlsx_template_offers_drop_down_lists(config: Path, tmp_path: Path, kind: str, lists: dict[str, list[str]]) -> None:
    out = tmp_path / "t.xlsx"
    assert run(config, "template", kind, "--output", str(out)) == 0
    sheet = openpyxl.load_workbook(out)["数据"]
    column_of = {cell.value: cell.column_letter for cell in sheet[1]}
    found = {}
    for validation in sheet.data_validations.dataValidation:
        assert validation.type == "list" and validation.showErrorMessage
        [cells] = validation.sqref.ranges
        found[str(cells)] = validation.formula1.strip('"').split(",")
    assert found == {f"{column_of[header]}2:{column_of[header]}2001": options for header, options in lists.items()}


def test_xlsx_code_columns_are_text_so_excel_keeps_leading_zeros(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    assert run(config, "template", "shortage_report", "--output", str(out)) == 0
    sheet = openpyxl.load_workbook(out)["数据"]
    formats = {cell.value: sheet.column_dimensions[cell.column_letter].number_format for cell in sheet[1]}
    assert {h: formats[h] for h in ("直报编号", "医疗机构编码", "行政区划代码", "药品编码", "配送企业编码")} == dict.fromkeys(
        ("直报编号", "医疗机构编码", "行政区划代码", "药品编码", "配送企业编码"), "@")
    assert formats["上报日期"] != "@" and formats["库存可用天数"] != "@"


def test_labels_picked_from_the_drop_downs_are_accepted(config: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "t.xlsx"
    assert run(config, "template", "stoppage_notice", "--output", str(out)) == 0
    workbook = openpyxl.load_workbook(out)
    [kinds, classes] = [v.formula1.strip('"').split(",") for v in workbook["数据"].data_validations.dataValidation]
    headers = [cell.value for cell in workbook["数据"][1]]
    for i, (kind, priority) in enumerate(zip(kinds, classes), start=1):
        values = dict(zip(STOPPAGE_HEADER_ZH.split(","), notice_row(i, kind=kind, priority_class=priority)))
        workbook["数据"].append([values.get(h) or None for h in headers])
    workbook.save(out)
    capsys.readouterr()
    assert run(config, "submit", str(out), "--json", "--now", "2024-10-08T10:00") == 0
    assert json.loads(capsys.readouterr().out)["accepted"] == len(kinds)


def test_a_file_given_the_wrong_kind_is_one_line_and_exit_2(config: Path, tmp_path: Path, capsys: Any) -> None:
    header = "直报编号,医疗机构编码,药品编码,药品名称,上报日期,供应状态"
    rows = [f"ZB-{i},H350902001,XB02,硝酸甘油片,2024-10-08,短缺" for i in range(33)]
    path = tmp_path / "直报.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert run(config, "submit", str(path), "--kind", "stoppage_notice", "--json") == 2
    result = json.loads(capsys.readouterr().out)
    assert result["accepted"] == 0 and len(result["errors"]) == 1
    reason = result["errors"][0]["reason"]
    assert "文件的表头是医疗机构短缺直报，不是停产断供通知" in reason and "use --kind shortage_report or auto" in reason
    assert run(config, "submit", str(path), "--kind", "shortage_report", "--json", "--now", "2024-10-08T10:00") == 0
