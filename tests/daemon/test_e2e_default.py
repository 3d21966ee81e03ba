"""First run: `shortage-watch run` on the embedded default mails the sample inbox's alerts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, daemon_env, start_daemon, stop_daemon, wait_for

pytestmark = pytest.mark.slow


def test_run_on_the_embedded_default_mails_the_sample_inbox_and_stops_on_sigterm(tmp_path: Path) -> None:
    # What `make run` does, in a scratch working directory: the shipped config as is
    # (SQLite in var/, the file mail transport into var/mail/, the sample directory),
    # and the sample inbox written into var/inbox, dated relative to today.
    shutil.copytree(REPO / "config", tmp_path / "config")
    sample = subprocess.run(
        [sys.executable, "-m", "shortage_watch", "sample-inbox", "var/inbox"],
        cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60,
    )
    assert sample.returncode == 0, sample.stderr
    samples = sorted(p.name for p in (tmp_path / "var" / "inbox").iterdir() if p.is_file())
    assert len(samples) == 3
    for path in (tmp_path / "var" / "inbox").iterdir():
        os.utime(path, (path.stat().st_mtime - 60,) * 2)  # as `make run` back-dates them past the settle time
    upgrade = subprocess.run(
        [sys.executable, "-m", "shortage_watch", "db", "upgrade"],
        cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr

    config = tmp_path / "config" / "shortage_watch.toml"
    proc = start_daemon(config, cwd=tmp_path, log_path=tmp_path / "daemon.log")
    mail_dir = tmp_path / "var" / "mail"
    try:
        mails = wait_for(lambda: sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else [], 60, "mail in var/mail")
    finally:
        code, seconds = stop_daemon(proc, signal.SIGTERM)
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert code == 0, log
    assert seconds < 10
    assert mails and all(m.stat().st_size > 0 for m in mails)
    first = mails[0].read_text(encoding="utf-8", errors="replace")
    assert "Message-ID:" in first or "Message-Id:" in first
    assert "Traceback" not in log
    # The inbox files were taken in (archived), not left to be read again.
    assert not any((tmp_path / "var" / "inbox" / name).exists() for name in samples)
