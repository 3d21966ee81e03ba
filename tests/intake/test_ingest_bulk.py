"""The bulk write path: what the listener and the version history see is what a plain read sees."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from shortage_watch.domain.records import validate_record
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.tables import RecordVersion, StoppageNotice
from tests.intake.conftest import NOW, STOPPAGE_HEADER_ZH, notice_row

COLUMNS = [c.key for c in StoppageNotice.__table__.c]


class SnapshotListener:
    """Keeps, per call, whether the row was persistent in the session and its column values."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, dict[str, Any]]] = []

    def record_stored(self, session: Session, kind: str, row: Any, previous: dict | None, now: datetime) -> None:
        state = inspect(row)
        persistent = state.persistent and state.session is session and not state.expired_attributes
        self.seen.append((persistent, {key: getattr(row, key) for key in COLUMNS}))


def test_each_new_row_reaches_the_listener_persistent_and_as_stored_across_statements(app) -> None:  # type: ignore[no-untyped-def]
    app.listener = SnapshotListener()
    rows = [notice_row(i, distributor_code=f"D{i % 7:06d}") for i in range(250)]  # spans several INSERTs
    content = (STOPPAGE_HEADER_ZH + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode()
    result = ingest_payload(app.ingest_deps(), source="inbox", name="n.csv", content=content, kind="auto", now=NOW)
    assert (result.accepted, result.rejected) == (250, 0)
    with app.sessions() as session:
        stored = {row.id: {key: getattr(row, key) for key in COLUMNS} for row in session.scalars(select(StoppageNotice))}
    assert all(persistent for persistent, _ in app.listener.seen)
    assert [values["notice_id"] for _, values in app.listener.seen] == [r[0] for r in rows]  # file order
    assert {values["id"]: values for _, values in app.listener.seen} == stored


def test_version_history_holds_the_validated_record_and_its_hash(app) -> None:  # type: ignore[no-untyped-def]
    cells = notice_row(5, reason="原料药供应不足，预计\u201c三月\u201d恢复")
    content = f"{STOPPAGE_HEADER_ZH}\n{','.join(cells)}\n".encode()
    ingest_payload(app.ingest_deps(), source="inbox", name="n.csv", content=content, kind="auto", now=NOW)
    headers = STOPPAGE_HEADER_ZH.split(",")
    keys = ["notice_id", "manufacturer", "product_code", "product_name", "specification", "kind",
            "distributor_code", "distributor_name", "notified_on", "expected_resume_on", "reason", "priority_class"]
    assert len(headers) == len(keys)
    record, problems = validate_record("stoppage_notice", dict(zip(keys, cells)), row=2, now=NOW,
                                       tz=ZoneInfo("Asia/Shanghai"))
    assert not problems and record is not None
    with app.sessions() as session:
        version = session.scalars(select(RecordVersion)).one()
    assert version.data == record.data()
    assert version.content_hash == record.content_hash()


def test_a_resent_file_finds_exactly_its_own_identities_among_crossed_ids_and_parties(app) -> None:  # type: ignore[no-untyped-def]
    first = [notice_row(i, distributor_code=f"D{i % 7:06d}") for i in range(300)]
    # The same ids sent to the next distributor (new identities), half the old rows changed, the rest unchanged.
    crossed = [notice_row(i, distributor_code=f"D{(i + 1) % 7:06d}") for i in range(0, 300, 3)]
    changed = [notice_row(i, distributor_code=f"D{i % 7:06d}", kind="断供") for i in range(1, 300, 2)]
    unchanged = [row for i, row in enumerate(first) if i % 2 == 0]

    def csv(rows: list[list[str]]) -> bytes:
        return (STOPPAGE_HEADER_ZH + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode()

    ingest_payload(app.ingest_deps(), source="inbox", name="1.csv", content=csv(first), kind="auto", now=NOW)
    result = ingest_payload(app.ingest_deps(), source="inbox", name="2.csv", content=csv(crossed + changed + unchanged), kind="auto",
                            now=NOW)
    assert (result.accepted, result.revisions, result.duplicates) == (100 + 150, 150, 150)
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoppageNotice)) == 400
        assert session.scalar(select(func.count()).select_from(RecordVersion)) == 400 + 150
