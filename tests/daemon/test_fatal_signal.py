"""The running daemon under faults: a fatal signal from the operating system.

A SQLite file changed under a running daemon (made read-only, truncated, or its `-shm`
index reset by another process) can end it with SIGBUS when SQLite touches its
memory-mapped WAL index. Python cannot catch a real SIGBUS and carry on; what it can
do is say so: the daemon leaves a "Fatal Python error: Bus error" line and every
thread's stack in its log instead of vanishing without a word.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable

import pytest

from tests.daemon.conftest import start_daemon, wait_for


@pytest.mark.slow
@pytest.mark.parametrize("fatal", [signal.SIGBUS, signal.SIGSEGV], ids=["SIGBUS", "SIGSEGV"])
def test_a_daemon_killed_by_a_fatal_signal_leaves_a_log_line(
    sqlite_url: str, write_config: Callable[..., Path], tmp_path: Path, fatal: signal.Signals
) -> None:
    config = write_config({"database": {"url": sqlite_url}})
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path=log_path)
    try:
        wait_for(lambda: "running on" in log_path.read_text(encoding="utf-8"), 30, "the start line")
        os.kill(proc.pid, fatal)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    text = log_path.read_text(encoding="utf-8", errors="replace")
    # faulthandler writes the "Fatal Python error" line first, then walks every thread's
    # stack while those threads still run; that walk can itself fault, so the process may
    # end by SIGSEGV after a SIGBUS (seen once in CI). Either way it died of a fatal signal.
    assert proc.returncode in (-fatal, -signal.SIGSEGV)
    assert f"Fatal Python error: {'Bus error' if fatal == signal.SIGBUS else 'Segmentation fault'}" in text
