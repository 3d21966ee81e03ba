"""A large file keeps PostgreSQL's planner statistics in step with the ledger it grows, so the
ledger's per-chunk lookups keep probing their indexes instead of reading whole tables."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shortage_watch.services.ingest import FIRST_STATISTICS_CHECK
from shortage_watch.store.statistics import refresh_stale_statistics
from tests.ledger.test_ledger_in_sets import NOW, ingest, notice


def estimated_rows(app, where: str) -> int:
    """How many obligations PostgreSQL's planner expects `where` to match."""
    with app.engine.connect() as conn:
        plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) SELECT id FROM obligations WHERE {where}")).scalar_one()
    return plan[0]["Plan"]["Plan Rows"]


def planner_rows(app, table: str) -> float:
    with app.engine.connect() as conn:
        return conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}).scalar_one()


@pytest.mark.postgres
def test_a_large_file_leaves_the_planner_counting_its_rows_and_probing_the_subject_index(pg_url, make_app):
    app = make_app(pg_url, now="2024-10-21T10:00")
    rows = FIRST_STATISTICS_CHECK + 600
    ingest(app, "backlog.json", [notice(i) for i in range(rows)])

    assert planner_rows(app, "obligations") >= FIRST_STATISTICS_CHECK
    assert planner_rows(app, "alerts") >= FIRST_STATISTICS_CHECK
    # What chose the plan of each chunk's lookup by subject key: without statistics the planner takes
    # `kind = 'report'` for a handful of rows (13 here), reads them all and filters by key, a scan
    # that grew with the ledger (0.2 s a chunk at 100,000 obligations).
    assert estimated_rows(app, "kind = 'report'") >= FIRST_STATISTICS_CHECK


@pytest.mark.postgres
def test_statistics_that_already_count_the_rows_are_left_alone(pg_url, make_app):
    app = make_app(pg_url, now="2024-10-21T10:00")
    ingest(app, "some.json", [notice(i) for i in range(40)])
    with app.engine.begin() as conn:
        assert "obligations" in refresh_stale_statistics(conn, 10)  # truncated: never analysed since
    with app.engine.begin() as conn:
        assert refresh_stale_statistics(conn, 10) == []  # they count 40 rows now
        assert refresh_stale_statistics(conn, 1000) != []  # a file of 1,000 rows outgrows them


def test_sqlite_is_left_to_its_own_planner(sqlite_url, make_app):
    app = make_app(sqlite_url, now="2024-10-21T10:00")
    ingest(app, "some.json", [notice(i) for i in range(40)])
    with app.engine.begin() as conn:
        assert refresh_stale_statistics(conn, 10**6) == []
        assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar_one() == 0
