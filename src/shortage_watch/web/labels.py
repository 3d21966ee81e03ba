"""Words the portal shows: field labels, choices and states, Chinese and English."""

from __future__ import annotations

from shortage_watch.domain.labels import CHOICE_FIELDS, LABELS, halves, label
from shortage_watch.intake.columns import FIELDS

# Per record field, its values and their Chinese words, from the one table of labels.
CHOICES: dict[str, dict[str, str]] = {field: LABELS[group]["zh-CN"] for field, group in CHOICE_FIELDS.items()}

FIELD_LABELS: dict[str, str] = {key: zh for fields in FIELDS.values() for key, zh, _required in fields}
FIELD_LABELS["record_kind"] = "记录类型"

CHANNEL_LABELS = {
    "form": ("网页填报", "web form"),
    "upload": ("文件上传", "file upload"),
    "correction": ("更正", "correction"),
    "api": ("接口", "API"),
}


def pick(text: str | None, lang: str) -> str:
    """One side of a 'Chinese / English' text for `lang`; a text without ' / ' as it is."""
    if not text:
        return ""
    zh, en = halves(text)
    return en if lang == "en" else zh


def choice_label(field: str, value: str | None, lang: str) -> str:
    """A record field's choice in the reader's words (the one label table); other fields' values as they are."""
    if value is None:
        return ""
    if field not in CHOICE_FIELDS:
        return value
    return label(CHOICE_FIELDS[field], value, lang)


def field_label(key: str | None, lang: str) -> str:
    """How a column is named on the page: '通知日期 (notified_on)' in Chinese, the key in English."""
    if key is None:
        return ""
    zh = FIELD_LABELS.get(key)
    if lang == "en" or zh is None:
        return key
    return f"{zh}（{key}）"


def timeline_label(what: str, lang: str) -> str:
    """A portal timeline entry in words: an audit action ('overdue') or the mail of a ladder step ('mail:written_reminder')."""
    if what.startswith("mail:"):
        return ("mail: " if lang == "en" else "邮件：") + label("step", what.removeprefix("mail:"), lang)
    return label("event", what, lang)
