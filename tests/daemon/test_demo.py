"""`shortage-watch demo`: the National Day scenario on a simulated clock, mails left in a folder."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Callable

from shortage_watch.cli import main

from .conftest import REPO


def test_demo_prints_the_timeline_and_leaves_the_mails(
    write_config: Callable[..., Path], tmp_path: Path, capsys
) -> None:
    config = write_config({"escalation": {"policy": str(REPO / "config" / "escalation.toml")}})
    mail_dir = tmp_path / "demo-mail"
    mail_dir.mkdir()
    (mail_dir / "stale.eml").write_text("from an earlier run")

    assert main(["--config", str(config), "demo", "--mail-dir", str(mail_dir)]) == 0
    captured = capsys.readouterr()
    out = captured.out

    lines = out.splitlines()
    # The notice on the Friday before National Day: receipts to the three distributors.
    friday = lines.index(next(line for line in lines if line.startswith("2024-09-27 Fri 10:00 (working day)")))
    assert {"report@d1.example.com", "supply@d2.example.com", "office@d3.example.com"} <= {
        line.rsplit("→ ", 1)[-1] for line in lines[friday + 1 : friday + 13] if "mailed receipt" in line
    }
    # The holiday chases nobody; the make-up Sunday counts as a working day.
    assert "2024-10-03 Thu 09:00 (rest day)" in out and "2024-09-29 Sun 09:00 (working day)" in out
    holiday = lines.index(next(line for line in lines if line.startswith("2024-10-03")))
    assert lines[holiday + 1].strip() == "no mail"
    # One on time, one late (on the make-up Saturday), one silent up to the city and the province.
    assert "distributor D1: fulfilled" in out
    assert "distributor D2: fulfilled_late, 2 working day(s) late" in out
    assert "distributor D3: overdue" in out
    assert "interview_recommendation   → ybj@ningde.example.org" in out
    assert "regional_shortage          → ybj@ningde.example.org" in out
    assert "regional_escalation        → ybj@fujian.example.org" in out
    # The mails are in the folder, and the summary says how many and where.
    mails = sorted(mail_dir.glob("*.eml"))
    assert not (mail_dir / "stale.eml").exists()
    assert f"{len(mails)} mail(s) written to {mail_dir.resolve()}" in out
    assert len(mails) == out.count("    mailed ")
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["To"] and message["Subject"]
    # Progress went to stderr, one line per step when not a terminal.
    assert "demo [####################] 11/11" in captured.err


def test_demo_without_a_policy_file_says_what_to_do(write_config: Callable[..., Path], tmp_path: Path, capsys) -> None:
    config = write_config({"escalation": {"policy": str(tmp_path / "missing.toml")}})
    assert main(["--config", str(config), "demo", "--mail-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "escalation policy" in err and "missing.toml" in err and "Traceback" not in err
