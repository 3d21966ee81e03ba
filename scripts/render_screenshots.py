"""Render mail HTML to PNG with headless Chromium, to check it reads well (no mojibake).

    python scripts/render_screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Needs Debian's `chromium` and a CJK font (`fonts-noto-cjk`). Renders, with the sample
data of `mail preview`: the zh-CN written reminder (书面提醒, the overdue reminder), the
zh-CN daily digest and the zh-CN monthly summary; and two grouped messages: a county bureau's
12 overdue alerts in one mail, and a distributor's one receipt for a 30-row file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from shortage_watch.mail.render import Renderer
from shortage_watch.mail.samples import sample_context, sample_grouped_context

SHOTS = (("written_reminder", "zh-CN"), ("digest", "zh-CN"), ("monthly_summary", "zh-CN"))
# Grouped messages: (file name, item template, items).
GROUPED_SHOTS = (("grouped_overdue_alert.zh-CN", "overdue_alert", 12), ("grouped_receipt.zh-CN", "receipt", 30))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(chromium: str, html: Path, png: Path, size: str = "900,1400", timeout: float = 90) -> None:
    """One headless Chromium screenshot of `html`; raises RuntimeError when no PNG came out."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size}", html.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, timeout=timeout)
    if not png.is_file() or png.read_bytes()[:8] != PNG_MAGIC:
        raise RuntimeError(f"chromium wrote no PNG for {html} (exit {done.returncode}): {done.stderr.decode(errors='replace')[-500:]}")


def render_screenshots(out_dir: Path, chromium: str) -> list[Path]:
    """Write `<template>.<lang>.png` for each of SHOTS into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = Renderer()
    written = []
    with tempfile.TemporaryDirectory() as pages:
        for template, lang in SHOTS:
            html = Path(pages) / f"{template}.{lang}.html"
            html.write_text(renderer.render(template, sample_context(template), lang).html, encoding="utf-8")
            png = out_dir / f"{template}.{lang}.png"
            screenshot(chromium, html, png)
            written.append(png)
    return written


def render_grouped_screenshots(out_dir: Path, chromium: str) -> list[Path]:
    """Write each of GROUPED_SHOTS as PNG into out_dir (taller pages: the tables are long); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = Renderer()
    written = []
    with tempfile.TemporaryDirectory() as pages:
        for name, item_template, count in GROUPED_SHOTS:
            html = Path(pages) / f"{name}.html"
            html.write_text(renderer.render("grouped", sample_grouped_context(item_template, count), "zh-CN").html, encoding="utf-8")
            png = out_dir / f"{name}.png"
            screenshot(chromium, html, png, size="900,2000")
            written.append(png)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", help="path to the browser (default: chromium on PATH)")
    args = parser.parse_args(argv)
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print("chromium not found: apt-get install chromium fonts-noto-cjk", file=sys.stderr)
        return 2
    try:
        for png in render_screenshots(args.out, chromium) + render_grouped_screenshots(args.out, chromium):
            print(f"wrote {png} ({png.stat().st_size} bytes)")
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"screenshot failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
