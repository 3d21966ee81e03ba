"""The record writer: validated records into the record tables and their versions, a run of one
kind at a time: new records and revisions in bulk, duplicates (same content hash) not at
all; the record listener (the ledger) is told of each new or revised row in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from shortage_watch.domain.directory import Directory, unknown_party_warnings
from shortage_watch.domain.records import MODELS, DistributorReportRecord, Record, RowError, hash_canonical_json, record_key
from shortage_watch.store.bulk import DriverInsert, updater
from shortage_watch.store.record_rows import CurrentRows, rows_by_id, stored_notice_pairs, version_data_of, version_hashes
from shortage_watch.store.report_rows import expire_loaded
from shortage_watch.store.tables import DistributorReport, RecordRow, RecordVersion, ShortageReport, StoppageNotice


class RecordListener(Protocol):
    """Told of each new or revised current row, inside the transaction that stored it.

    A listener may also take the new rows of a chunk at once: `records_stored(session, kind,
    rows, now)` (rows in file order), and its revised rows: `records_revised(session, kind,
    [(row, previous data)], now)`; without them, each is told to `record_stored`.
    """

    def record_stored(self, session: Session, kind: str, row: RecordRow, previous: dict | None, now: datetime) -> None: ...


class NoopRecordListener:
    """A listener that does nothing (until the ledger is wired in, and for the benchmark)."""

    def records_stored(self, session: Session, kind: str, rows: list[RecordRow], now: datetime) -> None:
        return None

    def record_stored(self, session: Session, kind: str, row: RecordRow, previous: dict | None, now: datetime) -> None:
        return None


@dataclass(frozen=True)
class _KindSpec:
    table: type[RecordRow]
    key_columns: tuple[str, str]
    region_from: str | None  # "distributor" | "hospital": where a missing region_code comes from


SPECS: dict[str, _KindSpec] = {
    "stoppage_notice": _KindSpec(StoppageNotice, ("notice_id", "distributor_code"), "distributor"),
    "distributor_report": _KindSpec(DistributorReport, ("distributor_code", "report_id"), None),
    "shortage_report": _KindSpec(ShortageReport, ("hospital_code", "report_id"), "hospital"),
}


def stored_values(record: Record, directory: Directory) -> dict[str, Any]:
    """The record's fields as its row stores them: a missing region_code is its party's in the directory."""
    # A record's fields are plain values (no nested models), so its __dict__ is the
    # same mapping model_dump() builds, without the serializer's cost.
    values = dict(record.__dict__)
    region_from = SPECS[values.pop("record_kind")].region_from
    if region_from and values.get("region_code") is None:
        # records.md: a missing region_code defaults to the party's region in the directory.
        code = values.get("distributor_code" if region_from == "distributor" else "hospital_code")
        party = directory.distributor(code) if region_from == "distributor" else directory.hospital(code)
        if party is not None:
            values["region_code"] = party.region_code
    return values


@dataclass
class _Current:
    row_id: int | None  # None while the insert is pending
    row: RecordRow | None  # the ORM row, loaded only when a listener or a revision needs it
    version: int
    content_hash: str | None
    data: dict[str, Any] | None


class RecordWriter:
    """Writes validated records: new ones and revisions in bulk, duplicates not at all; tells
    `listener` of each new or revised row in the same transaction. `directory` gives a record without
    a region its party's."""

    def __init__(self, session: Session, listener: RecordListener, directory: Directory, *, source: str, receipt_id: int,
                 now: datetime) -> None:
        self.session = session
        self.source = source
        self.receipt_id = receipt_id
        self.now = now
        self.errors: list[RowError] = []  # where rows it refuses are reported (set per chunk)
        self.warnings: list[RowError] = []  # accepted rows worth a look, collected by the tally per chunk
        self.listener = listener
        self.directory = directory
        version_columns = [c.key for c in RecordVersion.__table__.c if not c.primary_key]
        self.versions = DriverInsert(session.connection(), RecordVersion.__table__, version_columns,
                                      as_stored=("data",))
        self.inserters: dict[str, DriverInsert] = {}
        self.current_rows = {kind: CurrentRows(spec.table, spec.key_columns) for kind, spec in SPECS.items()}
        self.accepted = self.duplicates = self.revisions = 0

    def use(self, session: Session) -> None:
        """Write in `session` (the next chunk's transaction) from now on; compiled statements are kept."""
        self.session = session
        connection = session.connection()
        for inserter in (self.versions, *self.inserters.values()):
            inserter.connection = connection

    def write(self, chunk: list[tuple[int, Record]]) -> None:
        kind = chunk[0][1].record_kind
        spec = SPECS[kind]
        state = self._load_current(kind, spec, [record for _, record in chunk])
        # Notices are not written in a run of reports: the ones the run's reports name are read once.
        named = stored_notice_pairs(self.session, [(record.notice_id, record.distributor_code) for _, record in chunk
                                              if isinstance(record, DistributorReportRecord) and record.notice_id
                                              and record.missing_description()])
        pending: list[tuple[str, Record, str, str]] = []
        revising: list[tuple[str, Record, str, str, _Current]] = []
        held_keys: set[str] = set()  # identities pending or being revised
        for row_number, record in chunk:
            key = record.identity()
            text = record.canonical_json()
            digest = hash_canonical_json(text)
            if key in held_keys:
                # The same identity twice in one run: store the first before judging the second.
                self._revise(kind, spec, revising)
                self._insert_new(kind, spec, pending, state)
                pending, revising, held_keys = [], [], set()
            current = state.get(key)
            if current is not None and current.content_hash == digest:
                self.duplicates += 1
                continue
            if isinstance(record, DistributorReportRecord) and not self._notice_known_or_described(record, row_number, named):
                continue
            self.warnings.extend(unknown_party_warnings(record, row_number, self.directory))
            if revising if current is None else pending:
                # A run is all new rows or all revisions, so the listener is told of a chunk's rows in file
                # order: a new hospital report joins its case before a later revision resolves the case's
                # only other part (told the other way round, the case resolved and the new report opened another).
                self._revise(kind, spec, revising)
                self._insert_new(kind, spec, pending, state)
                pending, revising, held_keys = [], [], set()
            if current is None:
                pending.append((key, record, digest, text))
                state[key] = _Current(None, None, 1, digest, None)
            else:
                revising.append((key, record, digest, text, current))
            held_keys.add(key)
        self._revise(kind, spec, revising)
        self._insert_new(kind, spec, pending, state)

    def _load_current(self, kind: str, spec: _KindSpec, records: list[Record]) -> dict[str, _Current]:
        """The current row, version and content hash of each identity in `records` that exists."""
        first, second = spec.key_columns
        pairs = sorted({(getattr(r, first), getattr(r, second)) for r in records})
        state: dict[str, _Current] = {}
        # Inserts run immediately and revisions flush themselves, so nothing needs an autoflush
        # here; skipping it keeps each lookup from scanning every row loaded so far.
        with self.session.no_autoflush:
            for row_id, a, b, version in self.current_rows[kind].read(self.session, pairs):
                state[record_key(a, b)] = _Current(row_id, None, version, None, None)
            if state:
                for key, version, content_hash in version_hashes(self.session, kind, list(state)):
                    if version == state[key].version:
                        state[key].content_hash = content_hash
        return state

    def _insert_new(self, kind: str, spec: _KindSpec, pending: list[tuple[str, Record, str, str]],
                    state: dict[str, _Current]) -> None:
        """Store new records (key, record, content hash, canonical JSON) and tell the listener."""
        if not pending:
            return
        rows_values = [stored_values(record, self.directory) for _key, record, _digest, _text in pending]
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
            loaded = rows_by_id(self.session, table, list(id_by_key.values()))
        # The canonical JSON that was hashed is stored as the version's data, as it is.
        self.versions.insert(
            [{"record_key": key, "content_hash": digest, "data": text} for key, _record, digest, text in pending],
            kind=kind, version=1, source=self.source, receipt_id=self.receipt_id, received_at=self.now,
        )
        rows = []
        for key, _record, digest, _text in pending:
            row = loaded[id_by_key[key]]
            # data None: a revision later in this file reads it back from its version row.
            state[key] = _Current(row.id, row, 1, digest, None)
            self.accepted += 1
            rows.append(row)
        stored_many = getattr(self.listener, "records_stored", None)
        if stored_many is not None:
            stored_many(self.session, kind, rows, self.now)
        else:
            for row in rows:
                self.listener.record_stored(self.session, kind, row, None, self.now)

    def _inserter(self, kind: str, spec: _KindSpec) -> DriverInsert:
        if kind not in self.inserters:
            fields = [name for name in MODELS[kind].model_fields if name != "record_kind"]
            self.inserters[kind] = DriverInsert(self.session.connection(), spec.table.__table__,
                                                 [*fields, "version", "source", "received_at", "updated_at"])
        return self.inserters[kind]

    def _revise(self, kind: str, spec: _KindSpec, revising: list[tuple[str, Record, str, str, _Current]]) -> None:
        """Store revisions (key, record, content hash, canonical JSON, current) of distinct records and tell the
        listener: their previous data read in one query, the rows updated in one executemany, a version each
        added in another, and the rows read back in one query."""
        if not revising:
            return
        previous_of = version_data_of(self.session, kind, [(key, current.version) for key, _, _, _, current in revising
                                                            if current.data is None])
        rows_values = []
        for key, record, _digest, _text, current in revising:
            assert current.row_id is not None  # a revision is of a stored row
            rows_values.append({**stored_values(record, self.directory), "id": current.row_id, "version": current.version + 1,
                                "source": self.source, "updated_at": self.now})
        fields = [name for name in MODELS[kind].model_fields if name != "record_kind"]
        updater(self.session.connection(), spec.table.__table__, "id", [*fields, "version", "source", "updated_at"]).update(rows_values)
        self.versions.insert(
            [{"record_key": key, "content_hash": digest, "data": text, "version": current.version + 1}
             for key, _record, digest, text, current in revising],
            kind=kind, source=self.source, receipt_id=self.receipt_id, received_at=self.now,
        )
        ids = [current.row_id for _, _, _, _, current in revising]
        # Written without the ORM: the rows it holds are read again, as stored now.
        expire_loaded(self.session, spec.table, ids)
        loaded = rows_by_id(self.session, spec.table, ids)
        revised = []
        for key, record, digest, _text, current in revising:
            previous = current.data if current.data is not None else previous_of.get((key, current.version))
            row = loaded[current.row_id]
            current.row, current.version, current.content_hash, current.data = row, row.version, digest, record.data()
            revised.append((row, previous))
        self.accepted += len(revised)
        self.revisions += len(revised)
        revised_many = getattr(self.listener, "records_revised", None)
        if revised_many is not None:
            revised_many(self.session, kind, revised, self.now)
        else:
            for row, previous in revised:
                self.listener.record_stored(self.session, kind, row, previous, self.now)

    def _notice_known_or_described(self, record: DistributorReportRecord, row_number: int, named: set[tuple[str, str]]) -> bool:
        """records.md: a report naming an unknown notice must describe it. `named`: the (notice_id,
        distributor_code) of the stored notices the run's reports name."""
        if record.notice_id is None or not record.missing_description():
            return True
        if (record.notice_id, record.distributor_code) in named:
            return True
        self.errors.append(RowError(
            row_number, "notice_id",
            "通知编号未登记，且未描述通知（生产企业、药品编码、药品名称、类型、通知日期） / "
            "notice_id is unknown and the notice is not described "
            "(manufacturer, product_code, product_name, kind, notified_on)",
        ))
        return False
