"""Bounded resources: a file too large for `submit`, a workbook whose one shared string
would fill the memory, and a long file that commits chunk by chunk, so the heartbeat and
`health` stay true while it is stored and a crash mid-file resumes without loss or doubles."""

from __future__ import annotations

import io
import os
import time
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import openpyxl
import pytest
from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.exc import OperationalError

from shortage_watch.cli import main
from shortage_watch.clock import utc_now
from shortage_watch.services.replica import write_heartbeat
from shortage_watch.health import check_health
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.parsers import parse_payload
from shortage_watch.services import ingest as ingest_module
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.services.poll import poll_source
from shortage_watch.store.tables import Heartbeat, RawReceipt, RecordVersion, StoppageNotice
from tests.intake.conftest import NOW, STOPPAGE_HEADER_ZH, app, make_app, notice_row  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Unusable input is news for the log in one line, never a traceback."""
    yield
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def notices_csv(count: int, **changed: dict[str, str]) -> bytes:
    """`count` notices TZ-00000…, from row 2; `changed` maps a row number to a repeated notice's new values."""
    lines = [STOPPAGE_HEADER_ZH]
    for row in range(2, count + 2):
        if str(row) in changed:
            lines.append(",".join(notice_row(0, **changed[str(row)])))
        else:
            lines.append(",".join(notice_row(row - 2)))
    return ("\r\n".join(lines) + "\r\n").encode()


def chunks_of_exactly(rows: int, monkeypatch: Any) -> None:
    """Every chunk `rows` long, whatever the time it takes (it adapts to the lock hold otherwise)."""
    for name in ("CHUNK", "FIRST_CHUNK"):
        monkeypatch.setattr(ingest_module, name, rows)
    monkeypatch.setattr(ingest_module, "LOCK_HOLD_TARGET", 3600)


def count(app: Any, table: Any) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_submit_refuses_a_file_over_intake_max_bytes_naming_the_setting(write_config: Callable[..., Path],
                                                                      tmp_path: Path, capsys: Any) -> None:
    config = write_config({"intake": {"max_bytes": 4096}})
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    big = tmp_path / "big.csv"
    big.write_bytes(notices_csv(60))
    assert big.stat().st_size > 4096
    assert main(["--config", str(config), "submit", str(big), "--now", "2024-10-08T10:00"]) == 2
    out = capsys.readouterr().out
    assert "文件过大" in out and "intake.max_bytes=4096" in out


def workbook_with_one_huge_string(chars: int, shared: bool = True) -> bytes:
    """A small workbook whose row 2 holds one `chars`-long text, in the shared-string table
    as Excel writes it (or inline, as openpyxl does)."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(STOPPAGE_HEADER_ZH.split(","))
    sheet.append([*notice_row(1)[:10], "PLACEHOLDER", "其他"])
    plain = io.BytesIO()
    book.save(plain)
    huge = b"A" * chars
    inline = b'<is><t>PLACEHOLDER</t></is>'
    swollen = io.BytesIO()
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(swollen, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert inline in data
                data = (data.replace(b't="inlineStr">' + inline, b't="s"><v>0</v>') if shared
                        else data.replace(b"PLACEHOLDER", huge))
            elif shared and info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            elif shared and info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdSS" Type="http://schemas.openxmlformats'
                                    b'.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
                                    b"</Relationships>")
            target.writestr(info, data)
        if shared:
            target.writestr("xl/sharedStrings.xml", b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                            b'2006/main" count="1" uniqueCount="1"><si><t>' + huge + b"</t></si></sst>")
    return swollen.getvalue()


def test_the_crafted_workbook_is_read_when_its_string_is_small() -> None:
    parsed = parse_payload(workbook_with_one_huge_string(20), name="w.xlsx", kind="auto")
    assert parsed.rows[0].values["reason"] == "A" * 20


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "inline"])
def test_a_huge_string_is_refused_before_it_is_loaded(shared: bool) -> None:
    content = workbook_with_one_huge_string(60_000_000, shared)
    assert len(content) < 1_000_000  # small on the wire, 60 MB once unpacked
    tracemalloc.start()
    try:
        with pytest.raises(UnusableFile) as refused:
            parse_payload(content, name="swollen.xlsx", kind="auto")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "intake.max_cell_chars=32767" in refused.value.reason
    assert peak < 8_000_000  # streamed: never the 60 MB string (openpyxl alone would hold it twice)


def test_a_workbook_over_max_unpacked_bytes_is_refused_naming_the_setting() -> None:
    from shortage_watch.intake.parsers import ParseLimits

    content = workbook_with_one_huge_string(3_000_000)
    with pytest.raises(UnusableFile, match="intake.max_unpacked_bytes=2097152"):
        parse_payload(content, name="w.xlsx", kind="auto", limits=ParseLimits(max_unpacked_bytes=2 * 1024 * 1024))


def outside_count(db_url: str) -> int:
    """Notices another connection sees now (a plain reader: no write lock asked)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM stoppage_notices")).scalar_one()
    finally:
        engine.dispose()


def test_a_long_file_commits_chunk_by_chunk(app, db_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    chunks_of_exactly(100, monkeypatch)
    seen_outside: list[int] = []

    class LooksOutside:
        calls = 0

        def record_stored(self, session, kind, row, previous, now):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 250:  # inside the third chunk
                seen_outside.append(outside_count(db_url))

    app.listener = LooksOutside()
    result = ingest_payload(app.ingest_deps(), source="inbox", name="long.csv", content=notices_csv(450), kind="auto", now=NOW)
    assert (result.accepted, result.status) == (450, "accepted")
    assert seen_outside == [200]  # the first two chunks were committed while the third was written
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()
        assert (receipt.status, receipt.accepted, receipt.rows_done) == ("accepted", 450, 451)


def test_a_crash_mid_file_resumes_without_losing_or_doubling_a_row(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    chunks_of_exactly(100, monkeypatch)
    # TZ-00000 is row 2 and comes again, revised, as row 250: after the resume it must still
    # be one revision, not a revision back to row 2's content and forward again.
    content = notices_csv(350, **{"250": {"reason": "复产推迟"}})
    stored: list[tuple[str, int]] = []

    class PowerCut:
        armed = True

        def record_stored(self, session, kind, row, previous, now):  # type: ignore[no-untyped-def]
            if self.armed and row.notice_id == "TZ-00210":
                self.armed = False
                raise OperationalError("INSERT", {}, Exception("disk I/O error"))
            stored.append((row.notice_id, row.version))

    app.listener = PowerCut()
    with pytest.raises(OperationalError):
        ingest_payload(app.ingest_deps(), source="inbox", name="n.csv", content=content, kind="auto", now=NOW)
    assert count(app, StoppageNotice) == 200  # rows 2-201: two chunks committed, the third rolled back
    del stored[200:]  # what the listener did in the third chunk was rolled back with it
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()
        assert (receipt.status, receipt.rows_done, receipt.accepted) == ("received", 201, 200)
    result = ingest_payload(app.ingest_deps(), source="inbox", name="n.csv", content=content, kind="auto", now=NOW)
    assert (result.accepted, result.duplicates, result.rejected, result.revisions) == (350, 0, 0, 1)
    assert count(app, StoppageNotice) == 349 and count(app, RecordVersion) == 350
    assert len(stored) == len(set(stored)) == 350  # the listener heard of each version once
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()  # resumed, not a second receipt
        assert (receipt.status, receipt.accepted, receipt.rows_done) == ("accepted", 350, 351)


def test_heartbeat_and_health_stay_true_while_a_long_inbox_file_is_stored(make_app, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    chunks_of_exactly(100, monkeypatch)
    folder = tmp_path / "inbox"
    folder.mkdir()
    app = make_app(sources=[{"name": "box", "type": "inbox", "path": str(folder), "settle_seconds": 0}])
    write_heartbeat(app.replica, utc_now())
    with app.sessions.begin() as session:  # the last beat was long ago: the daemon has been busy
        session.execute(update(Heartbeat).values(beat_at=utc_now() - timedelta(minutes=10)))
    (folder / "long.csv").write_bytes(notices_csv(450))
    os.utime(folder / "long.csv", (time.time() - 60, time.time() - 60))
    reports: list[Any] = []

    class AsksHealthMidFile:
        calls = 0

        def record_stored(self, session, kind, row, previous, now):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 250:  # the third chunk holds the write lock right now
                reports.append(check_health(app.settings, now=utc_now()))

    app.listener = AsksHealthMidFile()
    outcome = poll_source(app.poll_deps(), app.settings.sources[0], NOW)
    assert (outcome.status, outcome.accepted) == ("ok", 450)
    [report] = reports
    assert report.ok, report.lines()  # reachable at once, and beaten by the chunks already committed


def test_chunks_shrink_to_hold_the_lock_about_half_a_second(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Stopwatch:
        """The ingest's timer: each stored row costs 50 ms (an expensive listener)."""

        elapsed = 0.0
        slept: list[float] = []

        def perf_counter(self) -> float:
            return self.elapsed

        def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)
            self.elapsed += seconds

    stopwatch = Stopwatch()
    monkeypatch.setattr(ingest_module, "time", stopwatch)
    rows_at_commit: list[int] = []

    class Costly:
        calls = 0

        def record_stored(self, session, kind, row, previous, now):  # type: ignore[no-untyped-def]
            self.calls += 1
            stopwatch.elapsed += 0.05

    listener = Costly()
    app.listener = listener
    event.listen(app.engine, "commit", lambda conn: rows_at_commit.append(listener.calls))
    result = ingest_payload(app.ingest_deps(), source="inbox", name="n.csv", content=notices_csv(100), kind="auto", now=NOW)
    assert result.accepted == 100
    chunks = [b - a for a, b in zip(rows_at_commit, rows_at_commit[1:]) if b > a]
    assert chunks[0] == ingest_module.FIRST_CHUNK == 20  # 1 s: too long
    assert set(chunks[1:-1]) == {10}  # 0.5 s each
    # After each long chunk SQLite's one write lock is left free a moment (a tenth of the hold, at most 50 ms);
    # PostgreSQL's writers wait on rows, queued, and a pause would only slow the file.
    if app.engine.dialect.name == "sqlite":
        assert stopwatch.slept[:2] == [0.05, 0.05] and len(stopwatch.slept) >= len(chunks) - 1
    else:
        assert stopwatch.slept == []
