"""Text files as Chinese offices send them: UTF-8, UTF-8 with BOM, GB18030/GBK, or UTF-16 with BOM."""

from __future__ import annotations

import codecs
import re


class UnusableFile(Exception):
    """The file as a whole cannot be used (undecodable, not a table, too large); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


UNDECODABLE = (
    "文件编码无法识别（支持 UTF-8、带 BOM 的 UTF-8、GB18030/GBK） / "
    "cannot decode the file as UTF-8, UTF-8 with BOM or GB18030/GBK"
)
# Binary content: NUL and other C0 controls never appear in a spreadsheet export.
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
# GB18030's four-byte sequences reach private-use and rare planes that GBK text never
# produces; finding them means the bytes were not GBK, so we refuse rather than guess.
_IMPLAUSIBLE = re.compile("[\ue000-\uf8ff\U00010000-\U0010ffff]")


def decode_text(content: bytes) -> tuple[str, str]:
    """The text and the encoding it was found in; raises UnusableFile when none fits exactly."""
    if content.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", content[len(codecs.BOM_UTF8):], "utf-8")]
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", content, "utf-16")]
    else:
        candidates = [("utf-8", content, "utf-8"), ("gb18030", content, "gb18030")]
    for label, data, codec in candidates:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "gb18030" and _IMPLAUSIBLE.search(text):
            continue
        if _BINARY.search(text):
            raise UnusableFile("文件不是文本表格（含有二进制内容） / not a text table (binary content)")
        return text, label
    raise UnusableFile(UNDECODABLE)
