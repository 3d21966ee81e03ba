"""What every human-readable line of a command promises: the Chinese first, the English after it."""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^shortage-watch(?: [\w-]+)*: error: ")


def assert_chinese_first(line: str, zh: str, en: str) -> None:
    """`line` (one line, a `shortage-watch …: error:` tag aside) opens in Chinese, holds `zh`, then `en` after it."""
    text = _PREFIX.sub("", line.strip())
    assert "\n" not in text, line
    assert zh in text and en in text, line
    assert text.index(zh) < text.index(en), line
    first = next(ch for ch in text if ch.isalpha())  # digits, dates and punctuation may come before the words
    assert "\u4e00" <= first <= "\u9fff", f"opens in English: {line}"
