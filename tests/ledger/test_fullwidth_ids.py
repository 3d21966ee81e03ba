"""Ids typed with a Chinese input method's full-width forms (Ｄ１, ＴＺ－００１) are the same ids as their
ASCII forms (SQLite and PostgreSQL): the notice's distributor is the directory's, and the report the
distributor files later in ASCII fulfils the obligation the notice opened."""

from __future__ import annotations

from sqlalchemy import select

from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.tables import Obligation, StoppageNotice
from tests.ledger.conftest import at

NOTICE_HEADER = "通知编号,生产企业,药品编码,药品名称,类型,配送企业编码,通知日期,行政区划代码\n"


def test_full_width_ids_are_the_ascii_ids_a_later_report_uses(db_url, make_app):
    app = make_app(db_url, now="2024-10-08T10:00")
    notices = (NOTICE_HEADER + "ＴＺ－２０２４－００１,某某制药,ＸＡ０１,注射用头孢曲松钠,停产,Ｄ１,2024-09-27,３５０９０２\n").encode("gbk")
    result = ingest_payload(app.ingest_deps(), source="inbox", name="通知.csv", content=notices, kind="auto", now=at("2024-10-08T10:00"))
    assert (result.accepted, result.errors, result.warnings) == (1, [], [])  # D1 is in the directory: no warning
    with app.sessions() as session:
        stored = session.scalars(select(StoppageNotice)).one()
        assert (stored.notice_id, stored.distributor_code, stored.product_code, stored.region_code) == ("TZ-2024-001", "D1", "XA01", "350902")

    report = ("反馈编号,配送企业编码,通知编号,提交时间\nFK-1,D1,TZ-2024-001,2024-10-09 09:00\n").encode("gbk")
    result = ingest_payload(app.ingest_deps(), source="inbox", name="反馈.csv", content=report, kind="auto", now=at("2024-10-09T09:30"))
    assert (result.accepted, result.errors) == (1, [])
    with app.sessions() as session:
        (obligation,) = session.scalars(select(Obligation)).all()
    assert (obligation.party_code, obligation.state) == ("D1", "fulfilled")
