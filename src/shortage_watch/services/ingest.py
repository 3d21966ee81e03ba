"""Ingest: bytes that arrived -> archived payload, receipt, validated records in the ledger.

One transaction per file or feed page: the payload, its receipt, every new or revised
record with what the record listener does about it, and the source's cursor commit
together. The raw bytes are archived before parsing, so a file that cannot be parsed,
or whose processing fails, still leaves a receipt (status `rejected`) and its bytes.
"""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shortage_watch.clock import utc_now
from shortage_watch.domain.directory import Directory
from shortage_watch.domain.records import (
    MODELS,
    DistributorReportRecord,
    Record,
    RowError,
    hash_canonical_json,
    record_key,
    validate_record,
)
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.parsers import parse_payload
from shortage_watch.settings import SourceSettings
from shortage_watch.store.tables import (
    DistributorReport,
    RawPayload,
    RawReceipt,
    RecordVersion,
    ShortageReport,
    SourceState,
    StoppageNotice,
)

log = logging.getLogger(__name__)

CHUNK = 500
MAX_STORED_ERRORS = 1000
INTERNAL_ERROR = "处理文件时发生内部错误，原件已保存 / internal error while processing the file; the original is kept"
NO_ROWS = "文件没有数据行 / the file has no data rows"


class RecordListener(Protocol):
    """Told of each new or revised current row, inside the transaction that stored it."""

    def record_stored(self, session: Session, kind: str, row: Any, previous: dict | None, now: datetime) -> None: ...


class NoopRecordListener:
    """A listener that does nothing (until the ledger is wired in, and for the benchmark)."""

    def record_stored(self, session: Session, kind: str, row: Any, previous: dict | None, now: datetime) -> None:
        return None


@dataclass
class IngestResult:
    """The outcome of one file or page. `status`: accepted | partial | rejected | unusable."""

    name: str = ""
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    revisions: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: str = "accepted"
    receipt_id: int | None = None
    next_cursor: str | None = None
    has_more: bool = False

    def as_json(self) -> dict[str, Any]:
        """What `submit --json` prints (exactly these four keys)."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
                "errors": self.errors}

    @property
    def unusable(self) -> bool:
        return self.status == "unusable"


@dataclass(frozen=True)
class _KindSpec:
    table: Any
    key_columns: tuple[str, str]
    region_from: str | None  # "distributor" | "hospital": where a missing region_code comes from


SPECS: dict[str, _KindSpec] = {
    "stoppage_notice": _KindSpec(StoppageNotice, ("notice_id", "distributor_code"), "distributor"),
    "distributor_report": _KindSpec(DistributorReport, ("distributor_code", "report_id"), None),
    "shortage_report": _KindSpec(ShortageReport, ("hospital_code", "report_id"), "hospital"),
}


def _insert_ignoring_conflict(session: Session, table: Any, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def archive_payload(session: Session, content: bytes, now: datetime) -> int:
    """The id of the stored payload with these bytes; stores them once per sha256."""
    import hashlib

    digest = hashlib.sha256(content).hexdigest()
    # Two arrivals of the same bytes at once: the unique sha256 lets one insert win and
    # the other do nothing; both then read the same row.
    _insert_ignoring_conflict(
        session, RawPayload, {"sha256": digest, "size": len(content), "content": content, "first_seen_at": now}
    )
    payload_id = session.scalar(select(RawPayload.id).where(RawPayload.sha256 == digest))
    assert payload_id is not None
    return payload_id


def _storable_name(name: str) -> str:
    """A file name or URL as any database stores it: valid UTF-8, no control characters, bounded."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:1000]


def _directory(app: Any) -> Directory:
    try:
        return app.directory
    except Exception:  # a broken directory must not stop intake; regions then stay as received
        log.exception("directory unavailable during ingest; region defaults skipped")
        return Directory()


def store_payload(
    session: Session,
    app: Any,
    *,
    source: str,
    name: str,
    content: bytes,
    kind: str,
    now: datetime,
    field_map: dict[str, str] | None = None,
    format: str | None = None,
) -> IngestResult:
    """Archive, parse, validate and store one payload inside the caller's transaction.

    Database errors propagate (the caller's transaction rolls back and the input is
    processed again later); any other failure rejects the payload with its receipt kept.
    """
    name = _storable_name(name)
    payload_id = archive_payload(session, content, now)
    receipt = RawReceipt(source=source, name=name, payload_id=payload_id, received_at=now, status="received",
                         accepted=0, duplicates=0, rejected=0)
    session.add(receipt)
    session.flush()
    result = IngestResult(name=name, receipt_id=receipt.id)
    try:
        with session.begin_nested(), _cyclic_gc_paused():
            _store_records(session, app, receipt, result, content, source=source, name=name, kind=kind, now=now,
                           field_map=field_map, format=format)
    except UnusableFile as exc:
        result = IngestResult(name=name, receipt_id=receipt.id, status="unusable",
                              errors=[RowError(None, None, exc.reason).as_json()])
    except DBAPIError:
        raise
    except Exception:
        log.exception("ingest of %s from %s failed; payload %s kept", name, source, payload_id)
        result = IngestResult(name=name, receipt_id=receipt.id, status="unusable",
                              errors=[RowError(None, None, INTERNAL_ERROR).as_json()])
    receipt.status = "rejected" if result.status == "unusable" else result.status
    receipt.accepted, receipt.duplicates, receipt.rejected = result.accepted, result.duplicates, result.rejected
    receipt.errors = result.errors[:MAX_STORED_ERRORS]
    session.flush()
    return result


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


def _store_records(
    session: Session, app: Any, receipt: RawReceipt, result: IngestResult, content: bytes, *, source: str,
    name: str, kind: str, now: datetime, field_map: dict[str, str] | None, format: str | None,
) -> None:
    parsed = parse_payload(content, name=name, kind=kind, field_map=field_map, format=format, lazy=True)
    result.next_cursor, result.has_more = parsed.next_cursor, parsed.has_more
    errors: list[RowError] = []
    tz = ZoneInfo(app.settings.timezone)
    writer = _RecordWriter(session, app, source=source, receipt_id=receipt.id, now=now, errors=errors)
    # Rows are validated and written a chunk at a time, so a large file never sits in
    # memory as records (and the garbage collector has little to scan).
    seen_rows = 0
    batch: list[tuple[int, Record]] = []
    for raw in parsed.rows:
        seen_rows += 1
        record, problems = validate_record(raw.kind, raw.values, row=raw.row, now=now, tz=tz)
        if problems:
            errors.extend(problems)
            continue
        batch.append((raw.row, record))  # type: ignore[arg-type]
        if len(batch) >= CHUNK:
            for chunk in _chunks_by_kind(batch):
                writer.write(chunk)
            batch = []
    for chunk in _chunks_by_kind(batch):
        writer.write(chunk)
    errors.extend(parsed.errors)
    if not seen_rows and not errors:
        if parsed.format == "json":
            return  # an empty feed page is normal: nothing new since the cursor
        raise UnusableFile(NO_ROWS)
    result.accepted, result.duplicates, result.revisions = writer.accepted, writer.duplicates, writer.revisions
    errors.sort(key=lambda e: (e.row if e.row is not None else -1))
    result.rejected = len({e.row for e in errors})
    result.errors = [e.as_json() for e in errors]
    if result.rejected == 0:
        result.status = "accepted"
    elif result.accepted or result.duplicates:
        result.status = "partial"
    else:
        result.status = "rejected"


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


class _DriverInsert:
    """Many rows into one table through the driver itself.

    Values are converted by each column's SQLAlchemy type exactly as Core would convert
    them; only Core's per-parameter bookkeeping is skipped, which for a large file costs
    more than the database's own work.
    """

    ROWS_PER_STATEMENT = 100  # multi-row INSERT … RETURNING: small enough to compile quickly

    def __init__(self, connection: Connection, table: Table, columns: Iterable[str],
                 as_stored: tuple[str, ...] = ()) -> None:
        """Writes `columns` (the others take their defaults); `as_stored`: columns whose values
        arrive already as the database keeps them (JSON text)."""
        self.connection = connection
        self.table = table
        self.dialect = connection.dialect
        compiled = insert(table).inline().compile(dialect=self.dialect, column_keys=list(columns))
        self.sql = compiled.string
        # A positional driver takes the values in the compiled order; a named one by column key.
        self.columns = list(compiled.positiontup) if compiled.positional else list(columns)
        self.positional = compiled.positional
        self.processors = {c.key: None if c.key in as_stored else c.type.dialect_impl(self.dialect).bind_processor(
            self.dialect) for c in table.c}
        self._returning: dict[tuple[int, tuple[str, ...]], tuple[str, list[list[str]] | None]] = {}

    def _values(self, rows: list[dict[str, Any]], same: dict[str, Any]) -> list[list[Any]]:
        """Each row's values in `self.columns` order, converted for the driver."""
        template = [None] * len(self.columns)
        varying = []
        for index, key in enumerate(self.columns):
            convert = self.processors[key]
            if key in same:
                template[index] = same[key] if convert is None else convert(same[key])
            else:
                varying.append((index, key, convert))
        converted = []
        for row in rows:
            values = template.copy()
            for index, key, convert in varying:
                value = row[key]
                values[index] = value if convert is None else convert(value)
            converted.append(values)
        return converted

    def insert(self, rows: list[dict[str, Any]], **same: Any) -> None:
        """Insert `rows` (column key -> Python value) in one executemany; `same`: values shared by every row."""
        if not rows:
            return
        values = self._values(rows, same)
        params = [tuple(v) for v in values] if self.positional else [dict(zip(self.columns, v)) for v in values]
        self.connection.exec_driver_sql(self.sql, params)

    def insert_returning(self, rows: list[dict[str, Any]], returning: tuple[str, ...], **same: Any) -> list[Any]:
        """Insert `rows` like `insert`, in multi-row statements; the `returning` columns of the
        new rows come back in no particular order."""
        returned: list[Any] = []
        values = self._values(rows, same)
        for start in range(0, len(values), self.ROWS_PER_STATEMENT):
            batch = values[start:start + self.ROWS_PER_STATEMENT]
            sql, names = self._returning_statement(len(batch), returning)
            if names is None:  # positional, row after row in column order
                params: Any = tuple(value for row in batch for value in row)
            else:
                params = {}
                for row_names, row in zip(names, batch):
                    params.update(zip(row_names, row))
            returned.extend(self.connection.exec_driver_sql(sql, params).all())
        return returned

    def _returning_statement(self, rows: int, returning: tuple[str, ...]) -> tuple[str, list[list[str]] | None]:
        """SQL for `rows` rows (binds `<column>_<row>`) and, for a named driver, each row's bind names."""
        shape = (rows, returning)
        if shape not in self._returning:
            table = self.table
            names = [[f"{key}_{i}" for key in self.columns] for i in range(rows)]
            statement = insert(table).values([
                {key: bindparam(name, type_=table.c[key].type) for key, name in zip(self.columns, row_names)}
                for row_names in names
            ]).returning(*(table.c[key] for key in returning))
            compiled = statement.compile(dialect=self.dialect)
            if compiled.positional:
                if list(compiled.positiontup) != [name for row_names in names for name in row_names]:
                    raise RuntimeError(f"unexpected bind order for {table.name}")
                self._returning[shape] = (compiled.string, None)
            else:
                self._returning[shape] = (compiled.string, names)
        return self._returning[shape]


@dataclass
class _Current:
    row_id: int | None  # None while the insert is pending
    row: Any  # the ORM row, loaded only when a listener or a revision needs it
    version: int
    content_hash: str | None
    data: dict[str, Any] | None


class _RecordWriter:
    """Writes validated records: new ones in bulk, revisions one by one, duplicates not at all."""

    def __init__(self, session: Session, app: Any, *, source: str, receipt_id: int, now: datetime,
                 errors: list[RowError]) -> None:
        self.session = session
        self.source = source
        self.receipt_id = receipt_id
        self.now = now
        self.errors = errors
        self.listener: RecordListener = app.record_listener
        self.directory = _directory(app)
        version_columns = [c.key for c in RecordVersion.__table__.c if not c.primary_key]
        self.versions = _DriverInsert(session.connection(), RecordVersion.__table__, version_columns,
                                      as_stored=("data",))
        self.inserters: dict[str, _DriverInsert] = {}
        self.lookups: dict[tuple[str, int], Any] = {}
        self.accepted = self.duplicates = self.revisions = 0

    def write(self, chunk: list[tuple[int, Record]]) -> None:
        kind = chunk[0][1].record_kind
        spec = SPECS[kind]
        state = self._load_current(kind, spec, [record for _, record in chunk])
        pending: list[tuple[str, Record, str, str]] = []
        pending_keys: set[str] = set()
        for row_number, record in chunk:
            key = record.identity()
            text = record.canonical_json()
            digest = hash_canonical_json(text)
            if key in pending_keys:
                # The same identity twice in one run: store the first before judging the second.
                self._insert_new(kind, spec, pending, state)
                pending, pending_keys = [], set()
            current = state.get(key)
            if current is not None and current.content_hash == digest:
                self.duplicates += 1
                continue
            if isinstance(record, DistributorReportRecord) and not self._notice_known_or_described(record, row_number):
                continue
            if current is None:
                pending.append((key, record, digest, text))
                pending_keys.add(key)
                state[key] = _Current(None, None, 1, digest, None)
            else:
                self._revise(kind, spec, key, record, digest, current)
        self._insert_new(kind, spec, pending, state)

    def _load_current(self, kind: str, spec: _KindSpec, records: list[Record]) -> dict[str, _Current]:
        """The current row, version and content hash of each identity in `records` that exists."""
        first, second = spec.key_columns
        pairs = sorted({(getattr(r, first), getattr(r, second)) for r in records})
        params = {}
        for i, (a, b) in enumerate(pairs):
            params[f"a{i}"], params[f"b{i}"] = a, b
        state: dict[str, _Current] = {}
        # Inserts run immediately and revisions flush themselves, so nothing needs an autoflush
        # here; skipping it keeps each lookup from scanning every row loaded so far.
        with self.session.no_autoflush:
            for row_id, a, b, version in self.session.execute(self._current_query(kind, spec, len(pairs)), params):
                state[record_key(a, b)] = _Current(row_id, None, version, None, None)
            if state:
                versions = self.session.execute(
                    select(RecordVersion.record_key, RecordVersion.version, RecordVersion.content_hash)
                    .where(RecordVersion.kind == kind, RecordVersion.record_key.in_(list(state)))
                )
                for key, version, content_hash in versions:
                    if version == state[key].version:
                        state[key].content_hash = content_hash
        return state

    def _current_query(self, kind: str, spec: _KindSpec, pairs: int) -> Any:
        """id, keys and version of the rows whose (first, second) key is one of :a<i>, :b<i>."""
        if (kind, pairs) not in self.lookups:
            table = spec.table
            first, second = (getattr(table, column) for column in spec.key_columns)
            # One equality pair per identity, ORed: each is a lookup on the unique index, so
            # only the wanted rows are read. Two IN lists would probe every combination
            # (500 ids x 400 parties per chunk: 50x slower on a re-sent file), an IN on one
            # column would read a party's whole history, and SQLite does not drive a row-value
            # IN by the index.
            self.lookups[(kind, pairs)] = select(table.id, first, second, table.version).where(
                or_(*(and_(first == bindparam(f"a{i}"), second == bindparam(f"b{i}")) for i in range(pairs))))
        return self.lookups[(kind, pairs)]

    def _row_values(self, spec: _KindSpec, record: Record) -> dict[str, Any]:
        # A record's fields are plain values (no nested models), so its __dict__ is the
        # same mapping model_dump() builds, without the serializer's cost.
        values = dict(record.__dict__)
        values.pop("record_kind", None)
        if spec.region_from and values.get("region_code") is None:
            # records.md: a missing region_code defaults to the party's region in the directory.
            code = values.get("distributor_code" if spec.region_from == "distributor" else "hospital_code")
            party = (self.directory.distributor(code) if spec.region_from == "distributor"
                     else self.directory.hospital(code))
            if party is not None:
                values["region_code"] = party.region_code
        return values

    def _insert_new(self, kind: str, spec: _KindSpec, pending: list[tuple[str, Record, str, str]],
                    state: dict[str, _Current]) -> None:
        """Store new records (key, record, content hash, canonical JSON) and tell the listener."""
        if not pending:
            return
        rows_values = [self._row_values(spec, record) for _key, record, _digest, _text in pending]
        table = spec.table
        first, second = spec.key_columns
        # A concurrent writer inserting the same identity makes this fail on the unique key;
        # the DB error rolls the whole file back and it is simply processed again later.
        # Multi-row INSERT … RETURNING gives the new ids (in any order: matched by identity);
        # the flushed ORM rows the listener gets are then loaded in one SELECT … IN.
        returned = self._inserter(kind, spec).insert_returning(
            rows_values, ("id", first, second),
            version=1, source=self.source, received_at=self.now, updated_at=self.now,
        )
        id_by_key = {record_key(a, b): row_id for row_id, a, b in returned}
        with self.session.no_autoflush:
            loaded = {row.id: row for row in self.session.scalars(select(table).where(table.id.in_(id_by_key.values())))}
        # The canonical JSON that was hashed is stored as the version's data, as it is.
        self.versions.insert(
            [{"record_key": key, "content_hash": digest, "data": text} for key, _record, digest, text in pending],
            kind=kind, version=1, source=self.source, receipt_id=self.receipt_id, received_at=self.now,
        )
        for key, _record, digest, _text in pending:
            row = loaded[id_by_key[key]]
            # data None: a revision later in this file reads it back from its version row.
            state[key] = _Current(row.id, row, 1, digest, None)
            self.accepted += 1
            self.listener.record_stored(self.session, kind, row, None, self.now)

    def _inserter(self, kind: str, spec: _KindSpec) -> _DriverInsert:
        if kind not in self.inserters:
            fields = [name for name in MODELS[kind].model_fields if name != "record_kind"]
            self.inserters[kind] = _DriverInsert(self.session.connection(), spec.table.__table__,
                                                 [*fields, "version", "source", "received_at", "updated_at"])
        return self.inserters[kind]

    def _revise(self, kind: str, spec: _KindSpec, key: str, record: Record, digest: str, current: _Current) -> None:
        previous = current.data
        if previous is None:
            previous = self.session.scalar(
                select(RecordVersion.data).where(RecordVersion.kind == kind, RecordVersion.record_key == key,
                                                 RecordVersion.version == current.version)
            )
        row = current.row if current.row is not None else self.session.get(spec.table, current.row_id)
        values = self._row_values(spec, record)
        for name, value in values.items():
            setattr(row, name, value)
        row.version = current.version + 1
        row.source = self.source
        row.updated_at = self.now
        self.session.add(RecordVersion(kind=kind, record_key=key, version=row.version, content_hash=digest,
                                       data=record.data(), source=self.source, receipt_id=self.receipt_id,
                                       received_at=self.now))
        self.session.flush()
        current.row, current.version, current.content_hash, current.data = row, row.version, digest, record.data()
        self.accepted += 1
        self.revisions += 1
        self.listener.record_stored(self.session, kind, row, previous, self.now)

    def _notice_known_or_described(self, record: DistributorReportRecord, row_number: int) -> bool:
        """records.md: a report naming an unknown notice must describe it."""
        if record.notice_id is None or not record.missing_description():
            return True
        self.session.flush()
        known = self.session.scalar(
            select(StoppageNotice.id).where(StoppageNotice.notice_id == record.notice_id,
                                            StoppageNotice.distributor_code == record.distributor_code)
        )
        if known is not None:
            return True
        self.errors.append(RowError(
            row_number, "notice_id",
            "通知编号未登记，且未描述通知（生产企业、药品编码、药品名称、类型、通知日期） / "
            "notice_id is unknown and the notice is not described "
            "(manufacturer, product_code, product_name, kind, notified_on)",
        ))
        return False


# ---- entry points -------------------------------------------------------------------------------


def ingest_payload(app: Any, *, source: str, name: str, content: bytes, kind: str, now: datetime,
                   field_map: dict[str, str] | None = None, format: str | None = None) -> IngestResult:
    """Store one payload in its own transaction; see `store_payload`."""
    with app.sessions.begin() as session:
        return store_payload(session, app, source=source, name=name, content=content, kind=kind, now=now,
                             field_map=field_map, format=format)


def read_input_file(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a file to submit; UnusableFile when missing, unreadable, not a file or too large."""
    try:
        if not path.is_file():
            if path.exists():
                raise UnusableFile(f"不是普通文件：{path} / not a regular file: {path}")
            raise UnusableFile(f"文件不存在：{path} / file not found: {path}")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise UnusableFile(f"文件过大（上限 {max_bytes} 字节） / file larger than {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UnusableFile(f"无法读取文件：{path} / cannot read {path}: {exc.strerror}") from None


def ingest_file(app: Any, path: Path, kind: str, now: datetime, source: str = "cli") -> IngestResult:
    """Ingest one file by hand (`submit`); UnusableFile when it cannot even be read."""
    content = read_input_file(Path(path))
    return ingest_payload(app, source=source, name=Path(path).name, content=content, kind=kind, now=now)


# ---- sources ------------------------------------------------------------------------------------


@dataclass
class PollOutcome:
    """What one poll of one source did. `status`: ok | not_modified | failed | busy | not_due."""

    source: str
    status: str
    items: int = 0  # files or pages stored
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    error: str | None = None
    results: list[IngestResult] = field(default_factory=list)

    def add(self, result: IngestResult) -> None:
        self.items += 1
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected += result.rejected
        self.results.append(result)

    def line(self) -> str:
        """One line for `shortage-watch poll`."""
        if self.status == "failed":
            return f"{self.source}: failed: {self.error}"
        if self.status == "busy":
            return f"{self.source}: skipped (another replica is polling it)"
        if self.status == "not_due":
            return f"{self.source}: not due yet"
        if self.status == "not_modified":
            return f"{self.source}: not modified"
        unusable = sum(1 for r in self.results if r.unusable)
        note = (f", {unusable} unusable" if unusable else "") + (f"; {self.error}" if self.error else "")
        return (f"{self.source}: ok, {self.items} item(s), accepted {self.accepted}, duplicates {self.duplicates}, "
                f"rejected {self.rejected}{note}")


class LeaseLost(Exception):
    """Another replica took over this source's lease while we were polling it."""


def _lease_seconds(app: Any) -> int:
    return app.settings.daemon.lease_seconds


def acquire_source_lease(app: Any, name: str) -> bool:
    """Take the source's lease for this replica; False when another replica holds it."""
    real_now = utc_now()
    with app.sessions.begin() as session:
        _insert_ignoring_conflict(session, SourceState, {"name": name, "consecutive_failures": 0})
        # Claim: the UPDATE matches only a free, expired or already-ours lease; changing no
        # row means another replica holds it and polls this source now.
        claimed = session.execute(
            update(SourceState)
            .where(SourceState.name == name,
                   or_(SourceState.lease_owner.is_(None), SourceState.lease_until < real_now,
                       SourceState.lease_owner == app.replica_id))
            .values(lease_owner=app.replica_id, lease_until=real_now + timedelta(seconds=_lease_seconds(app)))
        )
        return claimed.rowcount == 1


def renew_source_lease(session: Session, app: Any, name: str) -> None:
    """Extend our lease inside a page/file transaction; LeaseLost when it is no longer ours."""
    real_now = utc_now()
    # Only the owner's UPDATE matches; no row changed means the lease expired and another
    # replica took the source over, so this transaction must not move its cursor.
    renewed = session.execute(
        update(SourceState).where(SourceState.name == name, SourceState.lease_owner == app.replica_id)
        .values(lease_until=real_now + timedelta(seconds=_lease_seconds(app)))
    )
    if renewed.rowcount != 1:
        raise LeaseLost(name)


def release_source_lease(app: Any, name: str) -> None:
    with app.sessions.begin() as session:
        session.execute(update(SourceState).where(SourceState.name == name,
                                                  SourceState.lease_owner == app.replica_id)
                        .values(lease_owner=None, lease_until=None))


def record_source_success(session: Session, name: str, **values: Any) -> None:
    session.execute(update(SourceState).where(SourceState.name == name).values(
        last_success_at=utc_now(), last_error=None, consecutive_failures=0, **values))


def record_source_failure(app: Any, name: str, error: str) -> None:
    with app.sessions.begin() as session:
        _insert_ignoring_conflict(session, SourceState, {"name": name, "consecutive_failures": 0})
        session.execute(update(SourceState).where(SourceState.name == name).values(
            last_error=error[:2000], last_error_at=utc_now(),
            consecutive_failures=SourceState.consecutive_failures + 1))


def source_is_due(state: SourceState | None, source: SourceSettings, real_now: datetime) -> bool:
    """Due when never polled, or `interval` seconds (doubled per consecutive failure, up to 32x) have passed."""
    if state is None:
        return True
    last = max((t for t in (state.last_success_at, state.last_error_at) if t is not None), default=None)
    if last is None:
        return True
    backoff = min(2 ** (state.consecutive_failures or 0), 32)
    return real_now >= last + timedelta(seconds=source.interval * backoff)


def poll_source(app: Any, source: SourceSettings, now: datetime) -> PollOutcome:
    """Poll one source under its lease; never raises (a failure is recorded on the source)."""
    try:
        if not acquire_source_lease(app, source.name):
            return PollOutcome(source.name, "busy")
    except Exception as exc:
        log.exception("source %s: cannot take its lease", source.name)
        return PollOutcome(source.name, "failed", error=f"database: {type(exc).__name__}")
    try:
        if source.type == "http":
            from shortage_watch.intake.sources_http import poll_http_source

            outcome = poll_http_source(app, source, now)
        else:
            from shortage_watch.intake.sources_inbox import poll_inbox_source

            outcome = poll_inbox_source(app, source, now)
    except Exception as exc:  # one bad source never stops the others or the daemon
        if isinstance(exc, OSError):
            # A missing or unreadable inbox folder is the operator's news, not a bug:
            # one line each poll, no traceback.
            log.error("source %s: poll failed: %s", source.name, exc, extra={"source": source.name})
        else:
            log.exception("source %s: poll failed", source.name, extra={"source": source.name})
        outcome = PollOutcome(source.name, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        try:
            record_source_failure(app, source.name, outcome.error or "")
        except Exception:
            log.exception("source %s: cannot record the failure", source.name)
    finally:
        try:
            release_source_lease(app, source.name)
        except Exception:
            log.exception("source %s: cannot release its lease (it expires by itself)", source.name)
    return outcome


def poll_sources(app: Any, now: datetime, only: str | None = None, *, force: bool = False) -> list[PollOutcome]:
    """Poll every configured source that is due (all of them with `force`, or just `only`)."""
    outcomes: list[PollOutcome] = []
    sources = [s for s in app.settings.sources if only is None or s.name == only]
    if not sources:
        return outcomes
    try:
        with app.sessions() as session:
            states = {s.name: s for s in session.scalars(select(SourceState))}
    except Exception:
        log.exception("cannot read source state")
        states = {}
    real_now = utc_now()
    for source in sources:
        if not (force or only) and not source_is_due(states.get(source.name), source, real_now):
            outcomes.append(PollOutcome(source.name, "not_due"))
            continue
        outcomes.append(poll_source(app, source, now))
    return outcomes
