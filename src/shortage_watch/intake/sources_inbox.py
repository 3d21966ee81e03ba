"""An `inbox` source: a folder that distributors fill (over SFTP) with CSV, XLSX or JSON files.

Files still being written (`.part`/`.tmp`, Office `~$` locks, dot files, or modified in the
last `settle_seconds`) wait for the next poll. Symlinks are never followed and only plain
names inside the folder are touched. Each file is ingested in one transaction and moved
only after it commits: to `archive/`, or to `rejected/` (with `<name>.errors.csv`) when
some rows or the whole file were rejected. A crash between commit and move re-ingests the
file next time, which yields only duplicates.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy.exc import DBAPIError

from shortage_watch.clock import utc_now
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.settings import SourceSettings

log = logging.getLogger(__name__)

ACCEPTED_SUFFIXES = (".csv", ".xlsx", ".json")
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")
ARCHIVE, REJECTED = "archive", "rejected"
ERRORS_HEADER = ("行号/row", "字段/field", "原因/reason")


@dataclass(frozen=True)
class InboxFile:
    path: Path
    size: int
    mtime: float


def list_ready_files(folder: Path, settle_seconds: float, real_now: datetime) -> list[InboxFile]:
    """Regular files (not symlinks) with an accepted suffix, untouched for `settle_seconds`, oldest first."""
    ready: list[InboxFile] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            lower = name.lower()
            if name.startswith((".", "~$")) or lower.endswith(IN_PROGRESS_SUFFIXES):
                continue
            if not lower.endswith(ACCEPTED_SUFFIXES) or lower.endswith(".errors.csv"):
                continue
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                continue  # never follow a link out of the folder
            info = entry.stat(follow_symlinks=False)
            if real_now.timestamp() - info.st_mtime < settle_seconds:
                continue  # probably still being uploaded
            ready.append(InboxFile(Path(entry.path), info.st_size, info.st_mtime))
    ready.sort(key=lambda f: (f.mtime, f.path.name))
    return ready


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """Read without following a symlink planted after listing; UnusableFile when too large."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnusableFile("不是普通文件 / not a regular file")
        if info.st_size > max_bytes:
            raise UnusableFile(f"文件过大（上限 {max_bytes} 字节） / file larger than max_bytes={max_bytes}")
        return handle.read(max_bytes + 1)


def _subfolder(folder: Path, name: str) -> Path:
    target = folder / name
    if target.is_symlink():
        raise OSError(f"{target} is a symlink; refusing to move files through it")
    target.mkdir(exist_ok=True)
    return target


def _free_name(directory: Path, name: str, stamp: str) -> Path:
    """`name` inside `directory`, or `stem.<stamp>[-n]suffix` when that name is taken."""
    candidate = directory / name
    if not candidate.exists() and not candidate.is_symlink():
        return candidate
    base = Path(name)
    for n in range(1000):
        tail = f".{stamp}" + (f"-{n}" if n else "")
        candidate = directory / f"{base.stem}{tail}{base.suffix}"
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise OSError(f"no free name for {name} in {directory}")


def errors_csv_bytes(errors: Iterable[dict[str, Any]]) -> bytes:
    """errors.csv as Excel in China opens it: UTF-8 with BOM, Chinese/English headers."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ERRORS_HEADER)
    for error in errors:
        row = error.get("row")
        writer.writerow(["" if row is None else row, error.get("field") or "", error.get("reason") or ""])
    return "\ufeff".encode("utf-8") + buffer.getvalue().encode("utf-8")


def move_processed(folder: Path, path: Path, rejected: bool, errors: list[dict[str, Any]]) -> Path:
    """Move a processed file to archive/ or rejected/ (writing `<name>.errors.csv` beside it)."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    target_dir = _subfolder(folder, REJECTED if rejected else ARCHIVE)
    target = _free_name(target_dir, path.name, stamp)
    if rejected:
        errors_path = target_dir / f"{target.name}.errors.csv"
        errors_path.write_bytes(errors_csv_bytes(errors))
    os.replace(path, target)
    return target


def poll_inbox_source(app: Any, source: SourceSettings, now: datetime) -> Any:
    """Ingest every ready file of the folder, one transaction each, then move it."""
    from shortage_watch.services.ingest import (
        IngestResult,
        PollOutcome,
        record_source_success,
        renew_source_lease,
        store_payload,
    )

    assert source.path is not None
    folder = Path(source.path)
    outcome = PollOutcome(source.name, "ok")
    if not folder.is_dir():
        raise OSError(f"inbox folder {folder} does not exist")
    files = list_ready_files(folder, source.settle_seconds, utc_now())
    for item in files:
        try:
            content = read_regular_file(item.path, source.max_bytes)
        except FileNotFoundError:
            continue  # taken by another process meanwhile
        except UnusableFile as exc:
            # Too large to archive in the database: it stays on disk in rejected/.
            errors = [{"row": None, "field": None, "reason": exc.reason}]
            move_processed(folder, item.path, True, errors)
            outcome.add(IngestResult(name=item.path.name, status="unusable", errors=errors))
            continue
        except OSError as exc:
            log.warning("inbox %s: cannot read %s: %s", source.name, item.path.name, exc)
            continue
        try:
            with app.sessions.begin() as session:
                renew_source_lease(session, app, source.name)
                result = store_payload(session, app, source=source.name, name=item.path.name, content=content,
                                       kind=source.record_kind, now=now, field_map=source.field_map)
                record_source_success(session, source.name)
        except DBAPIError as exc:
            # Rolled back: the file stays in the inbox for the next poll, and one file the
            # database refuses does not hold up the files behind it.
            log.warning("inbox %s: %s not stored (%s); it stays for the next poll",
                        source.name, item.path.name, type(exc).__name__)
            outcome.status = "failed"
            outcome.error = f"{item.path.name}: database error {type(exc).__name__}; left in the inbox"
            continue
        # Moved only after the commit: a crash here re-ingests the file (duplicates only).
        rejected = result.rejected > 0 or result.unusable or result.status == "rejected"
        move_processed(folder, item.path, rejected, result.errors)
        outcome.add(result)
    if outcome.status == "failed":
        from shortage_watch.services.ingest import record_source_failure

        record_source_failure(app, source.name, outcome.error or "")
    if not files:
        with app.sessions.begin() as session:
            renew_source_lease(session, app, source.name)
            record_source_success(session, source.name)
    return outcome
