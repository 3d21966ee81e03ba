"""The collapsed overdue message and the receipt for a past deadline, from real ledger state, in headless Chromium.

Skipped where Debian's `chromium` is not installed (CJK needs fonts-noto-cjk). The PNGs go to a scratch
folder; `docs/screenshots/` holds copies that were looked at.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from shortage_watch.mail.render import Renderer
from shortage_watch.store.db import make_engine, upgrade_schema
from tests.ledger.conftest import POLICY, alerts, at, store_notice

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from render_screenshots import PNG_MAGIC, find_chromium, screenshot  # noqa: E402

CHROMIUM = find_chromium()


def migrated(url: str) -> str:
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium fonts-noto-cjk)")
def test_collapsed_overdue_message_and_late_receipt_render_in_chromium(make_app, sqlite_url, tmp_path):
    # A 2024 notice registered in 2026 on the default ladder: the county bureau's one overdue message.
    collapsed = make_app(sqlite_url)
    store_notice(collapsed, at("2026-03-10T10:00"))
    # Registered three working days late on a ladder whose distributor hears only the receipt.
    policy = tmp_path / "receipt-only.toml"
    policy.write_text(POLICY.read_text(encoding="utf-8").replace(
        'name = "written_reminder"\noffset = 0\nrecipients = ["distributor"]', 'name = "written_reminder"\noffset = 0\nrecipients = ["operations"]'
    ), encoding="utf-8")
    receipt_only = make_app(migrated(f"sqlite:///{tmp_path / 'receipt.db'}"), policy=str(policy))
    store_notice(receipt_only, at("2024-10-14T10:00"))
    overdue = next(a for a in alerts(collapsed) if a.template == "overdue_alert")
    receipt = next(a for a in alerts(receipt_only) if a.template == "receipt")
    renderer = Renderer()
    pngs = []
    for name, alert in (("overdue_alert.collapsed", overdue), ("receipt.past_deadline", receipt)):
        html = tmp_path / f"{name}.zh-CN.html"
        html.write_text(renderer.render(alert.template, alert.context, "zh-CN").html, encoding="utf-8")
        png = tmp_path / f"{name}.zh-CN.png"
        screenshot(CHROMIUM, html, png)
        pngs.append(png)
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert struct.unpack(">II", data[16:24]) == (900, 1400)
        assert len(data) > 40_000  # a page of text, not a blank one
