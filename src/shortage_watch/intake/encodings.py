"""Text files as Chinese offices send them: UTF-8, UTF-8 with BOM, GB18030/GBK, or UTF-16 with BOM."""

from __future__ import annotations

import codecs
import re
from typing import Iterator


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


DECODE_PIECE = 1 << 20  # bytes decoded at a time: the text of a large file is never held whole


def text_encoding(content: bytes) -> str:
    """The codec `content` decodes with exactly, checked a piece at a time; raises UnusableFile when none fits
    or the text holds binary content."""
    # The codecs drop a BOM themselves.
    if content.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "gb18030")
    for codec in candidates:
        binary = False
        try:
            for piece in decoded_pieces(content, codec):
                if codec == "gb18030" and _IMPLAUSIBLE.search(piece):
                    break
                binary = binary or _BINARY.search(piece) is not None
            else:
                # Binary content refuses the file only once the codec decodes all of it (else the next is tried).
                if binary:
                    raise UnusableFile("文件不是文本表格（含有二进制内容） / not a text table (binary content)")
                return codec
        except UnicodeDecodeError:
            continue
    raise UnusableFile(UNDECODABLE)


def decoded_pieces(content: bytes, codec: str) -> Iterator[str]:
    """The text of `content` in `codec`, a piece of about `DECODE_PIECE` bytes at a time (strict: a byte the
    codec cannot read raises UnicodeDecodeError)."""
    decoder = codecs.getincrementaldecoder(codec)()
    whole = memoryview(content)
    for start in range(0, len(content), DECODE_PIECE):
        yield decoder.decode(whole[start:start + DECODE_PIECE])
    yield decoder.decode(b"", final=True)


def decode_text(content: bytes) -> tuple[str, str]:
    """The text and the encoding it was found in (`text_encoding`)."""
    codec = text_encoding(content)
    return content.decode(codec), codec


# One line as `io.StringIO(text, newline="")` iterates it: up to and including its \r\n, \r or \n.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def decoded_lines(content: bytes, codec: str) -> Iterator[str]:
    """The lines of `content` decoded with `codec`, each with its ending, as `io.StringIO(text, newline="")`
    gives them; decoded a piece at a time, so only the piece in hand is held as text."""
    carry = ""  # the start of a line the next piece ends (or a \r its \n may follow)
    for piece in decoded_pieces(content, codec):
        text = carry + piece
        end = 0
        for match in _LINE.finditer(text):
            if match.end() == len(text) and not match.group().endswith("\n"):
                break
            yield match.group()
            end = match.end()
        carry = text[end:]
    yield from (match.group() for match in _LINE.finditer(carry))
