"""`silences add` refuses a silence without a reason, without an end, longer than silences.max_days
(or otherwise unusable) with one line on stderr and exit 2; a usable one is listed and expired."""

from __future__ import annotations

import json

import pytest

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first

NOW = "2024-10-08T09:00"


@pytest.fixture
def config(write_config):
    path = write_config()
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return path


def run(config, *argv):
    return main(["--config", str(config), *argv])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--region", "350902", "--until", "2024-10-10T18:00"], "needs a reason"),
        (["--region", "350902", "--until", "2024-10-10T18:00", "--reason", "   "], "needs a reason"),
        (["--region", "350902", "--reason", "假期"], "needs an end"),
        (["--region", "350902", "--until", "2024-11-30", "--reason", "假期"], "at most 30 days"),
        (["--region", "350902", "--until", "2024-10-01T00:00", "--reason", "假期"], "not in the future"),
        (["--until", "2024-10-10T18:00", "--reason", "假期"], "needs --region"),
        (["--region", "350902", "--until", "next friday", "--reason", "假期"], "not an ISO date-time"),
        (["--template", "no_such_mail", "--until", "2024-10-10T18:00", "--reason", "假期"], "not an alert template"),
    ],
    ids=["no-reason", "blank-reason", "no-end", "too-long", "past-end", "no-matcher", "bad-until", "bad-template"],
)
def test_unusable_silence_is_refused_in_one_line(config, capsys, args, says):
    assert run(config, "silences", "add", *args, "--now", NOW) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert run(config, "silences", "list", "--json", "--now", NOW) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing was stored


def test_a_silence_set_without_json_says_so_chinese_first(config, capsys):
    assert run(config, "silences", "add", "--region", "350902", "--until", "2024-10-10", "--reason", "假期", "--now", NOW) == 0
    assert_chinese_first(capsys.readouterr().out, "静默 #1 已设置：region=350902，至 2024-10-11 00:00，暂扣 0 条待发提醒",
                         "silence #1 set: region=350902 until 2024-10-11 00:00; 0 waiting alert(s) held")


def test_silence_is_set_listed_and_expired(config, capsys):
    assert run(config, "silences", "add", "--region", "350902", "--until", "2024-10-10", "--reason", "假期值班人员不足",
               "--by", "王科长", "--now", NOW, "--json") == 0
    added = json.loads(capsys.readouterr().out)
    assert added["until"] == "2024-10-11T00:00:00+08:00" and added["held"] == 0  # a date alone: to the end of that day
    assert run(config, "silences", "list", "--json", "--now", NOW) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["state"], listed["by"], listed["reason"]) == (added["id"], "active", "王科长", "假期值班人员不足")
    assert run(config, "silences", "list", "--now", NOW) == 0
    assert capsys.readouterr().out.startswith(f"#{added['id']:<4} 生效 active  至 until 2024-10-11 00:00  region=350902  暂扣 held=0  "
                                              "设置人 by 王科长: 假期值班人员不足")
    assert run(config, "silences", "expire", str(added["id"]), "--now", "2024-10-09T09:00") == 0
    assert_chinese_first(capsys.readouterr().out, f"静默 #{added['id']} 已结束：放行 0 条暂扣的提醒",
                         f"silence #{added['id']} ended: 0 held alert(s) released")
    assert run(config, "silences", "expire", str(added["id"]), "--now", "2024-10-09T09:00") == 1
    assert "already ended" in capsys.readouterr().err
    assert run(config, "silences", "expire", "99", "--now", NOW) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "--template", "no_such_mail", "--until", "2024-10-10T18:00", "--reason", "假期"],
        ["expire", "99"],
        ["add", "--region", "350902", "--until", "next friday", "--reason", "假期"],
    ],
    ids=["bad-template", "no-such-silence", "bad-until"],
)
def test_an_officer_reads_why_in_chinese_first(config, capsys, argv):
    # As every other refusal of `silences` (domain/silences.py: refusal): Chinese, then English.
    assert run(config, "silences", *argv, "--now", NOW) == 2
    err = capsys.readouterr().err.removeprefix("shortage-watch: error: ")
    assert "\u4e00" <= err[0] <= "\u9fff" and " / " in err, err


def test_expiring_an_ended_silence_says_so_in_chinese_first(config, capsys):
    assert run(config, "silences", "add", "--region", "350902", "--until", "2024-10-10", "--reason", "假期", "--now", NOW, "--json") == 0
    added = json.loads(capsys.readouterr().out)
    assert run(config, "silences", "expire", str(added["id"]), "--now", "2024-10-09T09:00") == 0
    capsys.readouterr()
    assert run(config, "silences", "expire", str(added["id"]), "--now", "2024-10-09T09:00") == 1
    err = capsys.readouterr().err.removeprefix("shortage-watch: error: ")
    assert err.startswith(f"静默 #{added['id']} 已结束") and "already ended" in err, err
