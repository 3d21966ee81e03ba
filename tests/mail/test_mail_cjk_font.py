"""The screenshot check only proves a PNG of some size came out; Chinese text
drawn without a CJK font (tofu boxes) would pass it. Where Chromium renders mail, fontconfig
must offer a Chinese font, else the screenshots are unreadable."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed: no screenshots to read")
def test_a_chinese_font_is_there_for_the_mail_screenshots() -> None:
    assert shutil.which("fc-list"), "fontconfig (fc-list) missing: Chromium cannot find fonts"
    families = subprocess.run(["fc-list", ":lang=zh-cn", "family"], capture_output=True, text=True, timeout=30).stdout
    assert families.strip(), "no font covers zh-CN: install fonts-noto-cjk or the mail screenshots show boxes"
