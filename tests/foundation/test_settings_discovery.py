"""Running from another folder is understood: the paths tried are named, the source of every
setting is shown, a database URL into a missing folder says so, and no empty ledger appears."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder with no settings file, as the working directory."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in [n for n in __import__("os").environ if n.startswith("SHORTAGE_WATCH_")]:
        monkeypatch.delenv(name)
    return folder


@pytest.mark.parametrize("argv, code", [(["obligations", "list"], 2), (["cases", "list"], 2), (["submit", "x.csv"], 2),
                                        (["once"], 2), (["db", "current"], 1), (["run"], 2)])
def test_without_a_settings_file_commands_name_the_paths_tried_and_create_nothing(
        elsewhere: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> None:
    if argv[0] == "submit":
        (elsewhere / "x.csv").write_text("通知编号,生产企业\nN1,某某制药\n", encoding="utf-8")
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"no settings file found (tried {elsewhere / 'config' / 'shortage_watch.toml'}" in err
    assert f"the database folder {elsewhere / 'var'} does not exist" in err and "--config" in err
    assert sorted(p.name for p in elsewhere.iterdir()) == (["x.csv"] if argv[0] == "submit" else [])


def test_a_database_url_into_a_missing_folder_says_so(write_config: Callable[..., Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "no-such-folder"
    config = write_config({"database": {"url": f"sqlite:///{folder / 'ledger.db'}"}})
    assert main(["--config", str(config), "obligations", "list"]) == 2
    err = capsys.readouterr().err
    assert_chinese_first(err, f"数据库文件夹 {folder} 不存在：请检查 database.url",
                         f"the database folder {folder} does not exist: check database.url")
    assert "settings file" not in err and "db upgrade" in err  # the file was found: the URL is the question
    assert not folder.exists()


def test_a_missing_ledger_file_is_not_created_by_a_read(write_config: Callable[..., Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger.db"
    config = write_config({"database": {"url": f"sqlite:///{ledger}"}})
    assert main(["--config", str(config), "db", "current"]) == 1
    assert f"no ledger at {ledger}" in capsys.readouterr().err
    assert not ledger.exists()
    assert main(["--config", str(config), "db", "upgrade"]) == 0  # creating it is what `db upgrade` is for
    assert ledger.is_file()


def test_db_upgrade_with_the_built_in_defaults_says_where_it_creates_the_ledger(
        elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    err = capsys.readouterr().err
    assert_chinese_first(err.removeprefix("shortage-watch: "), "未找到配置文件", "no settings file found")
    assert "数据库 sqlite:///var/shortage_watch.db" in err and "database.url = sqlite:///var/shortage_watch.db" in err
    assert (elsewhere / "var" / "shortage_watch.db").is_file()


def test_config_check_names_the_true_source_of_each_setting(
        write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    password = tmp_path / "smtp_password"
    password.write_text("pw\n", encoding="utf-8")
    config = write_config({"calendar": {"working_days": 5}, "smtp": {"password_file": str(password)}})
    monkeypatch.setenv("SHORTAGE_WATCH_MAIL__TRANSPORT", "file")
    monkeypatch.setenv("SHORTAGE_WATCH_DAEMON", '{"sweep_interval": 7}')
    assert main(["--config", str(config), "config", "check"]) == 0
    out = capsys.readouterr().out
    sources = dict(line[4:].split(": ", 1) for line in out.splitlines() if line.startswith("#   "))
    assert out.splitlines()[0] == f"# 配置文件 {config} / settings file: {config}"
    assert sources["calendar.working_days"] == f"配置文件 file {config}"
    assert sources["mail.transport"] == "环境变量 environment SHORTAGE_WATCH_MAIL__TRANSPORT"
    assert sources["daemon.sweep_interval"] == "环境变量 environment SHORTAGE_WATCH_DAEMON"
    assert sources["smtp.password"] == f"密钥文件 secret file {password} (smtp.password_file)"
    assert sources["calendar.cutoff"] == "默认值 default" and sources["timezone"] == "默认值 default"
