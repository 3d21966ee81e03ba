"""The one table of labels for every choice a record, mail, page or workbook shows: value -> words per language.

Groups: `record_kind` (通知/反馈/直报), `kind` (停产/断供/减产), `priority` (药品类别), `supply` (供应状态), `cause` (原因分类),
`obligation_state`, `obligation_kind`, `case_state`, `role`, `calendar`, `step` (a ladder step, by
template name), `event` (an audit event, by action). The CLI, mail, portal and dashboard all read their words here.
"""

from __future__ import annotations

from datetime import date

LABELS: dict[str, dict[str, dict[str, str]]] = {
    "record_kind": {
        "zh-CN": {"stoppage_notice": "停产断供通知", "distributor_report": "配送企业书面反馈", "shortage_report": "医疗机构短缺直报"},
        "en": {"stoppage_notice": "stoppage notice", "distributor_report": "distributor report", "shortage_report": "shortage report"},
    },
    "kind": {
        "zh-CN": {"stoppage": "停产", "interruption": "断供", "reduction": "减产"},
        "en": {"stoppage": "production stopped", "interruption": "supply interrupted", "reduction": "production reduced"},
    },
    "kind_noun": {
        "zh-CN": {"stoppage": "停产", "interruption": "断供", "reduction": "减产"},
        "en": {"stoppage": "stoppage", "interruption": "supply interruption", "reduction": "production cut"},
    },
    "priority": {
        "zh-CN": {"negotiated": "国家谈判药品", "winning_bid": "集采中选药品", "shortage_list": "短缺药品清单", "other": "其他"},
        "en": {
            "negotiated": "nationally negotiated drug",
            "winning_bid": "centrally procured (winning bid)",
            "shortage_list": "on the shortage list",
            "other": "other",
        },
    },
    "supply": {
        "zh-CN": {"short": "短缺", "severe": "严重短缺", "resolved": "已恢复"},
        "en": {"short": "short", "severe": "severely short", "resolved": "resolved"},
    },
    "cause": {
        "zh-CN": {"supply": "供应短缺", "procurement": "采购原因", "other": "其他"},
        "en": {"supply": "supply", "procurement": "procurement (not ordered)", "other": "other"},
    },
    "obligation_state": {
        "zh-CN": {"open": "待报告", "overdue": "已逾期", "fulfilled": "已按时报告", "fulfilled_late": "逾期后已报告", "cancelled": "已撤销"},
        "en": {"open": "open", "overdue": "overdue", "fulfilled": "reported on time", "fulfilled_late": "reported late", "cancelled": "cancelled"},
    },
    "obligation_kind": {
        "zh-CN": {"report": "书面报告", "explanation": "情况说明"},
        "en": {"report": "written report", "explanation": "explanation"},
    },
    "case_state": {
        "zh-CN": {"open": "处理中", "regional": "区域性短缺", "escalated": "已上报省级", "resolved": "已解决"},
        "en": {"open": "open", "regional": "regional shortage", "escalated": "escalated to the province", "resolved": "resolved"},
    },
    "role": {
        "zh-CN": {"distributor": "配送企业", "hospital": "医疗机构", "insurance": "医疗保障局", "health": "卫生健康委员会", "operations": "运维"},
        "en": {"distributor": "distributor", "hospital": "hospital", "insurance": "healthcare security bureau", "health": "health commission", "operations": "operations"},
    },
    "calendar": {
        "zh-CN": {"official": "国务院公布的节假日安排", "override": "本地配置的节假日安排", "estimated": "估算的节假日安排（当年安排尚未公布，法定节假日及通常的调休休息日均按休息日计）"},
        "en": {"official": "the State Council holiday arrangement", "override": "a locally configured arrangement", "estimated": "an estimated arrangement (the year's is not yet published; statutory holidays and their usual bridging days count as rest days)"},
    },
    "step": {
        "zh-CN": {
            "receipt": "登记回执", "notice_opened": "辖区通报", "reminder": "到期提醒", "written_reminder": "书面提醒",
            "overdue_alert": "逾期预警", "interview_recommendation": "约谈建议", "province_escalation": "上报省级",
            "explanation_request": "情况说明要求", "regional_shortage": "区域性短缺预警", "regional_escalation": "上报省级",
            "late_report": "迟报通报", "false_shortage": "疑似假短缺提示", "deadline_changed": "期限调整通知",
        },
        "en": {
            "receipt": "receipt", "notice_opened": "notice to the region's bureaus", "reminder": "reminder before the deadline",
            "written_reminder": "formal written reminder", "overdue_alert": "overdue alert", "interview_recommendation": "interview recommendation",
            "province_escalation": "escalation to the province", "explanation_request": "request for an explanation",
            "regional_shortage": "regional shortage alert", "regional_escalation": "escalation to the province",
            "late_report": "late report", "false_shortage": "possible false shortage", "deadline_changed": "deadline changed",
        },
    },
    "event": {  # what an audit event of an obligation or case says happened, by its action
        "zh-CN": {
            "opened": "义务生成", "overdue": "已逾期", "fulfilled": "已按时报告", "fulfilled_late": "已迟报", "level_skipped": "跳过的提醒级别",
            "resolved": "案件已解决", "part_closed": "医疗机构部分已关闭", "regional": "构成区域性短缺", "deadline_moved": "截止时间调整",
            "deadline_recomputed": "截止时间重新计算", "region_changed": "地区变更", "notice_linked": "关联停产断供通知", "escalated": "已上报",
            "levels": "提醒级别", "held": "邮件暂缓（静默）", "inhibited": "邮件抑制", "opened_by_report": "由书面反馈生成", "cancelled": "已撤销",
        },
        "en": {
            "opened": "obligation opened", "overdue": "overdue", "fulfilled": "reported on time", "fulfilled_late": "reported late",
            "level_skipped": "reminder level skipped", "resolved": "case resolved", "part_closed": "a hospital's part closed",
            "regional": "became a regional shortage", "deadline_moved": "deadline moved", "deadline_recomputed": "deadline recomputed",
            "region_changed": "region changed", "notice_linked": "stoppage notice linked", "escalated": "escalated",
            "levels": "reminder levels", "held": "mail held (silence)", "inhibited": "mail inhibited",
            "opened_by_report": "opened by a written report", "cancelled": "cancelled",
        },
    },
    "quiet_kind": {
        "zh-CN": {"source": "数据来源", "distributor": "配送企业（邮件无法投递）", "sentinel": "哨点医疗机构"},
        "en": {"source": "source", "distributor": "distributor (mail undeliverable)", "sentinel": "sentinel hospital"},
    },
}

# Record fields whose value is a choice, and the label group each one shows (one table for both ways).
CHOICE_FIELDS: dict[str, str] = {"kind": "kind", "priority_class": "priority", "supply_status": "supply", "cause": "cause"}

# Other words clerks write for a choice: accepted as input, never shown.
SYNONYMS: dict[str, dict[str, str]] = {
    "kind": {"停产通知": "stoppage", "断供通知": "interruption", "减产通知": "reduction", "停供": "interruption"},
    "priority": {"国谈": "negotiated", "国谈药品": "negotiated", "国谈药": "negotiated", "集采": "winning_bid", "中选": "winning_bid",
                 "集采中选": "winning_bid", "短缺清单": "shortage_list"},
    "supply": {"已解决": "resolved"},
    "cause": {"供应": "supply", "采购": "procurement"},
}


def label(group: str, value: str, language: str = "zh-CN") -> str:
    """The words for `value` in `language` (Chinese when the language has none); the value itself when unknown."""
    table = LABELS[group]
    return table.get(language, table["zh-CN"]).get(value, value)


def choice_values(group: str) -> tuple[str, ...]:
    """The stored values of a choice, in the table's order."""
    return tuple(LABELS[group]["zh-CN"])


def accepted_words(group: str) -> dict[str, str]:
    """Every word accepted for a choice (case-insensitive) -> its value: the value, each label a mail or
    workbook shows (Chinese and English), and the synonyms."""
    words = {value.lower(): value for value in choice_values(group)}
    for labels in LABELS[group].values():
        words.update({text.lower(): value for value, text in labels.items()})
    words.update({text.lower(): value for text, value in SYNONYMS.get(group, {}).items()})
    return words


def named(name: str | None, code: str, language: str = "zh-CN") -> str:
    """A party as people read it: its name with the code in brackets (宁德市医院（H350902001）), or the code alone."""
    if not name or name == code:
        return code
    return f"{name} ({code})" if language == "en" else f"{name}（{code}）"


def zh_en(zh: str, en: str) -> str:
    """A line as operators and officers read it: the Chinese, then the English ("找不到该提醒 / no such alert")."""
    return f"{zh} / {en}"


def halves(text: str) -> tuple[str, str]:
    """The Chinese and the English of a "中文 / English" text; a text without " / " is both."""
    zh, sep, en = text.partition(" / ")
    return (zh, en) if sep else (text, text)


def joined(first: str, second: str, zh_sep: str = "：", en_sep: str = ": ") -> str:
    """Two "中文 / English" texts as one: the Chinese of both, then the English of both."""
    (zh1, en1), (zh2, en2) = halves(first), halves(second)
    return zh_en(f"{zh1}{zh_sep}{zh2}", f"{en1}{en_sep}{en2}")


def weekday_zh(day: date) -> str:
    """The day of the week as command output writes it: 周一 … 周日."""
    return "周" + "一二三四五六日"[day.weekday()]
