"""The zh-CN written reminder, daily digest and monthly summary render to PNG in headless
Chromium (skipped where Debian's `chromium` is not installed; CJK needs fonts-noto-cjk)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from render_screenshots import GROUPED_SHOTS, PNG_MAGIC, SHOTS, find_chromium, render_grouped_screenshots, render_screenshots  # noqa: E402

CHROMIUM = find_chromium()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium fonts-noto-cjk)")
def test_mail_html_renders_to_full_size_pngs(tmp_path):
    pngs = render_screenshots(tmp_path, CHROMIUM)
    assert [p.name for p in pngs] == [f"{t}.{lang}.png" for t, lang in SHOTS]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert (width, height) == (900, 1400)
        assert len(data) > 40_000  # a page of text, not a blank one


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium fonts-noto-cjk)")
def test_grouped_bureau_message_and_grouped_receipt_render_to_pngs(tmp_path):
    pngs = render_grouped_screenshots(tmp_path, CHROMIUM)
    assert [p.name for p in pngs] == [f"{name}.png" for name, _, _ in GROUPED_SHOTS]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and struct.unpack(">II", data[16:24]) == (900, 2000)
        assert len(data) > 60_000  # a long table, not a blank page
