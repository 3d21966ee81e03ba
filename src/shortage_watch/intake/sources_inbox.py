"""An `inbox` source: a folder that distributors fill (over SFTP) with CSV, XLSX or JSON files.

Files still being written (`.part`/`.tmp`, Office `~$` locks, dot files, or modified in the
last `settle_seconds`) wait for the next poll. Any other file is taken: a CSV, XLSX or JSON
file is ingested (a chunk of rows per transaction), anything else (`.xls`, `.txt`, a stray
`.errors.csv`) gets a receipt saying why it is refused. Each file is moved only after its
rows commit: to `archive/`, or to `rejected/` (with `<name>.errors.csv`) when some rows or
the whole file were rejected. A crash between commit and move re-ingests the file next
time, which yields only duplicates.

Nothing the inbox writes follows a symlink or leaves the folder: `archive/` and `rejected/`
are opened without following links, and every name is created or renamed relative to
them (an errors file is created exclusively, so a link planted in its place is refused).
A file that cannot be moved after commit keeps its receipt's `move_error`: it is not read
again (its bytes' hash is known), the move is retried each poll, the files behind it go
on, and `health` reports it until it is moved or removed. A file that grows after it was
read (an upload that paused longer than `settle_seconds`) is read again: before the move
it simply stays, and after the move it is brought back from `archive/` or `rejected/`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, Iterable, Iterator

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from shortage_watch.clock import utc_now
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.settings import SourceSettings
from shortage_watch.store.tables import RawPayload, RawReceipt

log = logging.getLogger(__name__)

ACCEPTED_SUFFIXES = (".csv", ".xlsx", ".json")
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")
ARCHIVE, REJECTED = "archive", "rejected"
ERRORS_SUFFIX = ".errors.csv"
WARNINGS_SUFFIX = ".warnings.csv"
ERRORS_HEADER = ("行号/row", "字段/field", "原因/reason")
NAME_MAX = 255  # bytes in one file name on Linux file systems
WATCHED_MOVES = 50  # the most recent moved files checked each poll for a tail written after the read

SAVE_AS_XLSX = "不支持旧版 Excel 97-2003 (.xls) 文件，请另存为 .xlsx / .xls is not supported: save as .xlsx"
MACRO_WORKBOOK = "不接受含宏的 .xlsm 工作簿，请另存为 .xlsx / macro workbooks (.xlsm) are not accepted: save as .xlsx"
ERRORS_FILE = (f"这是 shortage_watch 写的错误清单（{ERRORS_SUFFIX}），不是数据文件 / "
               f"this is an errors list written by shortage_watch ({ERRORS_SUFFIX}), not a data file")


def refusal_reason(name: str) -> str | None:
    """Why a file of this name is not read as data (Chinese / English), or None when it is."""
    lower = name.lower()
    if lower.endswith(ERRORS_SUFFIX):
        return ERRORS_FILE
    if lower.endswith(ACCEPTED_SUFFIXES):
        return None
    suffix = PurePath(lower).suffix
    if suffix == ".xls":
        return SAVE_AS_XLSX
    if suffix == ".xlsm":
        return MACRO_WORKBOOK
    shown = suffix or "（无扩展名）/ (none)"
    return (f"不支持的文件类型 {shown}，请发送 .csv、.xlsx 或 .json 文件 / "
            f"unsupported file type {shown}: send .csv, .xlsx or .json")


@dataclass(frozen=True)
class InboxFile:
    path: Path
    size: int
    mtime: float


@dataclass(frozen=True)
class FileVersion:
    """What identifies the bytes read: a change of any means the file changed since."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> "FileVersion":
        return cls(info.st_ino, info.st_size, info.st_mtime_ns)


def list_ready_files(folder: Path, settle_seconds: float, real_now: datetime) -> list[InboxFile]:
    """Regular files (not symlinks) no longer being written, untouched for `settle_seconds`, oldest first."""
    ready: list[InboxFile] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith((".", "~$")) or name.lower().endswith(IN_PROGRESS_SUFFIXES):
                continue
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                continue  # never follow a link out of the folder
            info = entry.stat(follow_symlinks=False)
            if real_now.timestamp() - info.st_mtime < settle_seconds:
                continue  # probably still being uploaded
            ready.append(InboxFile(Path(entry.path), info.st_size, info.st_mtime))
    ready.sort(key=lambda f: (f.mtime, f.path.name))
    return ready


def read_regular_file(path: Path, max_bytes: int) -> tuple[bytes, FileVersion]:
    """The bytes and the version read, never through a symlink planted after listing;
    UnusableFile when too large."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnusableFile("不是普通文件 / not a regular file")
        if info.st_size > max_bytes:
            raise UnusableFile(f"文件过大（上限 {max_bytes} 字节） / file larger than max_bytes={max_bytes}")
        content = handle.read(max_bytes + 1)
        return content, FileVersion(info.st_ino, len(content), info.st_mtime_ns)


def errors_csv_bytes(errors: Iterable[dict[str, Any]]) -> bytes:
    """errors.csv as Excel in China opens it: UTF-8 with BOM, Chinese/English headers."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ERRORS_HEADER)
    for error in errors:
        row = error.get("row")
        writer.writerow(["" if row is None else row, error.get("column") or error.get("field") or "", error.get("reason") or ""])
    return "\ufeff".encode("utf-8") + buffer.getvalue().encode("utf-8")


# ---- moving files, never through a link ---------------------------------------------------------


class InboxFolder:
    """The inbox folder, held open: every name below is resolved relative to it, link-free."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        os.close(self.fd)

    def subfolder(self, name: str) -> int:
        """An open `archive/` or `rejected/` (created when missing); OSError when it is a link or not a folder."""
        try:
            os.mkdir(name, 0o755, dir_fd=self.fd)
        except FileExistsError:
            pass
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            if stat.S_ISLNK(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode):
                raise OSError(f"{name}/ is a symlink; files are never moved through a link") from None
            raise OSError(f"{name}/ cannot be opened: {exc.strerror}") from None

    def version(self, name: str, dir_fd: int | None = None) -> FileVersion | None:
        """The version of a plain file (never a link's target), or None when it is gone."""
        try:
            info = os.stat(name, dir_fd=self.fd if dir_fd is None else dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return FileVersion.of(info)

    def move_processed(self, name: str, rejected: bool, errors: list[dict[str, Any]],
                       warnings: list[dict[str, Any]] | None = None) -> str:
        """Move `name` to archive/ or rejected/ (writing `<name>.errors.csv` beside it, and
        `<name>.warnings.csv` for accepted rows naming a party the directory does not list); the new relative path."""
        where = REJECTED if rejected else ARCHIVE
        target_fd = self.subfolder(where)
        try:
            target = _free_name(target_fd, name, utc_now().strftime("%Y%m%dT%H%M%S"), rejected)
            if rejected:
                _create_exclusively(target_fd, target + ERRORS_SUFFIX, errors_csv_bytes(errors))
            try:
                os.rename(name, target, src_dir_fd=self.fd, dst_dir_fd=target_fd)
            except OSError:
                if rejected:
                    os.unlink(target + ERRORS_SUFFIX, dir_fd=target_fd)
                raise
            if warnings:
                try:
                    _create_exclusively(target_fd, target + WARNINGS_SUFFIX, errors_csv_bytes(warnings))
                except OSError as exc:  # the file is moved; its receipt and the operations digest keep the warnings
                    log.warning("inbox: %s: cannot write %s%s: %s", name, target, WARNINGS_SUFFIX, exc)
        finally:
            os.close(target_fd)
        return f"{where}/{target}"

    def bring_back(self, moved_to: str) -> str | None:
        """Move a file from archive/ or rejected/ back into the inbox; its new name (None when gone)."""
        where, name = moved_to.split("/", 1)
        source_fd = self.subfolder(where)
        try:
            if self.version(name, source_fd) is None:
                return None
            target = _free_name(self.fd, name, utc_now().strftime("%Y%m%dT%H%M%S"), False)
            os.rename(name, target, src_dir_fd=source_fd, dst_dir_fd=self.fd)
            return target
        finally:
            os.close(source_fd)


def _fit(stem: str, tail: str, reserve: int) -> str:
    """`stem + tail`, the stem cut at a character so the name plus `reserve` bytes fits NAME_MAX."""
    room = NAME_MAX - reserve - len(tail.encode())
    while len(stem.encode()) > room:
        stem = stem[:-1]
    return stem + tail


def _free_name(dir_fd: int, name: str, stamp: str, with_errors: bool) -> str:
    """`name` (shortened to fit) in the folder, or `stem.<stamp>[-n]suffix` when taken; with
    `with_errors`, its `.errors.csv` companion must fit and be free as well."""
    reserve = len(ERRORS_SUFFIX) if with_errors else 0
    suffix = PurePath(name).suffix
    suffix = suffix if len(suffix.encode()) <= 32 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    for n in range(-1, 1000):
        tail = "" if n < 0 else f".{stamp}" + (f"-{n}" if n else "")
        candidate = _fit(stem, tail + suffix, reserve)
        names = [candidate, candidate + ERRORS_SUFFIX] if with_errors else [candidate]
        if all(not _exists(dir_fd, each) for each in names):
            return candidate
    raise OSError(f"no free name for {name}")


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)  # a dangling link counts: it is there
    except FileNotFoundError:
        return False
    return True


def _create_exclusively(dir_fd: int, name: str, content: bytes) -> None:
    """Create a new file; a file or link already under that name makes it fail (never followed)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


# ---- polling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StuckFile:
    receipt_id: int
    sha256: str


def _stuck_files(app: Any, source: str) -> dict[str, _StuckFile]:
    """Files of this source stored but not yet moved out of the inbox, by name."""
    with app.sessions() as session:
        rows = session.execute(
            select(RawReceipt.id, RawReceipt.name, RawPayload.sha256)
            .join(RawPayload, RawPayload.id == RawReceipt.payload_id)
            .where(RawReceipt.source == source, RawReceipt.move_error.is_not(None))
        ).all()
    return {name: _StuckFile(receipt_id, digest) for receipt_id, name, digest in rows}


def _note_move(app: Any, receipt_id: int, moved_to: str | None, move_error: str | None) -> None:
    with app.sessions.begin() as session:
        session.execute(update(RawReceipt).where(RawReceipt.id == receipt_id)
                        .values(moved_to=moved_to, move_error=move_error))


def _bring_back_grown_files(app: Any, source: str, inbox: InboxFolder) -> None:
    """A file written to after it was read and moved (an upload that paused longer than
    `settle_seconds`) goes back to the inbox, to be read again whole once it settles."""
    with app.sessions() as session:
        moved = session.execute(
            select(RawReceipt.id, RawReceipt.moved_to, RawPayload.size)
            .join(RawPayload, RawPayload.id == RawReceipt.payload_id)
            .where(RawReceipt.source == source, RawReceipt.moved_to.is_not(None))
            .order_by(RawReceipt.id.desc()).limit(WATCHED_MOVES)
        ).all()
    for receipt_id, moved_to, size in moved:
        where, name = moved_to.split("/", 1)
        try:
            folder_fd = inbox.subfolder(where)
            try:
                now_there = inbox.version(name, folder_fd)
            finally:
                os.close(folder_fd)
            if now_there is None:
                _note_move(app, receipt_id, None, None)  # removed by the operator: nothing to watch
                continue
            if now_there.size == size:
                continue
            back = inbox.bring_back(moved_to)
        except OSError as exc:
            log.warning("inbox %s: cannot check %s for a late tail: %s", source, moved_to, exc)
            continue
        _note_move(app, receipt_id, None, None)
        log.warning("inbox %s: %s changed after it was read (%s -> %s bytes); moved back as %s to be read again",
                    source, moved_to, size, now_there.size, back)


def poll_inbox_source(app: Any, source: SourceSettings, now: datetime) -> Any:
    """Ingest every ready file of the folder, then move it; one stuck file never holds up the others."""
    from shortage_watch.services.ingest import PollOutcome, record_source_failure, record_source_success

    assert source.path is not None
    folder = Path(source.path)
    if not folder.is_dir():
        raise OSError(f"inbox folder {folder} does not exist")
    outcome = PollOutcome(source.name, "ok")
    inbox = InboxFolder(folder)
    try:
        _bring_back_grown_files(app, source.name, inbox)
        stuck = _stuck_files(app, source.name)
        files = list_ready_files(folder, source.settle_seconds, utc_now())
        for item in files:
            _take_file(app, source, inbox, item, stuck, outcome, now)
        for name, file in stuck.items():
            if inbox.version(name) is None:  # the operator moved it away: nothing is stuck any more
                _note_move(app, file.receipt_id, None, None)
        still_stuck = [f"{name}: {error}" for name, error in _stuck_errors(app, source.name)]
    finally:
        inbox.close()
    if outcome.status == "failed":
        record_source_failure(app, source.name, outcome.error or "")
        return outcome
    note = None
    if still_stuck:
        note = f"{len(still_stuck)} 个文件无法移出收件箱 / file(s) cannot be moved out of the inbox: " + "; ".join(
            still_stuck)
        outcome.error = note
    from shortage_watch.services.ingest import renew_source_lease

    with app.sessions.begin() as session:
        renew_source_lease(session, app, source.name)
        record_source_success(session, source.name, last_error=note[:2000] if note else None)
    return outcome


def _stuck_errors(app: Any, source: str) -> list[tuple[str, str]]:
    with app.sessions() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(RawReceipt.name, RawReceipt.move_error)
            .where(RawReceipt.source == source, RawReceipt.move_error.is_not(None)).order_by(RawReceipt.id))]


def _take_file(app: Any, source: SourceSettings, inbox: InboxFolder, item: InboxFile,
               stuck: dict[str, _StuckFile], outcome: Any, now: datetime) -> None:
    """Read, store and move one file; problems are logged and noted on `outcome`, never raised."""
    from shortage_watch.services.ingest import (
        IngestResult,
        ingest_payload,
        payload_digest,
        refuse_payload,
        renew_source_lease,
    )

    name = item.path.name
    try:
        content, read = read_regular_file(item.path, source.max_bytes)
    except FileNotFoundError:
        return  # taken by another process meanwhile
    except UnusableFile as exc:
        # Too large to archive in the database: it stays on disk in rejected/.
        errors = [{"row": None, "field": None, "reason": exc.reason}]
        try:
            inbox.move_processed(name, True, errors)
        except OSError as move_exc:
            log.error("inbox %s: %s: %s, and it cannot be moved to rejected/: %s",
                      source.name, name, exc.reason, move_exc)
        outcome.add(IngestResult(name=name, status="unusable", errors=errors))
        return
    except OSError as exc:
        log.warning("inbox %s: cannot read %s: %s", source.name, name, exc)
        return
    known = stuck.get(name)
    if known is not None and known.sha256 == payload_digest(content):
        # Stored already; only its move failed. Retry the move, never the ingest.
        _move(app, source, inbox, name, known.receipt_id, read, rejected=None, errors=[], first_try=False)
        return
    reason = refusal_reason(name)
    try:
        if reason is not None:
            with app.sessions.begin() as session:
                renew_source_lease(session, app, source.name)
                result = refuse_payload(session, source=source.name, name=name, content=content, reason=reason,
                                        now=now)
        else:
            result = ingest_payload(
                app, source=source.name, name=name, content=content, kind=source.record_kind, now=now,
                field_map=source.field_map,
                in_each_transaction=lambda session: renew_source_lease(session, app, source.name))
    except DBAPIError as exc:
        # What committed stays (the file resumes after it); the file stays in the inbox for
        # the next poll, and one file the database refuses does not hold up the files behind it.
        log.warning("inbox %s: %s not stored (%s); it stays for the next poll",
                    source.name, name, type(exc).__name__)
        outcome.status = "failed"
        outcome.error = f"{name}: database error {type(exc).__name__}; left in the inbox"
        return
    outcome.add(result)
    rejected = result.rejected > 0 or result.unusable or result.status == "rejected"
    assert result.receipt_id is not None
    _move(app, source, inbox, name, result.receipt_id, read, rejected=rejected, errors=result.errors, first_try=True,
          warnings=result.warnings)


def _move(app: Any, source: SourceSettings, inbox: InboxFolder, name: str, receipt_id: int, read: Any,
          *, rejected: bool | None, errors: list[dict[str, Any]], first_try: bool,
          warnings: list[dict[str, Any]] | None = None) -> None:
    """Move a stored file out of the inbox, unless it changed since it was read; note where it went or why not.

    `rejected` None: a retry of a stuck file, whose outcome is read back from its receipt.
    """
    # Moved only after the commit: a crash before this line re-ingests the file (duplicates only).
    if inbox.version(name) != read:
        # Still being written (an upload that paused longer than settle_seconds): it stays,
        # and is read again whole once it settles; what was stored is then a duplicate.
        log.info("inbox %s: %s changed while it was read; it will be read again", source.name, name)
        if not first_try:
            _note_move(app, receipt_id, None, None)
        return
    if rejected is None:
        with app.sessions() as session:
            receipt = session.get_one(RawReceipt, receipt_id)
            rejected = receipt.status in ("rejected", "partial")
            errors = list(receipt.errors or [])
            warnings = list(receipt.warnings or [])
    try:
        moved_to = inbox.move_processed(name, rejected, errors, warnings)
    except OSError as exc:
        if first_try:
            # Logged once; the receipt keeps the reason, `health` shows it until the file is moved.
            log.error("inbox %s: %s was stored (receipt %s) but cannot be moved out of the inbox: %s; "
                      "it is not read again, and the move is retried each poll", source.name, name, receipt_id, exc)
        _note_move(app, receipt_id, None, str(exc)[:1000] or type(exc).__name__)
        return
    _note_move(app, receipt_id, moved_to, None)
