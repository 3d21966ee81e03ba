"""The record writer's lookup of current rows by key pair: right for any number of pairs, with a
bounded set of statements whatever sizes a file's chunks come in."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.store.record_rows import CurrentRows
from shortage_watch.store.tables import StoppageNotice

NOW = datetime(2024, 10, 21, 2, 0, tzinfo=timezone.utc)


def test_current_rows_are_found_for_any_number_of_pairs_by_a_few_statements(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([
            StoppageNotice(notice_id=f"N{i}", distributor_code=f"D{i % 7}", manufacturer="制药", product_code=f"P{i}", product_name="药",
                           kind="stoppage", notified_on=date(2024, 10, 18), version=1 + i % 3, source="test", received_at=NOW, updated_at=NOW)
            for i in range(300)
        ])
    current = CurrentRows(StoppageNotice, ("notice_id", "distributor_code"))
    statements: set[str] = set()
    with sessions() as session:
        event.listen(session.get_bind(), "before_cursor_execute",
                     lambda conn, cursor, sql, *rest: sql.startswith("SELECT") and statements.add(sql))
        for size in range(1, 301):
            # Every third pair asked for is not stored (wrong distributor).
            pairs = [(f"N{i}", f"D{(i + (i % 3 == 2)) % 7}") for i in range(size)]
            found = current.read(session, pairs)
            expected = {(f"N{i}", f"D{i % 7}", 1 + i % 3) for i in range(size) if i % 3 != 2}
            assert {(a, b, version) for _, a, b, version in found} == expected, size
            assert len(found) == len(expected), size  # the padding repeats a pair, never a row
    # One statement per power of two up to 512, not one per size a chunk came in (300 here).
    assert len(statements) <= 10, len(statements)


def test_lookups_by_key_pairs_compile_one_statement_per_power_of_two(sessions: sessionmaker[Session]) -> None:
    from shortage_watch.store.record_rows import stored_notice_pairs
    from shortage_watch.store.report_rows import notices_named

    with sessions.begin() as session:
        session.add_all([
            StoppageNotice(notice_id=f"N{i}", distributor_code="D1", manufacturer="制药", product_code=f"P{i}", product_name="药",
                           kind="stoppage", notified_on=date(2024, 10, 18), version=1, source="test", received_at=NOW, updated_at=NOW)
            for i in range(100)
        ])
    statements: set[str] = set()
    with sessions() as session:
        event.listen(session.get_bind(), "before_cursor_execute", lambda conn, cursor, sql, *rest: sql.startswith("SELECT") and statements.add(sql))
        for size in range(1, 101):
            pairs = [(f"N{i}", "D1") for i in range(size)] + [("N0", "D2")]  # D2 has none
            assert set(notices_named(session, pairs)) == set(pairs[:-1]), size
            assert stored_notice_pairs(session, pairs) == set(pairs[:-1]), size
    # Sizes 2..101 pad to 2, 4, ..., 128: seven statements each, not a hundred (each cached with its binds).
    assert len(statements) <= 2 * 7, len(statements)
