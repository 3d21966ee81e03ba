"""Fixtures for intake tests: an App on the parametrized database with a recording listener."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.settings import Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config" / "examples"
# 2024-10-08 10:00 in Beijing: the first working day after the National Day holiday.
NOW = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)

STOPPAGE_HEADER_ZH = "通知编号,生产企业,药品编码,药品名称,规格,类型,配送企业编码,配送企业名称,通知日期,预计恢复日期,原因,药品类别"


class RecordingListener:
    """Records what ingest reports: (kind, row id, version, previous)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, dict | None]] = []

    def record_stored(self, session: Any, kind: str, row: Any, previous: dict | None, now: datetime) -> None:
        assert row.id is not None  # flushed before we are told
        self.calls.append((kind, row.id, row.version, previous))


@dataclass
class IntakeApp(App):
    """The real App with the record listener swapped for a recording one."""

    listener: Any = field(default_factory=RecordingListener)

    @property
    def record_listener(self) -> Any:  # type: ignore[override]
        return self.listener


@pytest.fixture
def make_app(db_url: str, tmp_path: Path) -> Callable[..., IntakeApp]:
    apps: list[IntakeApp] = []

    def make(**sections: Any) -> IntakeApp:
        data: dict[str, Any] = {"database": {"url": db_url}, "calendar": {"overrides_dir": str(tmp_path / "cal")}}
        data.update(sections)
        app = IntakeApp(Settings(**data), clock=FixedClock(NOW))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., IntakeApp]) -> IntakeApp:
    return make_app()


def sample_directory_settings() -> dict[str, str]:
    return {name: str(EXAMPLES / f"{name}.csv") for name in ("regions", "contacts", "distributors", "hospitals")}


def notice_row(i: int, **overrides: str) -> list[str]:
    values = {
        "notice_id": f"TZ-{i:05d}", "manufacturer": "某某制药股份有限公司", "product_code": f"XJ{i:08d}",
        "product_name": "阿莫西林胶囊", "specification": "0.25g*24粒", "kind": "停产", "distributor_code": "D350901",
        "distributor_name": "宁德国药医药配送有限公司", "notified_on": "2024/9/27", "expected_resume_on": "",
        "reason": "原料药供应不足", "priority_class": "集采中选",
    }
    values.update(overrides)
    return list(values.values())
