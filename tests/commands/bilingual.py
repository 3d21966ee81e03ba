"""What every human-readable line of a command promises: the Chinese first, the English after it."""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^shortage-watch(?: [\w-]+)*: error: ")


def assert_chinese_first(line: str, zh: str, en: str) -> None:
    """`line` is one line (a `shortage-watch …: error:` tag aside) holding `zh`, Chinese words, before `en`."""
    text = _PREFIX.sub("", line.strip())
    assert "\n" not in text, line
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), zh
    assert zh in text and en in text, line
    assert text.index(zh) < text.index(en), f"English first: {line}"
