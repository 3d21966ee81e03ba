"""`shortage-watch demo`: the National Day scenario on a simulated clock, mails left in a folder."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Callable

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first

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
    friday = lines.index(next(line for line in lines if line.startswith("2024-09-27 周五 Fri 10:00 (工作日 working day)")))
    assert {"report@d1.example.com", "supply@d2.example.com", "office@d3.example.com"} <= {
        line.rsplit("→ ", 1)[-1] for line in lines[friday + 1 : friday + 13] if "mailed receipt" in line
    }
    # The holiday chases nobody; the make-up Sunday counts as a working day.
    assert "2024-10-03 周四 Thu 09:00 (休息日 rest day)" in out and "2024-09-29 周日 Sun 09:00 (工作日 working day)" in out
    holiday = lines.index(next(line for line in lines if line.startswith("2024-10-03")))
    assert lines[holiday + 1].strip() == "没有邮件 no mail"
    # One on time, one late (on the make-up Saturday), one silent up to the city and the province.
    assert lines[lines.index("结果 / Outcome:") + 1] == "    配送企业 distributor D1: 已按时报告 fulfilled"
    assert "配送企业 distributor D2: 逾期后已报告 fulfilled_late, 迟 2 个工作日 2 working day(s) late" in out
    assert "配送企业 distributor D3: 已逾期 overdue" in out
    assert "interview_recommendation   → ybj@ningde.example.org" in out
    assert "regional_shortage          → ybj@ningde.example.org" in out
    assert "regional_escalation        → ybj@fujian.example.org" in out
    # The mails are in the folder, and the summary says how many and where.
    mails = sorted(mail_dir.glob("*.eml"))
    assert not (mail_dir / "stale.eml").exists()
    assert f"{len(mails)} 封邮件已写入 {mail_dir.resolve()} / {len(mails)} mail(s) written to {mail_dir.resolve()}" in out
    assert len(mails) == out.count("    发出 mailed ")
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["To"] and message["Subject"]
    # Progress went to stderr, one line per step when not a terminal.
    assert "demo [####################] 11/11" in captured.err


def test_demo_without_a_policy_file_says_what_to_do(write_config: Callable[..., Path], tmp_path: Path, capsys) -> None:
    config = write_config({"escalation": {"policy": str(tmp_path / "missing.toml")}})
    assert main(["--config", str(config), "demo", "--mail-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "escalation policy" in err and "missing.toml" in err and "Traceback" not in err
    assert_chinese_first(err, "演示无法运行", "escalation policy ")
