"""The current rows of the record tables (notices, distributor reports, hospital reports) and their
versions, as the record writer reads them before it stores a chunk."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.store.key_match import joined_to_keys
from shortage_watch.store.tables import RecordVersion, StoppageNotice


class CurrentRows:
    """id, key pair and version of the rows of one record table found by their two key columns."""

    def __init__(self, table: Any, key_columns: tuple[str, str]) -> None:
        self.table = table
        self.key_columns = key_columns

    def read(self, session: Session, pairs: list[tuple[Any, Any]]) -> list[tuple[int, Any, Any, int]]:
        """(id, first key, second key, version) of each row whose key pair is one of `pairs`."""
        if not pairs:
            return []
        table = self.table
        first, second = (getattr(table, column) for column in self.key_columns)
        statement = joined_to_keys(select(table.id, first, second, table.version), (first, second), pairs, session.get_bind().dialect)
        return [(row_id, a, b, version) for row_id, a, b, version in session.execute(statement)]


def version_hashes(session: Session, kind: str, record_keys: list[str]) -> list[tuple[str, int, str]]:
    """(record_key, version, content_hash) of every stored version of these records."""
    return [(key, version, content_hash) for key, version, content_hash in session.execute(
        select(RecordVersion.record_key, RecordVersion.version, RecordVersion.content_hash)
        .where(RecordVersion.kind == kind, RecordVersion.record_key.in_(record_keys))
    )]


def version_data_of(session: Session, kind: str, versions: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any] | None]:
    """The stored data of these (record_key, version)s of records of `kind`, by that pair; one query."""
    wanted = set(versions)
    stored = every_version_data(session, kind, [key for key, _ in wanted])
    return {(key, version): data for key, by_version in stored.items() for version, data in by_version.items() if (key, version) in wanted}


def every_version_data(session: Session, kind: str, record_keys: list[str]) -> dict[str, dict[int, dict[str, Any] | None]]:
    """The data of every stored version of these records of `kind`: by record key, by version; one query."""
    if not record_keys:
        return {}
    stored: dict[str, dict[int, dict[str, Any] | None]] = {}
    for key, version, data in session.execute(select(RecordVersion.record_key, RecordVersion.version, RecordVersion.data).where(
            RecordVersion.kind == kind, RecordVersion.record_key.in_(sorted(set(record_keys))))):
        stored.setdefault(key, {})[version] = data
    return stored


def stored_notice_pairs(session: Session, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (notice_id, distributor_code) name a stored notice; one query."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    key = (StoppageNotice.notice_id, StoppageNotice.distributor_code)
    found = session.execute(joined_to_keys(select(*key), key, wanted, session.get_bind().dialect))
    return {(notice_id, distributor) for notice_id, distributor in found}


def rows_by_id(session: Session, table: Any, ids: list[int]) -> dict[int, Any]:
    """The ORM rows of `table` with these ids, by id."""
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(table).where(table.id.in_(ids)))}
