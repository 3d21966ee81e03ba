"""`submit`, `poll`, `template`, `directory check` as a distributor or operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import openpyxl
import pytest

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first
from tests.intake.conftest import REPO, STOPPAGE_HEADER_ZH, notice_row, sample_directory_settings


@pytest.fixture
def config(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    path = write_config({"directory": sample_directory_settings(),
                         "sources": [{"name": "sample-inbox", "type": "inbox", "path": str(tmp_path / "inbox"),
                                      "settle_seconds": 0}]})
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return path


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def csv_file(tmp_path: Path, *rows: list[str]) -> Path:
    path = tmp_path / "通知.csv"
    path.write_bytes(("\r\n".join([STOPPAGE_HEADER_ZH, *(",".join(r) for r in rows)]) + "\r\n").encode("gbk"))
    return path


def test_submit_json_all_accepted_exits_0(config: Path, tmp_path: Path, capsys: Any) -> None:
    path = csv_file(tmp_path, notice_row(1), notice_row(2))
    assert run(config, "submit", str(path), "--json", "--now", "2024-10-08T10:00") == 0
    assert json.loads(capsys.readouterr().out) == {"accepted": 2, "duplicates": 0, "rejected": 0, "errors": [],
                                                     "warnings": []}
    assert run(config, "submit", str(path), "--json", "--now", "2024-10-08T10:00") == 0
    assert json.loads(capsys.readouterr().out)["duplicates"] == 2


def test_submit_with_rejected_rows_exits_1_and_writes_errors_csv(config: Path, tmp_path: Path, capsys: Any) -> None:
    path = csv_file(tmp_path, notice_row(1), notice_row(2, notified_on="2024-10-09"))
    errors_csv = tmp_path / "errors.csv"
    code = run(config, "submit", str(path), "--json", "--now", "2024-10-08T10:00", "--errors-csv", str(errors_csv))
    assert code == 1
    assert json.loads(capsys.readouterr().out) == {
        "accepted": 1, "duplicates": 0, "rejected": 1,
        "errors": [{"row": 3, "field": "notified_on", "column": "通知日期", "reason": "通知日期不能晚于今天 / notified_on is in the future"}],
        "warnings": []}
    assert errors_csv.read_bytes().startswith(b"\xef\xbb\xbf\xe8\xa1\x8c\xe5\x8f\xb7/row")


def test_submit_human_output_is_chinese_then_english(config: Path, tmp_path: Path, capsys: Any) -> None:
    path = csv_file(tmp_path, notice_row(1, kind="停止"))
    assert run(config, "submit", str(path), "--now", "2024-10-08T10:00") == 1
    out = capsys.readouterr().out
    assert "第 2 行 row 2 [类型]: 取值应为" in out and "must be one of stoppage" in out  # the header the clerk used


def test_errors_name_the_header_the_clerk_used_english_or_chinese(config: Path, tmp_path: Path, capsys: Any) -> None:
    english = tmp_path / "notices.csv"
    header = "Notice_ID,manufacturer,product_code,product_name,specification,Kind,distributor_code,distributor_name,notified_on,expected_resume_on,reason,priority_class"
    english.write_text(header + "\r\n" + ",".join(notice_row(1, kind="停止")) + "\r\n", encoding="utf-8")
    assert run(config, "submit", str(english), "--now", "2024-10-08T10:00") == 1
    assert "第 2 行 row 2 [Kind]: 取值应为" in capsys.readouterr().out
    errors_csv = tmp_path / "errors.csv"
    assert run(config, "submit", str(csv_file(tmp_path, notice_row(2, kind="停止"))), "--now", "2024-10-08T10:00",
               "--errors-csv", str(errors_csv)) == 1
    assert '2,类型,"取值应为' in errors_csv.read_text(encoding="utf-8-sig")


@pytest.mark.parametrize("content", [None, b"\xff\xfe\x00\x81 not text", b"just,some\nwords,here\n"])
def test_submit_an_unusable_file_exits_2(config: Path, tmp_path: Path, capsys: Any, content: bytes | None) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    assert run(config, "submit", str(path), "--json") == 2
    result = json.loads(capsys.readouterr().out)
    assert result["accepted"] == 0 and result["errors"][0]["row"] is None and " / " in result["errors"][0]["reason"]


def test_submit_refuses_an_old_schema(write_config: Callable[..., Path], tmp_path: Path, capsys: Any) -> None:
    path = csv_file(tmp_path, notice_row(1))
    assert main(["--config", str(write_config()), "submit", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "no ledger at" in err and "`shortage-watch db upgrade`" in err


@pytest.mark.parametrize("kind", ["stoppage_notice", "distributor_report", "shortage_report"])
def test_csv_template_has_the_chinese_headers_with_bom(config: Path, tmp_path: Path, kind: str) -> None:
    out = tmp_path / f"{kind}.csv"
    assert run(config, "template", kind, "--format", "csv", "--output", str(out)) == 0
    header = out.read_bytes()
    assert header.startswith(b"\xef\xbb\xbf")
    assert {"stoppage_notice": "通知编号", "distributor_report": "反馈编号", "shortage_report": "直报编号"}[kind] \
        in header.decode("utf-8-sig")


def test_a_filled_xlsx_template_is_accepted(config: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "template.xlsx"
    assert run(config, "template", "stoppage_notice", "--format", "xlsx", "--output", str(out)) == 0
    assert_chinese_first(capsys.readouterr().out, f"已写入 {out}（stoppage_notice，xlsx）", f"wrote {out} (stoppage_notice, xlsx)")
    workbook = openpyxl.load_workbook(out)
    assert workbook.sheetnames == ["数据", "填写说明 Help"]
    workbook["数据"].append(notice_row(1, specification="", expected_resume_on="", reason=""))
    workbook.save(out)
    capsys.readouterr()
    assert run(config, "submit", str(out), "--json", "--now", "2024-10-08T10:00") == 0
    assert json.loads(capsys.readouterr().out)["accepted"] == 1


def test_directory_check_sample_is_clean_and_problems_exit_1(config: Path, write_config: Callable[..., Path],
                                                             tmp_path: Path, capsys: Any) -> None:
    assert run(config, "directory", "check") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("区划 regions ") and "，配送企业 distributors " in out[0]
    assert_chinese_first(out[-1], "没有问题", "no problems")
    bad = tmp_path / "regions.csv"
    bad.write_text("code,name,parent_code,level\n350902,蕉城区,350900,county\n", encoding="utf-8")
    assert main(["--config", str(write_config({"directory": {"regions": str(bad)}}, name="b.toml")),
                 "directory", "check"]) == 1
    assert "问题 problem: region 350902 蕉城区: unknown parent 350900" in capsys.readouterr().out
    missing = write_config({"directory": {"regions": str(tmp_path / "gone.csv")}}, name="m.toml")
    assert main(["--config", str(missing), "directory", "check"]) == 2
    assert_chinese_first(capsys.readouterr().err, "目录文件无法读取", "file not found: ")


def test_poll_prints_one_line_per_source(config: Path, tmp_path: Path, capsys: Any) -> None:
    assert run(config, "sample-inbox", str(tmp_path / "inbox"), "--now", "2024-10-09T10:00") == 0
    capsys.readouterr()
    assert run(config, "poll", "--now", "2024-10-09T10:00") == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "sample-inbox：正常，3 项，接受 5，重复 0，拒绝 0 / sample-inbox: ok, 3 item(s), accepted 5, duplicates 0, rejected 0"]
    assert run(config, "poll", "--source", "nope") == 2
    assert_chinese_first(capsys.readouterr().err, "没有名为 'nope' 的数据来源（已配置：sample-inbox）",
                         "no source named 'nope' (configured: sample-inbox)")


@pytest.mark.slow  # a process of its own: the real entry point
def test_submit_as_a_real_process_exit_code(config: Path, tmp_path: Path) -> None:
    path = csv_file(tmp_path, notice_row(1, notified_on="2099-01-01"))
    done = subprocess.run([sys.executable, "-m", "shortage_watch", "--config", str(config), "submit", str(path),
                           "--json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["errors"][0]["field"] == "notified_on"
    assert "Traceback" not in done.stderr


def test_submit_with_an_unwritable_errors_csv_still_stores_and_says_so_in_one_line(config: Path, tmp_path: Path, capsys: Any) -> None:
    path = csv_file(tmp_path, notice_row(1), notice_row(2, notified_on="2024-10-09"))
    errors_csv = tmp_path / "no-such-folder" / "errors.csv"
    code = run(config, "submit", str(path), "--json", "--now", "2024-10-08T10:00", "--errors-csv", str(errors_csv))
    assert code == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["accepted"] == 1  # the rows were stored; the summary still shows
    assert_chinese_first(captured.err, f"无法写入错误清单 {errors_csv}", f"--errors-csv {errors_csv}: cannot write: ")
