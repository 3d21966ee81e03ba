"""`calendar`, `db upgrade|current`, `config check` and `sample-inbox` as an operator reads them: Chinese first, English after it;
their --json and exit codes as before."""

from __future__ import annotations

import json

import pytest

from shortage_watch.store.db import head_revision
from tests.commands.bilingual import assert_chinese_first


@pytest.fixture
def config(write_config):
    return write_config()


def test_calendar_lists_each_year_in_a_chinese_word_then_its_status(config, run_main):
    result = run_main("--config", str(config), "calendar")
    assert result.returncode == 0
    lines = dict(line.split("  ", 1) for line in result.stdout.splitlines())
    assert lines["2024"] == "官方公布 / official" and lines["2019"] == "官方公布 / official"
    assert json.loads(run_main("--config", str(config), "calendar", "--json").stdout)["2024"] == "official"


def test_calendar_year_names_its_arrangement_and_days_chinese_first(config, run_main):
    result = run_main("--config", str(config), "calendar", "--year", "2024")
    first, rest, makeup = result.stdout.splitlines()
    assert_chinese_first(first, "2024：国务院公布的节假日安排", "2024: official")
    assert rest.startswith("  休息的工作日 rest weekdays: ") and "2024-10-01" in rest
    assert makeup.startswith("  调休上班日 make-up workdays: ") and "2024-09-29" in makeup


def test_db_upgrade_and_current_say_the_revision_chinese_first(config, run_main):
    head = head_revision()
    result = run_main("--config", str(config), "db", "upgrade")
    assert result.returncode == 0
    assert_chinese_first(result.stdout, f"数据库结构已升级到版本 {head}（原为空）", f"schema upgraded to {head} (was empty)")
    assert_chinese_first(run_main("--config", str(config), "db", "upgrade").stdout, f"数据库结构已是版本 {head}",
                         f"schema already at {head}")
    current = run_main("--config", str(config), "db", "current")
    assert current.returncode == 0
    assert_chinese_first(current.stdout, f"当前版本 {head}，最新版本 {head}", f"current {head}, head {head}")


def test_an_unreadable_policy_is_a_setting_error_chinese_first(write_config, tmp_path, run_main):
    policy = tmp_path / "escalation.toml"
    policy.write_text("[ladders.report\n", encoding="utf-8")
    result = run_main("--config", str(write_config({"escalation": {"policy": str(policy)}})), "config", "check")
    assert result.returncode == 2
    assert_chinese_first(result.stderr, "设置 escalation.policy 有误", f"setting escalation.policy: {policy}: not valid TOML")


@pytest.mark.parametrize("command", [["deadline", "--received", "2024-09-27"], ["config", "check"], ["sample-inbox", "inbox"]])
def test_an_unusable_calendar_override_is_a_setting_error_chinese_first(write_config, tmp_path, run_main, command):
    overrides = tmp_path / "calendar"
    overrides.mkdir()
    (overrides / "2028.toml").write_text('year = 2028\nholidays = ["soon"]\n', encoding="utf-8")
    result = run_main("--config", str(write_config({"calendar": {"overrides_dir": str(overrides)}})), *command)
    assert result.returncode == 2
    assert_chinese_first(result.stderr, "设置 calendar.overrides_dir 有误", "setting calendar.overrides_dir: ")
    assert "'soon'" in result.stderr


def test_sample_inbox_into_a_file_is_refused_chinese_first(config, tmp_path, run_main):
    taken = tmp_path / "taken"
    taken.write_text("not a folder", encoding="utf-8")
    result = run_main("--config", str(config), "sample-inbox", str(taken / "inbox"))
    assert result.returncode == 2
    assert_chinese_first(result.stderr, f"无法在 {taken / 'inbox'} 写入样例文件", f"{taken / 'inbox'}: cannot write the sample files")
