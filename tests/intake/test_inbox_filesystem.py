"""The inbox on an unfriendly file system: planted symlinks, names too long to move, files that cannot leave,
uploads that pause, files we do not read. Nothing is written outside the folder, nothing
is ingested twice, nothing waits silently, and `health` tells the operator."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from shortage_watch.health import check_health
from shortage_watch.services.poll import poll_source
from shortage_watch.store.tables import RawReceipt, StoppageNotice
from tests.intake.conftest import NOW, STOPPAGE_HEADER_ZH, app, make_app, notice_row  # noqa: F401 (fixtures)

GOOD = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n".encode()
WITH_A_BAD_ROW = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(2))}\n{','.join(notice_row(3, notified_on='x'))}\n".encode()


@pytest.fixture(autouse=True)
def no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Unusable input is news for the log in one line, never a traceback."""
    yield
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def inbox_app(make_app: Any, folder: Path, **extra: Any) -> Any:
    folder.mkdir(exist_ok=True)
    return make_app(sources=[{"name": "box", "type": "inbox", "path": str(folder), "settle_seconds": 0, **extra}])


def drop(folder: Path, name: str, content: bytes, seconds_ago: float = 60) -> Path:
    path = folder / name
    path.write_bytes(content)
    then = time.time() - seconds_ago
    os.utime(path, (then, then))
    return path


def poll(app: Any) -> Any:
    return poll_source(app.poll_deps(), app.settings.sources[0], NOW)


def receipts(app: Any) -> list[tuple[str, str]]:
    with app.sessions() as session:
        return [tuple(r) for r in session.execute(select(RawReceipt.name, RawReceipt.status).order_by(RawReceipt.id))]


def notices(app: Any) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(StoppageNotice))


def sources_check(app: Any) -> Any:
    report = check_health(app.settings, app.engine)
    [check] = [c for c in report.checks if c.name == "sources"]
    return check


# ---- item 2: every path the inbox writes --------------------------------------------------------


def test_a_symlink_planted_as_the_errors_csv_is_not_followed(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    precious = tmp_path / "precious.txt"
    precious.write_text("do not overwrite")
    (folder / "rejected").mkdir()
    (folder / "rejected" / "bad.csv.errors.csv").symlink_to(precious)
    drop(folder, "bad.csv", WITH_A_BAD_ROW)
    outcome = poll(app)
    assert (outcome.status, outcome.accepted, outcome.rejected) == ("ok", 1, 1)
    assert precious.read_text() == "do not overwrite"
    assert (folder / "rejected" / "bad.csv.errors.csv").is_symlink()
    [moved] = [p for p in (folder / "rejected").iterdir() if p.name.startswith("bad.") and p.suffix == ".csv"
               and not p.name.endswith(".errors.csv")]
    assert moved.read_bytes() == WITH_A_BAD_ROW
    assert "通知日期" in (folder / "rejected" / f"{moved.name}.errors.csv").read_text(encoding="utf-8-sig")


def test_a_symlink_planted_under_the_archived_name_is_left_alone(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    precious = tmp_path / "precious.csv"
    precious.write_text("do not overwrite")
    (folder / "archive").mkdir()
    (folder / "archive" / "a.csv").symlink_to(precious)
    drop(folder, "a.csv", GOOD)
    assert poll(app).accepted == 1
    assert precious.read_text() == "do not overwrite" and (folder / "archive" / "a.csv").is_symlink()
    assert [p.read_bytes() for p in (folder / "archive").iterdir() if not p.is_symlink()] == [GOOD]


def test_rejected_made_a_symlink_receives_nothing(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "rejected").symlink_to(outside, target_is_directory=True)
    drop(folder, "bad.csv", WITH_A_BAD_ROW)
    poll(app)
    poll(app)
    assert list(outside.iterdir()) == []
    assert (folder / "bad.csv").read_bytes() == WITH_A_BAD_ROW  # stays, stored once
    assert receipts(app) == [("bad.csv", "partial")]


# ---- item 3: a file that cannot be moved ---------------------------------------------------------


def test_a_245_character_name_is_stored_once_and_moved_with_its_errors(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    name = "n" * 241 + ".csv"  # fits; its errors file (256 bytes) would not
    assert len(name) == 245
    drop(folder, name, WITH_A_BAD_ROW)
    for _ in range(3):
        poll(app)
    assert receipts(app) == [(name, "partial")]
    assert notices(app) == 1
    rejected = sorted(p.name for p in (folder / "rejected").iterdir())
    assert len(rejected) == 2 and all(len(n.encode()) <= 255 for n in rejected)
    data, errors = sorted(rejected, key=len)
    assert errors == data + ".errors.csv" and data.endswith(".csv")
    assert (folder / "rejected" / data).read_bytes() == WITH_A_BAD_ROW
    assert list(folder.glob("*.csv")) == []


def test_a_long_chinese_name_fits_too(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    name = "停产通知" * 20 + "ab.csv"  # 246 bytes: fits, its errors file (257) would not
    drop(folder, name, WITH_A_BAD_ROW)
    poll(app)
    poll(app)
    assert len(receipts(app)) == 1 and list(folder.glob("*.csv")) == []
    assert len(list((folder / "rejected").iterdir())) == 2


def test_archive_made_a_symlink_stores_once_goes_on_and_health_says_so(make_app, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "archive").symlink_to(outside, target_is_directory=True)
    drop(folder, "a_stuck.csv", GOOD, seconds_ago=120)
    drop(folder, "b_bad.csv", WITH_A_BAD_ROW, seconds_ago=60)
    outcomes = [poll(app) for _ in range(4)]
    assert list(outside.iterdir()) == []
    assert receipts(app) == [("a_stuck.csv", "accepted"), ("b_bad.csv", "partial")]  # 4 polls, one receipt each
    assert (folder / "a_stuck.csv").exists() and (folder / "rejected" / "b_bad.csv").exists()
    assert all("a_stuck.csv" in (o.error or "") for o in outcomes)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "a_stuck.csv" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is None  # one line, not one per poll, no traceback
    check = sources_check(app)
    assert not check.ok and "a_stuck.csv" in check.detail and "symlink" in check.detail
    # The operator removes the link: the next poll moves the file, without reading it again.
    (folder / "archive").unlink()
    poll(app)
    assert (folder / "archive" / "a_stuck.csv").read_bytes() == GOOD
    assert len(receipts(app)) == 2 and notices(app) == 2
    assert sources_check(app).ok


def test_a_stuck_file_removed_by_the_operator_clears_health(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    (folder / "archive").symlink_to(tmp_path, target_is_directory=True)
    drop(folder, "a.csv", GOOD)
    poll(app)
    assert not sources_check(app).ok
    (folder / "a.csv").unlink()
    poll(app)
    assert sources_check(app).ok


def test_a_stuck_file_replaced_by_new_content_is_read_again(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    (folder / "archive").symlink_to(tmp_path, target_is_directory=True)
    drop(folder, "a.csv", GOOD)
    poll(app)
    drop(folder, "a.csv", f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(7))}\n".encode())
    poll(app)
    assert notices(app) == 2 and len(receipts(app)) == 2


# ---- item 6: nothing sits or vanishes silently ---------------------------------------------------


def test_unsupported_files_go_to_rejected_with_a_reason(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    for name in ("old.xls", "notes.txt", "macro.xlsm", "stray.csv.errors.csv", "README"):
        drop(folder, name, b"\xd0\xcf\x11\xe0 whatever")
    poll(app)
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == []
    reasons = {}
    for name in ("old.xls", "notes.txt", "macro.xlsm", "stray.csv.errors.csv", "README"):
        assert (folder / "rejected" / name).read_bytes() == b"\xd0\xcf\x11\xe0 whatever"
        rows = list(csv.reader(io.StringIO((folder / "rejected" / f"{name}.errors.csv").read_text("utf-8-sig"))))
        reasons[name] = rows[1][2]
    assert "请另存为 .xlsx" in reasons["old.xls"] and "save as .xlsx" in reasons["old.xls"]
    assert ".xlsm" in reasons["macro.xlsm"] and ".txt" in reasons["notes.txt"]
    assert "not a data file" in reasons["stray.csv.errors.csv"]
    assert len(receipts(app)) == 5 and {s for _, s in receipts(app)} == {"rejected"}
    poll(app)
    assert len(receipts(app)) == 5  # the errors files written beside them are in rejected/, never read


def test_a_tail_appended_after_the_file_was_read_and_archived_is_read(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    head = f"{STOPPAGE_HEADER_ZH}\n{','.join(notice_row(1))}\n{','.join(notice_row(2))}\n".encode()
    tail = f"{','.join(notice_row(3))}\n{','.join(notice_row(4))}\n".encode()
    path = drop(folder, "upload.csv", head)
    with open(path, "ab") as upload:  # the uploader's open file: it pauses longer than settle_seconds
        assert poll(app).accepted == 2
        assert (folder / "archive" / "upload.csv").exists()
        upload.write(tail)  # ... and goes on writing into the (now archived) file
    outcome = poll(app)
    assert (outcome.accepted, outcome.duplicates) == (2, 2)
    assert notices(app) == 4
    assert [p.read_bytes() for p in (folder / "archive").iterdir()] == [head + tail]


def test_a_file_that_changes_while_it_is_read_stays_and_is_read_again(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    path = drop(folder, "upload.csv", GOOD)
    tail = f"{','.join(notice_row(5))}\n".encode()

    class AppendsMidRead:
        def record_stored(self, session, kind, row, previous, now):  # type: ignore[no-untyped-def]
            if row.notice_id == "TZ-00001":
                with open(path, "ab") as upload:
                    upload.write(tail)

    app.listener = AppendsMidRead()
    assert poll(app).accepted == 1
    assert path.read_bytes() == GOOD + tail and not (folder / "archive").exists()
    outcome = poll(app)
    assert (outcome.accepted, outcome.duplicates) == (1, 1)
    assert notices(app) == 2 and (folder / "archive" / "upload.csv").read_bytes() == GOOD + tail


def test_an_empty_json_list_is_rejected_like_a_header_only_csv(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "inbox"
    app = inbox_app(make_app, folder)
    drop(folder, "empty.json", b"[]")
    drop(folder, "header.csv", f"{STOPPAGE_HEADER_ZH}\n".encode())
    poll(app)
    for name in ("empty.json", "header.csv"):
        assert "no data rows" in (folder / "rejected" / f"{name}.errors.csv").read_text("utf-8-sig")
