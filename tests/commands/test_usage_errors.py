"""argparse's usage errors, the first thing an operator meets: one line, Chinese then English, exit 2."""

from __future__ import annotations

import pytest

from tests.commands.bilingual import assert_chinese_first


@pytest.mark.parametrize(
    ("args", "zh", "en"),
    [
        (["frobnicate"], "命令 'frobnicate' 无效", "invalid choice: 'frobnicate'"),
        (["outbox"], "缺少操作", "the following arguments are required: ACTION"),
        (["deadline"], "缺少必需的参数 --received", "the following arguments are required: --received"),
        (["outbox", "retry"], "须给出其中一个参数", "one of the arguments id --all-dead is required"),
        (["submit", "x.csv", "--kind", "notice"], "参数 --kind 'notice' 无效，可选", "argument --kind: invalid choice: 'notice'"),
        (["mail", "test", "--to", "a@example.cn", "--lang", "fr"], "参数 --lang 'fr' 无效", "invalid choice: 'fr'"),
        (["deadline", "--received", "2024-13-01"], "'2024-13-01' 不是有效日期", "'2024-13-01' is not a date"),
        (["compliance", "--until", "2024/10/32"], "参数 --until：'2024/10/32' 不是有效日期", "argument --until: '2024/10/32' is not a date"),
        (["deadline", "--received", "2024-09-27", "--working-days", "0"], "0 应不小于 1", "0 must be at least 1"),
        (["outbox", "list", "--limit", "many"], "'many' 不是整数", "'many' is not an integer"),
        (["calendar", "--year", "abc"], "参数 --year 的值 'abc' 不是整数", "argument --year: invalid int value: 'abc'"),
        (["submit", "x.csv", "--now", "next friday"], "'next friday' 不是日期时间", "is not an ISO date-time"),
        (["sample-inbox", "var/x", "--now", "0001-01-01T00:00"], "不在 1970 至 2999 年之间", "is not between the years 1970 and 2999"),
        (["deadline", "--received", "2024-09-27", "--frobnicate"], "无法识别的参数 --frobnicate", "unrecognized arguments: --frobnicate"),
        (["deadline", "--received"], "参数 --received 缺少值", "argument --received: expected one argument"),
        (["health", "--local", "--replica", "r1"], "不能与 --local 同时使用", "not allowed with argument --local"),
    ],
    ids=["unknown-command", "missing-action", "missing-required", "missing-one-of", "invalid-choice", "invalid-lang",
         "bad-date", "bad-until", "int-below-1", "not-an-int", "argparse-int", "bad-instant", "instant-out-of-years", "unrecognized",
         "no-value", "not-allowed-with"],
)
def test_a_usage_error_is_one_line_chinese_first_exit_2(run_main, args, zh, en):
    result = run_main(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "usage:" not in result.stderr, result.stderr
    assert_chinese_first(result.stderr, zh, en)


def test_help_still_prints_usage_and_exits_0(run_main):
    result = run_main("deadline", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: shortage-watch deadline")
