"""Ingest: bytes that arrived -> archived payload, receipt, validated records in the ledger.

A feed page is one transaction: the payload, its receipt, every new or revised record
with what the record listener does about it, and the source's cursor commit together.
A file (inbox, `submit`) is stored a chunk of rows per transaction, so a large one never
holds the database's write lock for long; its receipt records the last row committed,
and an interrupted file resumes after it. The raw bytes are archived before parsing, so
a file that cannot be parsed, or whose processing fails, still leaves a receipt (status
`rejected`) and its bytes.
"""

from __future__ import annotations

import gc
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.domain.directory import Directory
from shortage_watch.domain.records import Record, RowError, validate_record
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.parsers import ParseLimits, ParsedFile, parse_payload
from shortage_watch.services.record_writer import RecordListener, RecordWriter
from shortage_watch.store.claims import LeaseLost
from shortage_watch.store.payloads import archive_payload, new_receipt, record_progress, resumable_receipt
from shortage_watch.store.statistics import refresh_stale_statistics
from shortage_watch.store.tables import RawReceipt

log = logging.getLogger(__name__)

CHUNK = 500  # rows validated and written together, at most; a file commits once per chunk
FIRST_CHUNK, MIN_CHUNK = 20, 5
LOCK_HOLD_TARGET = 0.5  # seconds: a file's chunks shrink (or grow) to hold the write lock about this long
# Rows of one file after which the planner's statistics are checked, then again at every four times as many.
FIRST_STATISTICS_CHECK, STATISTICS_CHECK_GROWTH = 2000, 4
MAX_STORED_ERRORS = 1000
MAX_LISTED_ERRORS = 10000  # errors kept for the sender (errors.csv); beyond, only counted
INTERNAL_ERROR = "处理文件时发生内部错误，原件已保存 / internal error while processing the file; the original is kept"
NO_ROWS = "文件没有数据行 / the file has no data rows"


# Given a valid record and its row: a RowError refusing it, or None to store it.
Admission = Callable[[Record, int | None], RowError | None]


@dataclass(frozen=True)
class IngestDeps:
    """What storing a file or page uses: the write sessions, the record listener (the ledger), the
    directory (an empty one when none is usable: regions then stay as received), the parser's
    limits and the local time zone. Built by `App.ingest_deps()`."""

    sessions: sessionmaker[Session]
    listener: RecordListener
    directory: Directory
    limits: ParseLimits
    timezone: ZoneInfo


@dataclass
class IngestResult:
    """The outcome of one file or page. `status`: accepted | partial | rejected | unusable."""

    name: str = ""
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    revisions: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Rows accepted but worth a look (a distributor or hospital not in the directory).
    warnings: list[dict[str, Any]] = field(default_factory=list)
    status: str = "accepted"
    receipt_id: int | None = None
    next_cursor: str | None = None
    has_more: bool = False

    def as_json(self) -> dict[str, Any]:
        """What `submit --json` prints (exactly these five keys)."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
                "errors": self.errors, "warnings": self.warnings}

    @property
    def unusable(self) -> bool:
        return self.status == "unusable"


def _storable_name(name: str) -> str:
    """A file name or URL as any database stores it: valid UTF-8, no control characters, bounded."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:1000]


def store_payload(
    session: Session,
    deps: IngestDeps,
    *,
    source: str,
    name: str,
    content: bytes,
    kind: str,
    now: datetime,
    field_map: dict[str, str] | None = None,
    format: str | None = None,
    admit: Admission | None = None,
) -> IngestResult:
    """Archive, parse, validate and store one feed page inside the caller's transaction.

    `admit`, when given, may refuse a valid record as a row error (a web account handing in
    another distributor's record); the other records are still stored. Database errors propagate (the caller's transaction rolls back and the input is
    processed again later); any other failure rejects the payload with its receipt kept.
    An empty JSON page is normal (nothing new since the cursor).
    """
    name = _storable_name(name)
    receipt = new_receipt(session, source, name, archive_payload(session, content, now), now)
    tally = _Tally()
    empty_is_normal = False
    try:
        with session.begin_nested(), _cyclic_gc_paused():
            parsed = parse_payload(content, name=name, kind=kind, field_map=field_map, format=format, lazy=True,
                                   limits=deps.limits)
            writer = RecordWriter(session, deps.listener, deps.directory, source=source, receipt_id=receipt.id, now=now)
            for chunk in _validated_chunks(parsed, now=now, tz=deps.timezone, after_row=None,
                                           admit=admit):
                tally.add(chunk, writer)
            tally.cursor = (parsed.next_cursor, parsed.has_more)
            empty_is_normal = parsed.format == "json"  # an empty JSON page: nothing new since the cursor
    except UnusableFile as exc:
        tally = _Tally(failure=exc.reason)
    except DBAPIError:
        raise
    except Exception:
        log.exception("ingest of %s from %s failed; payload %s kept", name, source, receipt.payload_id)
        tally = _Tally(failure=INTERNAL_ERROR)
    result = tally.result(name, receipt.id, empty_is_normal=empty_is_normal)
    _record_outcome(receipt, result)
    session.flush()
    return result


def refuse_payload(session: Session, *, source: str, name: str, content: bytes, reason: str,
                   now: datetime) -> IngestResult:
    """A file that is not read as data (an `.xls`, say): archived, with a rejected receipt saying why."""
    name = _storable_name(name)
    receipt = new_receipt(session, source, name, archive_payload(session, content, now), now)
    result = IngestResult(name=name, receipt_id=receipt.id, status="unusable",
                          errors=[RowError(None, None, reason).as_json()])
    _record_outcome(receipt, result)
    return result


def _record_outcome(receipt: RawReceipt, result: IngestResult) -> None:
    receipt.status = "rejected" if result.status == "unusable" else result.status
    receipt.accepted, receipt.duplicates, receipt.rejected = result.accepted, result.duplicates, result.rejected
    receipt.errors = result.errors[:MAX_STORED_ERRORS]
    if result.warnings:  # left SQL NULL otherwise: the operations digest reads only receipts with warnings
        receipt.warnings = result.warnings[:MAX_STORED_ERRORS]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file's rows are written.

    Every row allocates a few dozen container objects (cells, records, driver parameters,
    ORM rows), so the collector would otherwise run full passes over the whole heap many
    times per large file, for cycles it (almost) never finds: about a sixth of the time.
    Reference counting still frees everything as usual; whoever paused first resumes it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Chunk:
    """Up to CHUNK consecutive rows: the valid records, the rows' errors, and the last row number."""

    last_row: int | None
    records: list[tuple[int, Record]]
    errors: list[RowError]
    rows: int  # rows read (valid or not)


def _validated_chunks(parsed: ParsedFile, *, now: datetime, tz: ZoneInfo, after_row: int | None,
                      size: Callable[[], int] = lambda: CHUNK, admit: Admission | None = None) -> Iterator[_Chunk]:
    """The parsed rows validated, `size()` rows at a time, skipping rows up to `after_row` (done before).

    Rows are validated a chunk at a time, so a large file never sits in memory as
    records (and the garbage collector has little to scan). The parser's own errors
    (rows it could not place) go with the chunk in which it found them.
    """
    records: list[tuple[int, Record]] = []
    errors: list[RowError] = []
    rows = 0
    last_row = after_row
    parser_errors_seen = 0

    def chunk() -> _Chunk:
        nonlocal records, errors, rows, parser_errors_seen
        found = parsed.errors[parser_errors_seen:]
        parser_errors_seen = len(parsed.errors)
        errors.extend(e for e in found if after_row is None or e.row is None or e.row > after_row)
        done = _Chunk(last_row, records, errors, rows)
        records, errors, rows = [], [], 0
        return done

    for raw in parsed.rows:
        rows += 1
        last_row = raw.row
        if after_row is not None and raw.row <= after_row:
            continue
        record, problems = validate_record(raw.kind, raw.values, row=raw.row, now=now, tz=tz)
        refusal = admit(record, raw.row) if admit is not None and record is not None else None  # type: ignore[arg-type]
        if problems:
            errors.extend(problem.in_columns(raw.columns) for problem in problems)
        elif refusal is not None:
            errors.append(refusal.in_columns(raw.columns))
        else:
            records.append((raw.row, record))  # type: ignore[arg-type]
        if rows >= size():
            yield chunk()
    yield chunk()


@dataclass
class _Tally:
    """What a file's chunks added up to so far."""

    accepted: int = 0
    duplicates: int = 0
    revisions: int = 0
    rejected: int = 0
    rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    unlisted: int = 0
    failure: str | None = None  # why the file (or the rest of it) could not be read
    cursor: tuple[str | None, bool] = (None, False)

    def add(self, chunk: _Chunk, writer: RecordWriter) -> None:
        """Write the chunk's records and count them with its errors."""
        errors = list(chunk.errors)
        writer.errors = errors
        for run in _chunks_by_kind(chunk.records):
            writer.write(run)
        self.accepted, self.duplicates, self.revisions = (
            self.accepted + writer.accepted, self.duplicates + writer.duplicates, self.revisions + writer.revisions)
        writer.accepted = writer.duplicates = writer.revisions = 0
        self.warnings.extend(w.as_json() for w in writer.warnings[: max(0, MAX_LISTED_ERRORS - len(self.warnings))])
        writer.warnings = []
        self.rows += chunk.rows
        # A row's errors all arise in the chunk that read it, so distinct rows add up.
        self.rejected += len({e.row for e in errors})
        for error in sorted(errors, key=lambda e: (e.row if e.row is not None else -1)):
            if len(self.errors) < MAX_LISTED_ERRORS:
                self.errors.append(error.as_json())
            else:
                self.unlisted += 1

    def result(self, name: str, receipt_id: int | None, *, empty_is_normal: bool) -> IngestResult:
        """The file's outcome: `unusable` when it failed before anything was stored."""
        result = IngestResult(name=name, receipt_id=receipt_id, accepted=self.accepted, duplicates=self.duplicates,
                              revisions=self.revisions, rejected=self.rejected, errors=list(self.errors),
                              warnings=list(self.warnings))
        result.next_cursor, result.has_more = self.cursor
        if self.unlisted:
            result.errors.append(RowError(None, None, (
                f"另有 {self.unlisted} 条错误未列出 / {self.unlisted} more errors not listed")).as_json())
        stored = self.accepted or self.duplicates
        if self.failure is not None:
            result.errors.append(RowError(None, None, self.failure).as_json())
            if not stored:
                result.status, result.rejected, result.errors = "unusable", 0, [RowError(None, None, self.failure).as_json()]
                return result
            result.rejected += 1
        elif not self.rows and not self.rejected:
            if empty_is_normal:
                return result
            result.status, result.errors = "unusable", [RowError(None, None, NO_ROWS).as_json()]
            return result
        if result.rejected == 0:
            result.status = "accepted"
        elif stored:
            result.status = "partial"
        else:
            result.status = "rejected"
        return result


def _chunks_by_kind(items: list[tuple[int, Record]]) -> Iterable[list[tuple[int, Record]]]:
    """Consecutive runs of one kind, at most CHUNK long, in file order."""
    chunk: list[tuple[int, Record]] = []
    for item in items:
        if chunk and (len(chunk) >= CHUNK or chunk[0][1].record_kind != item[1].record_kind):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


# ---- entry points -------------------------------------------------------------------------------


def ingest_payload(deps: IngestDeps, *, source: str, name: str, content: bytes, kind: str, now: datetime,
                   field_map: dict[str, str] | None = None, format: str | None = None,
                   in_each_transaction: Callable[[Session], None] | None = None) -> IngestResult:
    """Archive, parse, validate and store one file, one transaction per chunk of rows.

    The payload and its receipt commit first. Each chunk's records (at most CHUNK rows,
    fewer when the listener is slow: see `_ChunkSizer`), what the listener
    does about them, and the receipt's progress (`rows_done`, counts, errors) commit
    together, so a crash mid-file loses nothing committed and stores nothing twice: the
    same bytes from the same source under the same name resume after `rows_done` (and a
    row stored again would be a duplicate by its content hash). Database errors
    propagate; any other failure rejects the rest of the file, with its receipt kept.
    `in_each_transaction` runs first in every transaction (the inbox renews its lease).
    """
    name = _storable_name(name)
    with deps.sessions.begin() as session:
        if in_each_transaction is not None:
            in_each_transaction(session)
        receipt = resumable_receipt(session, source, name, content, now)
        receipt_id, after_row = receipt.id, receipt.rows_done
        one_write_lock = session.get_bind().dialect.name == "sqlite"
        tally = _Tally(accepted=receipt.accepted, duplicates=receipt.duplicates, rejected=receipt.rejected,
                       errors=list(receipt.errors or []))
    try:
        with _cyclic_gc_paused():
            parsed = parse_payload(content, name=name, kind=kind, field_map=field_map, format=format, lazy=True,
                                   limits=deps.limits)
            # Rows are read and validated outside any transaction: between two chunks the
            # write lock is free for the heartbeat, `health` and the other jobs.
            sizer = _ChunkSizer(pause_between=one_write_lock)
            next_statistics_check = FIRST_STATISTICS_CHECK
            writer: RecordWriter | None = None
            for chunk in _validated_chunks(parsed, now=now, tz=deps.timezone, after_row=after_row,
                                           size=sizer.size):
                with sizer.timing(), deps.sessions.begin() as session:
                    if in_each_transaction is not None:
                        in_each_transaction(session)
                    if writer is None:
                        writer = RecordWriter(session, deps.listener, deps.directory, source=source, receipt_id=receipt_id,
                                              now=now)
                    else:
                        writer.use(session)
                    tally.add(chunk, writer)
                    record_progress(session, receipt_id, rows_done=chunk.last_row, accepted=tally.accepted,
                                    duplicates=tally.duplicates, rejected=tally.rejected, errors=tally.errors[:MAX_STORED_ERRORS])
                    if tally.rows >= next_statistics_check:
                        # A backlog can multiply the ledger within one file; the next chunks' lookups are
                        # planned on statistics that still count the tables before it.
                        refresh_stale_statistics(session.connection(), tally.rows)
                        next_statistics_check = tally.rows * STATISTICS_CHECK_GROWTH
                # With the collector paused, each chunk's reference cycles (ORM rows and sessions)
                # would pile up for the whole file; the young generations hold just the last
                # chunks' objects, so collecting them is cheap and memory stays flat.
                gc.collect(1)
    except UnusableFile as exc:
        tally.failure = exc.reason
    except (DBAPIError, LeaseLost):
        raise  # what committed stays; the rest is stored when the file is read again
    except Exception:
        log.exception("ingest of %s from %s failed; payload kept (receipt %s)", name, source, receipt_id)
        tally.failure = INTERNAL_ERROR
    result = tally.result(name, receipt_id, empty_is_normal=False)
    with deps.sessions.begin() as session:
        _record_outcome(session.get_one(RawReceipt, receipt_id), result)
    return result


class _ChunkSizer:
    """Rows per chunk, adapted so one chunk's transaction holds the write lock about
    LOCK_HOLD_TARGET seconds, whatever the record listener costs per row. `pause_between`:
    after a long chunk, leave the lock free a moment (a database with one write lock, SQLite)."""

    def __init__(self, *, pause_between: bool) -> None:
        self.rows = min(FIRST_CHUNK, CHUNK)  # a listener's cost per row is not known before the first chunk
        self.pause_between = pause_between

    def size(self) -> int:
        return self.rows

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Time one chunk's transaction, size the next, and leave the lock free for a moment."""
        started = time.perf_counter()
        yield
        held = time.perf_counter() - started
        if held > LOCK_HOLD_TARGET:
            self.rows = max(MIN_CHUNK, round(self.rows * LOCK_HOLD_TARGET / held))
        elif held < LOCK_HOLD_TARGET / 2:
            self.rows = min(CHUNK, self.rows * 2)
        if self.pause_between and held > LOCK_HOLD_TARGET / 2:
            # Race for SQLite's write lock: a waiting writer (the heartbeat, a sweep) polls it
            # every few to 100 ms and would rarely hit the instant between two long chunks
            # (a slow listener leaves little to validate in between); a pause of a tenth of
            # the hold lets it in, so none waits past its busy timeout.
            # PostgreSQL locks rows, not the database: a sweep or the heartbeat writes beside the chunk, and a
            # pause there only slowed the file (a tenth of each chunk's time once chunks take 0.25 s).
            time.sleep(min(0.05, held / 10))


def read_input_file(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a file to submit; UnusableFile when missing, unreadable, not a file or too large."""
    try:
        if not path.is_file():
            if path.exists():
                raise UnusableFile(f"不是普通文件：{path} / not a regular file: {path}")
            raise UnusableFile(f"文件不存在：{path} / file not found: {path}")
        with path.open("rb") as handle:
            content = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        if max_bytes is not None and len(content) > max_bytes:
            raise UnusableFile(f"文件过大（上限 {max_bytes} 字节，见设置 intake.max_bytes） / "
                               f"file larger than intake.max_bytes={max_bytes} bytes")
        return content
    except OSError as exc:
        raise UnusableFile(f"无法读取文件：{path} / cannot read {path}: {exc.strerror}") from None
