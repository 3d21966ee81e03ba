"""A directory on disk, real ingestion and the real CLI: the harness of the scenario tests."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.cli import main
from shortage_watch.clock import FixedClock
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.settings import load_settings
from shortage_watch.store.tables import Obligation
from tests.ledger.conftest import POLICY, at


REGIONS = """code,name,parent_code,level
350000,福建省,,province
350900,宁德市,350000,city
350902,蕉城区,350900,county
350981,福安市,350900,county
500000,重庆市,,province
500101,万州区,500000,county
"""
CONTACTS = """region_code,role,email,name,delivery
350902,insurance,ybj@jiaocheng.example,蕉城区医疗保障局,single
350902,health,wjj@jiaocheng.example,蕉城区卫生健康局,single
350900,insurance,ybj@ningde.example,宁德市医疗保障局,single
350900,health,wjw@ningde.example,宁德市卫生健康委员会,digest
350000,insurance,ybj@fujian.example,福建省医疗保障局,single
350000,health,wjw@fujian.example,福建省卫生健康委员会,single
500000,insurance,ybj@cq.example,重庆市医疗保障局,single
500000,health,wjw@cq.example,重庆市卫生健康委员会,single
"""
DISTRIBUTORS = """code,name,region_code,email
D1,宁德医药配送有限公司,350902,d1@dist.example
D2,万州医药物流,500101,d2@dist.example
D3,无邮箱配送,350981,
"""
HOSPITALS = """code,name,region_code,email
H1,宁德市第一医院,350902,
H2,福安市医院,350981,
H3,蕉城区医院,350902,
"""


def notice(notice_id: str, distributor: str, product: str = "XA01") -> dict[str, Any]:
    return {
        "record_kind": "stoppage_notice",
        "notice_id": notice_id,
        "manufacturer": "某某制药",
        "product_code": product,
        "product_name": "注射用头孢曲松钠",
        "kind": "stoppage",
        "distributor_code": distributor,
        "notified_on": "2024-09-27",
    }


def shortage(report_id: str, hospital: str, reported_on: str) -> dict[str, Any]:
    return {
        "record_kind": "shortage_report",
        "report_id": report_id,
        "hospital_code": hospital,
        "product_code": "XB02",
        "product_name": "硝酸甘油片",
        "reported_on": reported_on,
        "supply_status": "short",
        "cause": "supply",
    }


class Scenario:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.seen: set[str] = set()

    def app(self, now: datetime) -> App:
        return App(load_settings(self.config, explicit=True), FixedClock(now))

    def ingest(self, now: datetime, *records: dict[str, Any]) -> None:
        app = self.app(now)
        try:
            result = ingest_payload(app.ingest_deps(), source="test", name=f"{now:%Y%m%d%H%M}.json",
                                    content=json.dumps({"records": list(records)}).encode(), kind="auto", now=now)
        finally:
            app.close()
        assert result.status == "accepted", result.errors

    def once(self, now: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
        capsys.readouterr()
        code = main(["--config", str(self.config), "once", "--now", now, "--json"])
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)

    def keys(self) -> set[str]:
        app = self.app(at("2024-09-27T00:00"))
        try:
            with app.sessions() as session:
                from shortage_watch.store.tables import Alert

                return set(session.scalars(select(Alert.dedup_key)).all())
        finally:
            app.close()

    def new(self) -> set[str]:
        """Alert keys written since the last call."""
        current = self.keys()
        fresh = current - self.seen
        self.seen = current
        return fresh

    def obligation_ids(self) -> dict[str, int]:
        app = self.app(at("2024-09-27T00:00"))
        try:
            with app.sessions() as session:
                return {ob.subject_key: ob.id for ob in session.scalars(select(Obligation)).all()}
        finally:
            app.close()


def make_scenario(tmp_path: Path, write_config, capsys) -> Scenario:
    files = {}
    for name, text in (("regions", REGIONS), ("contacts", CONTACTS), ("distributors", DISTRIBUTORS), ("hospitals", HOSPITALS)):
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        files[name] = str(path)
    config = write_config({"escalation": {"policy": str(POLICY)}, "directory": files})
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    return Scenario(config)
