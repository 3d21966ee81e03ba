"""Ledger fixtures: an App on a real database with a small directory of Fujian and Chongqing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.domain.directory import Contact, Directory, Party, Region
from shortage_watch.settings import Settings
from shortage_watch.store.tables import Alert, DistributorReport, ShortageReport, StoppageNotice

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "config" / "escalation.toml"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """An Asia/Shanghai instant from 'YYYY-MM-DDTHH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def sample_directory() -> Directory:
    """Fujian (province → 宁德市 → 蕉城区, 福安市 without bureaus) and Chongqing (district under the municipality)."""
    regions = [
        Region("350000", "福建省", None, "province"),
        Region("350900", "宁德市", "350000", "city"),
        Region("350902", "蕉城区", "350900", "county"),
        Region("350981", "福安市", "350900", "county"),
        Region("500000", "重庆市", None, "province"),
        Region("500101", "万州区", "500000", "county"),
    ]
    contacts = [
        Contact("350902", "insurance", ("ybj@jiaocheng.example",), "蕉城区医疗保障局"),
        Contact("350902", "health", ("wjj@jiaocheng.example",), "蕉城区卫生健康局"),
        Contact("350900", "insurance", ("ybj@ningde.example",), "宁德市医疗保障局"),
        Contact("350900", "health", ("wjw@ningde.example",), "宁德市卫生健康委员会", delivery="digest"),
        Contact("350000", "insurance", ("ybj@fujian.example",), "福建省医疗保障局"),
        Contact("350000", "health", ("wjw@fujian.example",), "福建省卫生健康委员会"),
        Contact("500000", "insurance", ("ybj@cq.example",), "重庆市医疗保障局"),
        Contact("500000", "health", ("wjw@cq.example",), "重庆市卫生健康委员会"),
    ]
    distributors = [
        Party("D1", "宁德医药配送有限公司", "350902", ("d1@dist.example",)),
        Party("D2", "万州医药物流", "500101", ("d2@dist.example",), "en"),
        Party("D3", "无邮箱配送", "350981", ()),
    ]
    hospitals = [Party(f"H{i}", f"宁德市第{i}医院", "350902" if i % 2 else "350981", ()) for i in range(1, 6)]
    hospitals.append(Party("H9", "万州区人民医院", "500101", ()))
    return Directory.build(regions, contacts, distributors, hospitals)


@dataclass
class LedgerApp(App):
    """The App with a directory given by the test (the real one loads files)."""

    directory: Any = None


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., LedgerApp]:
    apps: list[LedgerApp] = []

    def make(db_url: str, *, now: str = "2024-09-27T10:00", directory: Any = None, **escalation: Any) -> LedgerApp:
        settings = Settings(
            database={"url": db_url},
            calendar={"overrides_dir": str(tmp_path / "no-overrides")},
            escalation={"policy": str(POLICY), **escalation},
            directory={"operations_email": None},
            mail={"file_dir": str(tmp_path / "mail")},
        )
        app = LedgerApp(settings, FixedClock(at(now)), directory=directory or sample_directory())
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


NOTICE = dict(
    notice_id="N-2024-001",
    distributor_code="D1",
    distributor_name="宁德医药配送有限公司",
    manufacturer="某某制药",
    product_code="XA01",
    product_name="注射用头孢曲松钠",
    specification="1g",
    kind="stoppage",
    notified_on=date(2024, 9, 27),
    region_code="350902",
    priority_class=None,
)


def store_notice(app: LedgerApp, now: datetime, **fields: Any) -> int:
    """Store a notice row and tell the ledger, in one transaction (as ingest does)."""
    data = {**NOTICE, **fields}
    with app.sessions.begin() as session:
        row = StoppageNotice(**data, version=1, source="test", received_at=now, updated_at=now)
        session.add(row)
        session.flush()
        app.record_listener.record_stored(session, "stoppage_notice", row, None, now)
        return row.id


def revise_notice(app: LedgerApp, pk: int, now: datetime, **fields: Any) -> None:
    with app.sessions.begin() as session:
        row = session.get(StoppageNotice, pk)
        previous = {"notified_on": row.notified_on.isoformat()}
        for key, value in fields.items():
            setattr(row, key, value)
        row.version += 1
        row.updated_at = now
        session.flush()
        app.record_listener.record_stored(session, "stoppage_notice", row, previous, now)


def store_report(app: LedgerApp, now: datetime, **fields: Any) -> int:
    data = dict(report_id="R-1", distributor_code="D1", notice_id="N-2024-001", submitted_at=now)
    data.update(fields)
    with app.sessions.begin() as session:
        row = DistributorReport(**data, version=1, source="test", received_at=now, updated_at=now)
        session.add(row)
        session.flush()
        app.record_listener.record_stored(session, "distributor_report", row, None, now)
        return row.id


def store_shortage(app: LedgerApp, now: datetime, **fields: Any) -> int:
    data = dict(
        report_id="S-1",
        hospital_code="H1",
        hospital_name="宁德市第1医院",
        region_code="350902",
        product_code="XB02",
        product_name="硝酸甘油片",
        reported_on=now.astimezone(SHANGHAI).date(),
        supply_status="short",
        distributor_code=None,
        cause="supply",
    )
    data.update(fields)
    with app.sessions.begin() as session:
        row = ShortageReport(**data, version=1, source="test", received_at=now, updated_at=now)
        session.add(row)
        session.flush()
        app.record_listener.record_stored(session, "shortage_report", row, None, now)
        return row.id


def alert_keys(app: LedgerApp) -> set[str]:
    with app.sessions() as session:
        return set(session.scalars(select(Alert.dedup_key)).all())


def alerts(app: LedgerApp) -> list[Alert]:
    with app.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)).all())


@pytest.fixture
def scenario(tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> Any:
    """Settings with a directory on disk and a migrated SQLite database: drive it with ingest and the CLI."""
    from tests.ledger.scenario import make_scenario

    return make_scenario(tmp_path, write_config, capsys)
