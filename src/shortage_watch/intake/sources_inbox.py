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
from typing import Any, Iterable

from shortage_watch.clock import utc_now
from shortage_watch.intake.encodings import UnusableFile

log = logging.getLogger(__name__)

ACCEPTED_SUFFIXES = (".csv", ".xlsx", ".json")
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")
ARCHIVE, REJECTED = "archive", "rejected"
ERRORS_SUFFIX = ".errors.csv"
WARNINGS_SUFFIX = ".warnings.csv"
ERRORS_HEADER = ("行号/row", "字段/field", "原因/reason")
NAME_MAX = 255  # bytes in one file name on Linux file systems

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
