"""The stable CLI contracts: `deadline`, `calendar`, `db upgrade`, and errors as one line."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    return write_config()


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTAGE_WATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "shortage_watch", "--config", str(config), *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )


@pytest.mark.slow  # a process of its own: the real entry point
def test_deadline_json_contract(config: Path) -> None:
    result = run_cli(config, "deadline", "--received", "2024-09-27", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "received": "2024-09-27",
        "working_days": 5,
        "due": "2024-10-10",
        "due_at": "2024-10-10T23:59:59+08:00",
        "calendar": "official",
    }


def test_deadline_readable_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "deadline", "--received", "2024-09-27"]) == 0
    assert_chinese_first(capsys.readouterr().out, "2024-09-27（周五）收到：须在 5 个工作日内报告，截止 2024-10-10 23:59（周四）",
                         "received 2024-09-27 (Fri): report due within 5 working days, by 2024-10-10 23:59 (Thu)")


def test_deadline_uses_configured_working_days_and_cutoff(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config({"calendar": {"working_days": 3, "cutoff": "17:30:00"}})
    assert main(["--config", str(path), "deadline", "--received", "2024-09-27", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["working_days"], data["due_at"]) == (3, "2024-10-08T17:30:00+08:00")


def test_deadline_estimated_year(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "deadline", "--received", "2026-12-30", "--working-days", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calendar"] == "estimated"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["deadline", "--received", "2024-13-01", "--json"], "不是有效日期"),
        (["deadline", "--received", "27/09/2024"], "is not a date"),
        (["deadline", "--received", "2024-09-27", "--working-days", "0"], "must be at least 1"),
        (["deadline", "--received", "2024-09-27", "--working-days", "-3"], "应不小于 1"),
        (["deadline", "--received", "2024-09-27", "--frobnicate"], "unrecognized arguments"),
        (["deadline"], "缺少必需的参数"),
        (["calendar", "--year", "abc"], "invalid int value"),
        (["calendar", "--year", "3000"], "--year 3000 超出范围（1950–2199） / --year 3000 is out of range"),
    ],
)
def test_bad_input_is_one_line_exit_2(config: Path, args: list[str], fragment: str, run_main: Callable[..., Any]) -> None:
    result = run_main("--config", str(config), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # a process of its own: the real entry point
def test_a_usage_error_from_the_real_entry_point_is_one_line_exit_2(config: Path) -> None:
    result = run_cli(config, "deadline", "--received", "2024-13-01")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a date" in result.stderr and "Traceback" not in result.stderr


def test_calendar_year_json_contract(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "calendar", "--year", "2024", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["year"] == 2024 and data["calendar"] == "official"
    assert data["makeup_workdays"] == [
        "2024-02-04", "2024-02-18", "2024-04-07", "2024-04-28", "2024-05-11", "2024-09-14", "2024-09-29", "2024-10-12"
    ]
    assert data["weekday_rest_days"][:2] == ["2024-01-01", "2024-02-12"]
    assert data["weekday_rest_days"] == sorted(data["weekday_rest_days"])


def test_calendar_lists_status_of_each_year(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = tmp_path / "calendar"
    overrides.mkdir()
    (overrides / "2028.toml").write_text('year = 2028\nholidays = ["2028-01-03"]\n', encoding="utf-8")
    path = write_config({"calendar": {"overrides_dir": str(overrides)}})
    assert main(["--config", str(path), "calendar", "--json"]) == 0
    years = json.loads(capsys.readouterr().out)
    assert years["2019"] == "official" and years["2026"] == "official"
    assert years["2027"] == "estimated"
    assert years["2028"] == "override"


@pytest.mark.slow  # a process of its own: the real entry point
def test_console_script_is_installed(config: Path) -> None:
    script = Path(sys.executable).with_name("shortage-watch")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("shortage-watch ")


def test_deadline_past_the_last_representable_day_is_one_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # refused as records refuse it: outside 2000-2199
        main(["--config", str(config), "deadline", "--received", "9999-12-31"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("shortage-watch deadline: error:") and "9999-12-31" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["once"], ["poll"], ["submit", "nothing.csv"]])
@pytest.mark.parametrize("instant", ["0001-01-01T00:00", "9999-12-31T23:59:59-12:00"])
def test_now_outside_the_ledgers_years_is_one_line(
    config: Path, command: list[str], instant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    capsys.readouterr()
    try:
        code = main(["--config", str(config), *command, "--now", instant])
    except SystemExit as exit:  # argparse's usage error
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert "--now" in err and "between" in err and err.count("\n") == 1


@pytest.mark.parametrize("action", ["upgrade", "current"])
def test_db_with_the_database_unreachable_is_one_line_exit_1(
    write_config: Callable[..., Path], action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_config({"database": {"url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere"}})
    assert main(["--config", str(path), "db", action]) == 1
    err = capsys.readouterr().err
    assert err.startswith("shortage-watch: error: 无法连接数据库 / database unreachable:") and err.count("\n") == 1


@pytest.mark.slow  # a process of its own: the real entry point
def test_output_into_a_closed_pipe_is_no_traceback(config: Path) -> None:
    # `shortage-watch obligations list | head -3`: the reader goes away before the output is written.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTAGE_WATCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shortage_watch", "--config", str(config), "config", "check"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode("utf-8", "replace")
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["compliance"], ["cases", "list"], ["obligations", "list"], ["once"], ["outbox", "list"], ["db", "current"],
        ["submit", str(REPO / "config" / "examples" / "hospitals.csv")],
    ],
)
def test_unreachable_database_is_one_line_exit_1(
    write_config: Callable[..., Path], args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config({"database": {"url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}})
    assert main(["--config", str(path), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("shortage-watch: error: 无法连接数据库 / database unreachable: ") and err.count("\n") == 1


def test_an_unexpected_error_is_one_line_not_a_traceback(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shortage_watch.commands.basics as basics

    def explode(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(basics, "report_deadline", explode)
    assert main(["--config", str(write_config()), "deadline", "--received", "2024-09-27"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected RuntimeError: boom" in err and "Traceback" not in err
    assert_chinese_first(err, "意外错误 RuntimeError", "unexpected RuntimeError: boom")
