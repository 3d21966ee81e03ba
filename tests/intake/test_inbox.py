"""An inbox folder: archive/, rejected/ with errors.csv, files still being written, symlinks."""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.intake.sample_inbox import write_sample_inbox
from shortage_watch.services.poll import poll_source
from shortage_watch.store.tables import RawReceipt, StoppageNotice
from tests.intake.conftest import NOW, STOPPAGE_HEADER_ZH, notice_row


def inbox_app(make_app: Any, folder: Path, **extra: Any) -> Any:
    folder.mkdir(exist_ok=True)
    return make_app(sources=[{"name": "box", "type": "inbox", "path": str(folder), "settle_seconds": 0, **extra}])


def settle(path: Path, seconds_ago: float = 60) -> None:
    then = time.time() - seconds_ago
    os.utime(path, (then, then))


def drop(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    settle(path)
    return path


def poll(app: Any) -> Any:
    return poll_source(app.poll_deps(), app.settings.sources[0], NOW)


def notices(app: Any) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(StoppageNotice))


def test_sample_inbox_is_archived(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    samples = write_sample_inbox(folder, WorkingCalendar(), NOW)
    for path in samples:
        settle(path)
    app = inbox_app(make_app, folder)
    outcome = poll(app)
    assert (outcome.status, outcome.items, outcome.accepted, outcome.rejected) == ("ok", 3, 5, 0)
    assert sorted(p.name for p in (folder / "archive").iterdir()) == sorted(p.name for p in samples)
    assert [p.name for p in folder.iterdir() if p.is_file()] == []


def test_a_file_with_bad_rows_goes_to_rejected_with_an_excel_errors_csv(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    content = "\r\n".join([STOPPAGE_HEADER_ZH, ",".join(notice_row(1)),
                           ",".join(notice_row(2, notified_on="2024-10-09"))]).encode("gbk")
    drop(folder, "通知.csv", content)
    outcome = poll(app)
    assert (outcome.accepted, outcome.rejected) == (1, 1)
    assert (folder / "rejected" / "通知.csv").read_bytes() == content
    errors = (folder / "rejected" / "通知.csv.errors.csv").read_bytes()
    assert errors.startswith(b"\xef\xbb\xbf")  # BOM: Excel in China opens UTF-8 correctly
    rows = list(csv.reader(io.StringIO(errors.decode("utf-8-sig"))))
    assert rows == [["行号/row", "字段/field", "原因/reason"],
                    ["3", "通知日期", "通知日期不能晚于今天 / notified_on is in the future"]]
    assert notices(app) == 1


def test_an_unusable_file_goes_to_rejected_with_its_reason(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    drop(folder, "broken.xlsx", b"PK\x03\x04 truncated")
    poll(app)
    errors = (folder / "rejected" / "broken.xlsx.errors.csv").read_text(encoding="utf-8-sig")
    assert "XLSX" in errors
    with app.sessions() as session:
        assert session.scalars(select(RawReceipt.status)).one() == "rejected"


def test_files_still_being_written_wait(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder, settle_seconds=30)
    content = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode()
    drop(folder, "a.csv.part", content)
    drop(folder, "b.tmp", content)
    drop(folder, "~$c.xlsx", content)
    drop(folder, ".hidden.csv", content)
    (folder / "fresh.csv").write_bytes(content)  # modified just now
    outcome = poll(app)
    assert (outcome.items, notices(app)) == (0, 0)
    settle(folder / "fresh.csv")
    assert poll(app).items == 1


def test_symlinks_are_never_followed(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    outside = tmp_path / "secret.csv"
    outside.write_bytes(f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode())
    (folder / "link.csv").symlink_to(outside)
    outcome = poll(app)
    assert (outcome.items, notices(app)) == (0, 0)
    assert (folder / "link.csv").is_symlink() and outside.exists()


def test_dropping_the_same_file_again_adds_nothing(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    content = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n{','.join(notice_row(2))}\n".encode()
    drop(folder, "a.csv", content)
    assert poll(app).accepted == 2
    drop(folder, "a.csv", content)
    again = poll(app)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert notices(app) == 2
    archived = sorted(p.name for p in (folder / "archive").iterdir())
    assert len(archived) == 2 and archived[0].startswith("a.") and "a.csv" in archived


def test_a_crash_after_commit_before_the_move_reingests_as_duplicates(make_app, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shortage_watch.intake import sources_inbox

    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    drop(folder, "a.csv", f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode())

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SystemError("power cut")

    monkeypatch.setattr(sources_inbox.InboxFolder, "move_processed", crash)
    assert poll(app).status == "failed"
    assert (folder / "a.csv").exists()  # still in the inbox
    monkeypatch.undo()
    outcome = poll(app)
    assert (outcome.accepted, outcome.duplicates) == (0, 1)
    assert notices(app) == 1 and (folder / "archive" / "a.csv").exists()


def test_a_file_over_max_bytes_is_moved_aside_not_lost(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder, max_bytes=2048)
    drop(folder, "big.json", b"[" + b" " * 4096 + b"]")
    poll(app)
    assert (folder / "rejected" / "big.json").stat().st_size == 4098
    assert "max_bytes" in (folder / "rejected" / "big.json.errors.csv").read_text(encoding="utf-8-sig")


def test_a_missing_inbox_folder_is_a_recorded_failure(make_app, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[{"name": "box", "type": "inbox", "path": str(tmp_path / "nope")}])
    with caplog.at_level(logging.ERROR, logger="shortage_watch.services.ingest"):
        outcome = poll(app)
    assert outcome.status == "failed" and "does not exist" in outcome.error
    # An operator's problem, said in one line each poll: no traceback in the log.
    [record] = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert "does not exist" in record.getMessage() and record.exc_info is None


def test_a_file_the_database_refuses_stays_and_does_not_block_the_others(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    class RefusesPoison:
        def record_stored(self, session, kind, row, previous, now):  # type: ignore[no-untyped-def]
            if row.notice_id == "POISON":
                raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    app.listener = RefusesPoison()
    drop(folder, "a_poison.csv", f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1, notice_id='POISON'))}\n".encode())
    drop(folder, "b_fine.csv", f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(2))}\n".encode())
    outcome = poll(app)
    assert outcome.status == "failed" and "a_poison.csv" in outcome.error
    assert (folder / "a_poison.csv").exists() and (folder / "archive" / "b_fine.csv").exists()
    assert notices(app) == 1


def test_two_replicas_polling_one_inbox_store_each_file_once(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "inbox"
    first = inbox_app(make_app, folder)
    second = inbox_app(make_app, folder)
    assert first.replica_id != second.replica_id
    for i in range(6):
        drop(folder, f"f{i}.csv", f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(i))}\n".encode())
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(poll, [first, second]))
    assert sum(o.items for o in outcomes) == 6 and {o.status for o in outcomes} <= {"ok", "busy"}
    with first.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawReceipt)) == 6
    assert notices(first) == 6 and len(list((folder / "archive").iterdir())) == 6
