"""Ledger writes: archived before parsing, idempotent, versioned, one transaction per file."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from shortage_watch.services import ingest as ingest_module
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.tables import (
    DistributorReport,
    RawPayload,
    RawReceipt,
    RecordVersion,
    ShortageReport,
    StoppageNotice,
)
from tests.intake.conftest import NOW, STOPPAGE_HEADER_ZH, notice_row, sample_directory_settings

BAD_ROWS = {  # field -> how a row breaks it
    "notified_on": {"notified_on": "2024-10-09"},
    "kind": {"kind": "停止"},
    "notice_id": {"notice_id": ""},
    "product_code": {"product_code": "X" * 65},
    "expected_resume_on": {"expected_resume_on": "2024-01-01"},
    "priority_class": {"priority_class": "普通"},
}


def thousand_rows_with_37_bad() -> tuple[bytes, dict[int, str]]:
    rng = random.Random(37)
    bad_indexes = sorted(rng.sample(range(1000), 37))
    lines = ["停产断供通知登记表", STOPPAGE_HEADER_ZH]
    expected: dict[int, str] = {}
    fields = list(BAD_ROWS)
    for i in range(1000):
        if i in bad_indexes:
            field = fields[len(expected) % len(fields)]
            lines.append(",".join(notice_row(i, **BAD_ROWS[field])))
            expected[i + 3] = field  # title row, header row, then data from row 3
        else:
            lines.append(",".join(notice_row(i)))
    return ("\r\n".join(lines) + "\r\n").encode("gbk"), expected


def count(session, table) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(table))


def test_1000_rows_with_37_bad_accepts_963_and_reports_each_precisely(app) -> None:  # type: ignore[no-untyped-def]
    content, expected = thousand_rows_with_37_bad()
    result = ingest_payload(app.ingest_deps(), source="inbox", name="big.csv", content=content, kind="auto", now=NOW)
    assert (result.accepted, result.duplicates, result.rejected, result.status) == (963, 0, 37, "partial")
    assert {(e["row"], e["field"]) for e in result.errors} == set(expected.items())
    assert len(result.errors) == 37
    assert all(" / " in e["reason"] for e in result.errors)
    with app.sessions() as session:
        assert count(session, StoppageNotice) == 963
        receipt = session.scalars(select(RawReceipt)).one()
        assert (receipt.status, receipt.accepted, receipt.rejected) == ("partial", 963, 37)
        assert len(receipt.errors) == 37
    assert len(app.listener.calls) == 963


def test_the_same_file_twice_adds_nothing_but_a_receipt(app) -> None:  # type: ignore[no-untyped-def]
    content, _ = thousand_rows_with_37_bad()
    ingest_payload(app.ingest_deps(), source="inbox", name="big.csv", content=content, kind="auto", now=NOW)
    calls = len(app.listener.calls)
    again = ingest_payload(app.ingest_deps(), source="inbox", name="big.csv", content=content, kind="auto", now=NOW)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 963, 37)
    assert len(app.listener.calls) == calls  # duplicates are not news
    with app.sessions() as session:
        assert count(session, StoppageNotice) == 963
        assert count(session, RecordVersion) == 963
        assert count(session, RawPayload) == 1  # the bytes are stored once
        assert count(session, RawReceipt) == 2  # every arrival is on record


def test_new_content_under_the_same_id_is_a_revision_keeping_the_old_version(app) -> None:  # type: ignore[no-untyped-def]
    first = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode()
    second = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1, kind='断供'))}\n".encode("gbk")
    ingest_payload(app.ingest_deps(), source="a", name="1.csv", content=first, kind="auto", now=NOW)
    result = ingest_payload(app.ingest_deps(), source="b", name="2.csv", content=second, kind="auto", now=NOW)
    assert (result.accepted, result.revisions, result.duplicates) == (1, 1, 0)
    with app.sessions() as session:
        notice = session.scalars(select(StoppageNotice)).one()
        assert (notice.kind, notice.version, notice.source) == ("interruption", 2, "b")
        versions = session.scalars(select(RecordVersion).order_by(RecordVersion.version)).all()
        assert [(v.version, v.data["kind"]) for v in versions] == [(1, "stoppage"), (2, "interruption")]
    kind, row_id, version, previous = app.listener.calls[-1]
    assert (kind, row_id, version, previous["kind"]) == ("stoppage_notice", notice.id, 2, "stoppage")


def test_the_same_id_twice_in_one_file_is_stored_then_revised(app) -> None:  # type: ignore[no-untyped-def]
    rows = [notice_row(1), notice_row(1), notice_row(1, kind="减产")]
    content = (STOPPAGE_HEADER_ZH + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode()
    result = ingest_payload(app.ingest_deps(), source="a", name="1.csv", content=content, kind="auto", now=NOW)
    assert (result.accepted, result.duplicates, result.revisions) == (2, 1, 1)
    assert [c[2] for c in app.listener.calls] == [1, 2]


def test_identity_is_global_across_sources(app) -> None:  # type: ignore[no-untyped-def]
    content = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode()
    ingest_payload(app.ingest_deps(), source="inbox", name="1.csv", content=content, kind="auto", now=NOW)
    other = ingest_payload(app.ingest_deps(), source="feed", name="other.csv", content=content.replace(b"\n", b"\r\n"),
                           kind="auto", now=NOW)
    assert (other.accepted, other.duplicates) == (0, 1)


def test_a_parser_explosion_still_leaves_the_payload_and_a_rejected_receipt(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def explode(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("parser bug")

    monkeypatch.setattr(ingest_module, "parse_payload", explode)
    result = ingest_payload(app.ingest_deps(), source="inbox", name="x.csv", content=b"anything", kind="auto", now=NOW)
    assert result.status == "unusable" and "internal error" in result.errors[0]["reason"]
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()
        assert receipt.status == "rejected"
        assert session.get(RawPayload, receipt.payload_id).content == b"anything"


def test_a_listener_failure_rolls_back_the_records_but_keeps_the_receipt(app) -> None:  # type: ignore[no-untyped-def]
    class Failing:
        def record_stored(self, *args):  # type: ignore[no-untyped-def]
            raise ValueError("ledger bug")

    app.listener = Failing()
    content = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode()
    result = ingest_payload(app.ingest_deps(), source="inbox", name="1.csv", content=content, kind="auto", now=NOW)
    assert result.status == "unusable"
    with app.sessions() as session:
        assert count(session, StoppageNotice) == 0 and count(session, RecordVersion) == 0
        assert session.scalars(select(RawReceipt.status)).one() == "rejected"


def test_unusable_file_gets_a_rejected_receipt_with_the_reason(app) -> None:  # type: ignore[no-untyped-def]
    result = ingest_payload(app.ingest_deps(), source="inbox", name="x.csv", content=b"\x81\xff\xfe\x00garbage", kind="auto",
                            now=NOW)
    assert result.unusable and result.errors[0]["row"] is None
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()
        assert receipt.status == "rejected" and receipt.errors == result.errors


def test_an_empty_file_is_kept_as_an_empty_payload_with_a_rejected_receipt(app) -> None:  # type: ignore[no-untyped-def]
    result = ingest_payload(app.ingest_deps(), source="inbox", name="empty.csv", content=b"", kind="auto", now=NOW)
    assert result.unusable and "the file is empty" in result.errors[0]["reason"]
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()
        payload = session.get_one(RawPayload, receipt.payload_id)
        assert receipt.status == "rejected" and (payload.size, payload.content) == (0, b"")


def test_missing_region_defaults_to_the_partys_region_in_the_directory(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(directory=sample_directory_settings())
    content = (f"{STOPPAGE_HEADER_ZH},行政区划代码\n{','.join(notice_row(1))},\n"
               f"{','.join(notice_row(2, distributor_code='D500002'))},\n"
               f"{','.join(notice_row(3, distributor_code='D500001'))},500103\n").encode()
    ingest_payload(app.ingest_deps(), source="inbox", name="1.csv", content=content, kind="auto", now=NOW)
    with app.sessions() as session:
        regions = dict(session.execute(select(StoppageNotice.distributor_code, StoppageNotice.region_code)).all())
    assert regions == {"D350901": "350902", "D500002": "5001LJ", "D500001": "500103"}


def test_distributor_report_for_an_unknown_notice_must_describe_it(app) -> None:  # type: ignore[no-untyped-def]
    ingest_payload(app.ingest_deps(), source="a", name="n.csv", content=f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode(),
                   kind="auto", now=NOW)
    content = ("反馈编号,配送企业编码,通知编号,提交时间,已通知医疗机构数\n"
               "R1,D350901,TZ-00001,2024-10-07 16:30,3\n"
               "R2,D350901,TZ-99999,2024-10-07 16:30,3\n").encode()
    result = ingest_payload(app.ingest_deps(), source="a", name="r.csv", content=content, kind="auto", now=NOW)
    assert result.accepted == 1
    assert [(e["row"], e["field"]) for e in result.errors] == [(3, "notice_id")]
    with app.sessions() as session:
        report = session.scalars(select(DistributorReport)).one()
        assert (report.report_id, report.hospitals_notified) == ("R1", 3)


def test_json_of_all_three_kinds_lands_in_its_tables(app) -> None:  # type: ignore[no-untyped-def]
    import json

    records = [
        {"record_kind": "stoppage_notice", "notice_id": "N1", "manufacturer": "M", "product_code": "P",
         "product_name": "药", "kind": "stoppage", "distributor_code": "D1", "notified_on": "2024-09-27"},
        {"record_kind": "distributor_report", "report_id": "R1", "distributor_code": "D1", "notice_id": "N1",
         "submitted_at": "2024-10-07T09:00:00+08:00"},
        {"record_kind": "shortage_report", "report_id": "S1", "hospital_code": "H1", "product_code": "P",
         "product_name": "药", "reported_on": "2024-10-08", "supply_status": "short", "cause": "采购原因"},
    ]
    result = ingest_payload(app.ingest_deps(), source="api", name="all.json", content=json.dumps({"records": records}).encode(),
                            kind="auto", now=NOW)
    assert (result.accepted, result.rejected) == (3, 0)
    assert [c[0] for c in app.listener.calls] == ["stoppage_notice", "distributor_report", "shortage_report"]
    with app.sessions() as session:
        assert session.scalars(select(ShortageReport.cause)).one() == "procurement"
