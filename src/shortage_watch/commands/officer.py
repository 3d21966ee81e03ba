"""What officers read in command output: case numbers, labels in their language, aligned tables.

Output is Chinese unless `--lang en`; `--json` keys stay English and its instants carry
the settings' zone (+08:00), as `deadline --json` does.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from datetime import datetime
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from shortage_watch.commands import CommandError
from shortage_watch.domain.labels import LABELS as CHOICES

LANGS = ("zh-CN", "en")

# 'SW-O-000007', 'sw-o-7', 'O7' or '7'; ASCII digits only, at most 12 (the database's integers).
_NUMBER = re.compile(r"(?:(?:SW-?)?([OC])-?)?0*(\d{1,12})", re.IGNORECASE | re.ASCII)
_WHAT = {"O": ("obligation", "报告义务"), "C": ("case", "短缺案件")}
_ARTICLE = {"O": "an", "C": "a"}

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "number": "编号", "kind": "类型", "distributor": "配送企业", "product": "药品", "notice": "通知编号",
        "region": "区划", "due": "期限（北京时间）", "state": "状态", "late": "逾期工作日", "city": "城市",
        "hospitals": "医疗机构（未解决/全部）", "false": "疑似假短缺", "notices": "通知数", "on_time": "按时",
        "late_count": "逾期报告", "overdue": "逾期未报", "open": "待报告", "median": "报告用时中位数（工作日）",
        "name": "名称", "none_obligations": "没有符合条件的报告义务", "none_cases": "没有符合条件的短缺案件",
        "none_compliance": "没有报告义务", "since": "自", "until": "至", "manufacturer": "生产企业", "notice_kind": "通知类型",
        "received": "收到通知", "deadline": "报告期限", "calendar": "日历", "report": "书面报告",
        "timeline": "时间线", "alert": "提醒", "to": "收件人", "sent": "已发送", "skipped": "跳过的级别",
        "fired": "触发的级别", "opened": "开立", "resolved": "已解决", "reports": "直报", "obligations": "义务",
        "no_notice": "该药品无停产断供通知记录（原因不明的短缺）", "cause": "原因", "part_closed": "已关闭",
        "working_days": "个工作日", "regional_since": "区域性短缺自", "sep": "：", "notices_title": "停产断供通知",
    },
    "en": {
        "number": "number", "kind": "kind", "distributor": "distributor", "product": "drug", "notice": "notice",
        "region": "region", "due": "due (Asia/Shanghai)", "state": "state", "late": "working days late", "city": "city",
        "hospitals": "hospitals (open/all)", "false": "possible false shortages", "notices": "notices",
        "on_time": "on time", "late_count": "late", "overdue": "overdue", "open": "open",
        "median": "median working days to report", "name": "name", "none_obligations": "no obligations match",
        "none_cases": "no cases match", "none_compliance": "no report obligations", "since": "since", "until": "until",
        "manufacturer": "manufacturer", "notice_kind": "notice kind", "received": "received", "deadline": "due",
        "calendar": "calendar", "report": "report", "timeline": "timeline", "alert": "alert", "to": "to",
        "sent": "sent", "skipped": "levels skipped", "fired": "levels fired", "opened": "opened",
        "resolved": "resolved", "reports": "reports", "obligations": "obligations",
        "no_notice": "no stoppage notice on record for this product (unexplained shortage)", "cause": "cause",
        "part_closed": "closed", "working_days": "working day(s)", "regional_since": "regional since", "sep": ": ",
        "notices_title": "stoppage notices",
    },
}

# Words only officers' command output uses; the choices and states come from the one label table.
LABELS: dict[str, dict[str, dict[str, str]]] = {
    "alert_status": {
        "zh-CN": {"pending": "待发送", "sending": "发送中", "sent": "已发送", "dead": "发送失败", "undeliverable": "无收件地址",
                  "digest": "并入日报"},
        "en": {"pending": "pending", "sending": "sending", "sent": "sent", "dead": "dead", "undeliverable": "undeliverable",
               "digest": "in the digest"},
    },
    "template": {  # mail without a ladder step in the label table
        "zh-CN": {"late_report": "逾期报告告知", "false_shortage": "疑似假短缺", "digest": "日报", "operations_digest": "运维日报",
                  "monthly_summary": "月报"},
        "en": {},
    },
    "action": {
        "zh-CN": {"opened": "开立", "opened_by_report": "随报告开立", "overdue": "逾期", "open": "恢复为待报告",
                  "levels": "升级", "notice_linked": "关联通知", "region_changed": "区划变更", "deadline_moved": "期限变更",
                  "deadline_recomputed": "按新日历重算期限", "fulfilled": "按时报告", "fulfilled_late": "逾期后报告",
                  "cancelled": "撤销", "escalated": "上报", "regional": "成为区域性短缺", "resolved": "解决",
                  "part_closed": "关闭一家医疗机构的直报", "level_skipped": "跳过级别（未发送）"},
        "en": {},
    },
}


def choice_label(group: str, value: Any, lang: str) -> str:
    """A record's choice (kind, supply, cause, calendar …) in the reader's words, from the one label table."""
    if value is None:
        return "-"
    return CHOICES[group].get(lang, CHOICES[group]["zh-CN"]).get(str(value), str(value))


def label(group: str, value: str | None, lang: str) -> str:
    """The officer's word for a stored value; the value itself when none is known."""
    if value is None:
        return "-"
    if group == "template" and value in CHOICES["step"].get(lang, {}):
        return CHOICES["step"][lang][value]
    return (LABELS.get(group) or CHOICES[group]).get(lang, {}).get(value, value)


def add_lang(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=LANGS, default="zh-CN", help="output language (default zh-CN); --json keys stay English")


def case_number_arg(kind: str) -> Any:
    """argparse type: `SW-O-000007` (as printed in mail), `O7` or `7` for kind 'O'; the same for 'C'."""
    what, what_zh = _WHAT[kind]

    def parse(text: str) -> int:
        match = _NUMBER.fullmatch(text.strip())
        if match and (match[1] is None or match[1].upper() == kind):
            number = int(match[2])
        elif match:
            other, other_zh = _WHAT[match[1].upper()]
            raise argparse.ArgumentTypeError(f"{text} 是{other_zh}编号，不是{what_zh}编号 / {text} numbers {_ARTICLE[match[1].upper()]} {other}, not {_ARTICLE[kind]} {what}")
        else:
            raise argparse.ArgumentTypeError(
                f"{text!r} 不是{what_zh}编号（如 SW-{kind}-000007）/ not a {what} number (e.g. SW-{kind}-000007)")
        if number < 1:
            raise argparse.ArgumentTypeError(f"{text!r} 不是{what_zh}编号 / not a {what} number")
        return number

    return parse


def not_found(kind: str, number: int) -> CommandError:
    what, what_zh = _WHAT[kind]
    return CommandError(f"没有{what_zh} SW-{kind}-{number:06d} / no {what} SW-{kind}-{number:06d}")


def check_region(directory: Any, code: str | None) -> None:
    """A `--region` filter must name a region of the directory: a typo must not list nothing, silently."""
    if code is not None and directory.region(code) is None:
        raise CommandError(f"目录中没有区划 {code} / no region {code} in the directory (see `shortage-watch directory check`)")


def local_iso(instant: datetime | None, tz: ZoneInfo) -> str | None:
    """An instant for --json: ISO 8601 in the settings' zone (+08:00)."""
    return None if instant is None else instant.astimezone(tz).isoformat()


def local_minute(instant: datetime | None, tz: ZoneInfo) -> str:
    return "-" if instant is None else instant.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def readable(value: Any, tz: ZoneInfo) -> str:
    """An audit detail value as an officer reads it: a stored ISO instant in local time."""
    if isinstance(value, str) and len(value) > 19 and value[10] == "T":
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            return value
        if instant.tzinfo is not None:
            return local_minute(instant, tz)
    return str(value)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of an aligned table; Chinese characters count two columns, as a terminal shows them."""
    cells = [[str(h) for h in headers]] + [["-" if v is None or v == "" else str(v) for v in row] for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)).rstrip() for row in cells]
