"""The first `make run` tells a true story: the sample inbox is dated relative to today."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from typing import Any, Callable

import pytest
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.cli import main
from shortage_watch.clock import FixedClock
from shortage_watch.mail.render import Renderer
from shortage_watch.settings import load_settings
from shortage_watch.store.tables import Alert, Obligation
from tests.intake.conftest import REPO, sample_directory_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("today", ["2026-12-01T10:00", "2024-10-08T09:00", "2027-02-01T09:00"])
def test_first_run_on_the_sample_inbox_is_a_true_story(today: str, write_config: Callable[..., Path], tmp_path: Path, capsys: Any) -> None:
    inbox = tmp_path / "inbox"
    config = write_config({
        "directory": sample_directory_settings(),
        "escalation": {"policy": str(REPO / "config" / "escalation.toml")},
        "sources": [{"name": "sample-inbox", "type": "inbox", "path": str(inbox)}],
    })
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "sample-inbox", str(inbox), "--now", today]) == 0
    written = capsys.readouterr().out.split()
    assert len(written) == 3 and all(Path(p).parent == inbox for p in written)
    for path in inbox.iterdir():
        os.utime(path, (path.stat().st_mtime - 60,) * 2)  # as `make run` back-dates them past the settle time
    assert main(["--config", str(config), "once", "--now", today]) == 0
    capsys.readouterr()

    app = App(load_settings(config, explicit=True), FixedClock(datetime.fromisoformat(today).replace(tzinfo=SHANGHAI)))
    try:
        with app.sessions() as session:
            obligations = session.scalars(select(Obligation)).all()
            rows = session.scalars(select(Alert)).all()
    finally:
        app.close()
    states = Counter(ob.state for ob in obligations)
    assert states == {"open": 3, "fulfilled": 1, "overdue": 1}, states
    templates = Counter(a.template for a in rows)
    # Receipts with deadlines ahead, the bureaus told, one honest overdue case (no interview, no province).
    assert templates["receipt"] == 3 and templates["notice_opened"] >= 3
    assert templates["written_reminder"] == 1 and templates["overdue_alert"] == 1
    assert not {"reminder", "interview_recommendation", "province_escalation", "late_report"} & set(templates)
    renderer = Renderer()
    for alert in rows:
        text = renderer.render(alert.template, alert.context, alert.language).text
        if alert.template == "receipt":
            assert "请立即" not in text and alert.context["overdue_working_days"] is None
        if alert.template in ("written_reminder", "overdue_alert"):
            assert alert.context["overdue_working_days"] == 2
            assert "逾期2个工作日" in text or "2 working day(s) overdue" in text
