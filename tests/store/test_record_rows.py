"""The lookups of rows by several key columns (current rows, notices named or described): right for any
number of keys, each row once, by one statement whatever sizes a file's chunks come in."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.store.record_rows import CurrentRows, stored_notice_pairs
from shortage_watch.store.report_rows import notices_described, notices_named
from shortage_watch.store.tables import StoppageNotice

NOW = datetime(2024, 10, 21, 2, 0, tzinfo=timezone.utc)


def _notice(i: int, distributor: str, *, version: int = 1, product: str | None = None,
            notified_on: date = date(2024, 10, 18)) -> StoppageNotice:
    return StoppageNotice(notice_id=f"N{i}", distributor_code=distributor, manufacturer="制药", product_code=product or f"P{i}",
                          product_name="药", kind="stoppage", notified_on=notified_on, version=version, source="test",
                          received_at=NOW, updated_at=NOW)


def _selects(session: Session) -> set[str]:
    """The SELECT statements `session` runs from now on, as the driver gets them."""
    statements: set[str] = set()
    event.listen(session.get_bind(), "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: sql.startswith("SELECT") and statements.add(sql))
    return statements


def test_current_rows_are_found_for_any_number_of_pairs_by_one_statement(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([_notice(i, f"D{i % 7}", version=1 + i % 3) for i in range(300)])
    current = CurrentRows(StoppageNotice, ("notice_id", "distributor_code"))
    with sessions() as session:
        statements = _selects(session)
        for size in range(1, 301):
            # Every third pair asked for is not stored (wrong distributor).
            pairs = [(f"N{i}", f"D{(i + (i % 3 == 2)) % 7}") for i in range(size)]
            found = current.read(session, pairs)
            expected = {(f"N{i}", f"D{i % 7}", 1 + i % 3) for i in range(size) if i % 3 != 2}
            assert {(a, b, version) for _, a, b, version in found} == expected, size
            assert len(found) == len(expected), size
    assert len(statements) == 1, statements


def test_lookups_by_key_pairs_run_one_statement_each_whatever_the_number_of_pairs(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([_notice(i, "D1") for i in range(100)])
    with sessions() as session:
        statements = _selects(session)
        for size in range(1, 101):
            pairs = [(f"N{i}", "D1") for i in range(size)] + [("N0", "D2")]  # D2 has none
            assert set(notices_named(session, pairs)) == set(pairs[:-1]), size
            assert stored_notice_pairs(session, pairs) == set(pairs[:-1]), size
    assert len(statements) == 2, statements


def test_a_key_asked_twice_finds_its_row_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([_notice(i, "D1") for i in range(3)])
    with sessions() as session:
        found = CurrentRows(StoppageNotice, ("notice_id", "distributor_code")).read(session, [("N1", "D1"), ("N2", "D1"), ("N1", "D1")])
    assert sorted((a, b) for _, a, b, _ in found) == [("N1", "D1"), ("N2", "D1")]


def test_thousands_of_pairs_are_one_lookup(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([_notice(i, f"D{i % 400}") for i in range(2500)])
    pairs = [(f"N{i}", f"D{i % 400}") for i in range(0, 5000, 2)]  # 2,500 asked, half stored
    with sessions() as session:
        found = CurrentRows(StoppageNotice, ("notice_id", "distributor_code")).read(session, pairs)
    assert sorted(a for _, a, _, _ in found) == sorted(f"N{i}" for i in range(0, 2500, 2))


def test_a_key_holding_none_finds_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(_notice(1, "D1"))
    with sessions() as session:
        found = CurrentRows(StoppageNotice, ("notice_id", "distributor_code")).read(session, [("N1", None), (None, "D1"), ("N1", "D1")])
    assert [(a, b) for _, a, b, _ in found] == [("N1", "D1")]


def test_notices_described_match_distributor_product_and_day_and_give_the_first_notice(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([
            _notice(1, "D1", product="P1", notified_on=date(2024, 10, 18)),
            _notice(2, "D1", product="P1", notified_on=date(2024, 10, 18)),  # a later notice that day
            _notice(3, "D1", product="P1", notified_on=date(2024, 10, 17)),
            _notice(4, "D2", product="P1", notified_on=date(2024, 10, 18)),
        ])
    with sessions() as session:
        described = notices_described(session, [("D1", "P1", date(2024, 10, 18)), ("D1", "P1", date(2024, 10, 17)),
                                                ("D2", "P1", date(2024, 10, 16)), ("D3", "P1", date(2024, 10, 18))])
        assert {key: notice.notice_id for key, notice in described.items()} == {
            ("D1", "P1", date(2024, 10, 18)): "N1", ("D1", "P1", date(2024, 10, 17)): "N3"}
        assert all(isinstance(notice, StoppageNotice) for notice in described.values())
