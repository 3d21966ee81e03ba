"""The query planner's statistics of the tables a large ingest grows (PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import Connection, text

# The tables whose size a file of records multiplies: records, versions and what the ledger opens for them.
GROWN_BY_INGEST = (
    "stoppage_notices", "distributor_reports", "shortage_reports", "record_versions",
    "obligations", "shortage_cases", "alerts", "audit_events",
)


def refresh_stale_statistics(connection: Connection, rows_added: int) -> list[str]:
    """ANALYZE each table of `GROWN_BY_INGEST` whose statistics count fewer rows than `rows_added`
    (or that was never analysed); the tables analysed. Nothing on SQLite, whose planner keeps no
    statistics unless asked and chooses the unique indexes by their shape.

    Without statistics PostgreSQL takes `kind = 'report'` for one row in two hundred, and a
    lookup of a chunk's subject keys then reads every obligation instead of probing the unique
    index: 0.2 s a chunk at 100,000 obligations, and growing. Autovacuum would analyse a table
    in its own time (it may lag a bulk load by minutes, or be switched off).
    """
    if connection.dialect.name != "postgresql":
        return []
    estimates = connection.execute(
        # An empty table has nothing to count (and keeps "never analysed" through ANALYZE).
        text("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r' AND relnamespace = to_regnamespace(current_schema())"
             " AND relname = ANY(:tables) AND pg_relation_size(oid) > 0"),
        {"tables": list(GROWN_BY_INGEST)},
    )
    stale = sorted(name for name, tuples in estimates if tuples < 0 or tuples < rows_added)
    for name in stale:
        connection.exec_driver_sql(f'ANALYZE "{name}"')
    return stale
