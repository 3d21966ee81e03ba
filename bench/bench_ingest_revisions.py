"""Revised stoppage notices with the real ledger, end to end: N notices, then a CSV revising every one of them.

Each run stores a fresh ledger (SQLite file, or a throwaway PostgreSQL database on the local server;
see bench_ingest_ledger.py, whose directory, notices and baseline it uses) and ingests the notices,
untimed; then the timed part: the revisions file, each notice again with its notified_on moved one to
three days earlier (its obligation re-dated: deadline_moved, some turning overdue) and, for one in
four, its region corrected to another county (region_changed). Baseline, measured in the same run: a
plain DB-API `executemany` of exactly the rows the revisions wrote (payload, receipt, the notices and
their new versions, the obligations they re-dated, audit events), table by table, in one transaction,
into an empty copy of the schema. Prints revisions/s, the ratio ingest rate / baseline rate, each run's
peak RSS (a child process each) and the load average.

    .venv/bin/python bench/bench_ingest_revisions.py [--sizes 10000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import csv
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest_ledger import HEADER, notice_row, print_runs, written_rows  # noqa: E402
from bench_ingest_reports import notices_then  # noqa: E402

WRITTEN = ("raw_payloads", "raw_receipts", "stoppage_notices", "record_versions", "obligations", "audit_events")
REVISED = ("stoppage_notices", "obligations")  # every row of these is changed by the revisions


def generate_revisions(rows: int, path: Path) -> None:
    """The revisions CSV: notice i of `generate` again, notified 1 to 3 days earlier; one in four in another county."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow([*HEADER, "行政区划代码"])
        for i in range(rows):
            notified = date(2024, 10, 21) - timedelta(days=i % 14 + 1 + i % 3)  # as `generate` dates notice i, moved
            region = f"35{i % 10 + 1:02d}{(i + 1) % 4 + 1:02d}" if i % 4 == 0 else ""
            writer.writerow([*notice_row(i, notified), region])


def one_run(kind: str, size: int) -> dict[str, Any]:
    """Ingest `size` notices (untimed), then `size` revisions of them into the same ledger, then the baseline; run in a child process."""
    return notices_then(kind, size, "revisions.csv", generate_revisions, rows_the_revisions_wrote, WRITTEN)[0]


def rows_the_revisions_wrote(url: str, before: dict[str, int]) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The rows each table gained, and every notice and obligation (each revised)."""
    return {table: (columns, rows if table in REVISED else [row for row in rows if row[columns.index("id")] > before[table]])
            for table, (columns, rows) in written_rows(url, WRITTEN).items()}


def main() -> int:
    return print_runs(__doc__, __file__, one_run, "comma-separated revision counts (as many notices first)", "revisions")


if __name__ == "__main__":
    sys.exit(main())
