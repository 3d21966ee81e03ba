"""Distributor reports with the real ledger, end to end: N stoppage notices, then a CSV of N reports fulfilling them.

Each run stores a fresh ledger (SQLite file, or a throwaway PostgreSQL database on the local server;
see bench_ingest_ledger.py, whose directory, notices and baseline it uses) and ingests the notices,
untimed; then the timed part: the reports file, each report naming its notice, submitted 0 to 8 days
after it (so many are late: fulfilled_late, late-report alerts, chasers already waiting dropped).
Baseline, measured in the same run: a plain DB-API `executemany` of exactly the rows the reports
wrote (payload, receipt, reports, versions, alerts, audit events, and the obligations they fulfilled),
table by table, in one transaction, into an empty copy of the schema. Prints reports/s, the ratio
ingest rate / baseline rate, each run's peak RSS (a child process each) and the load average.

    .venv/bin/python bench/bench_ingest_reports.py [--sizes 10000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import csv
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest_ledger import (  # noqa: E402
    NOW,
    bench_app,
    fresh_database,
    generate,
    plain_executemany,
    print_runs,
    timed_ingest,
    written_rows,
)

from shortage_watch.services.ingest import ingest_payload  # noqa: E402

HEADER = ["反馈编号", "配送企业编码", "通知编号", "提交时间", "已通知医疗机构数"]
WRITTEN = ("raw_payloads", "raw_receipts", "distributor_reports", "record_versions", "obligations", "alerts", "audit_events")
LAST_SUBMISSION = date(2024, 10, 21)  # submitted at 09:00 on or before the run's now (10:00 that day)


def generate_reports(rows: int, path: Path) -> None:
    """The reports CSV: report i answers notice i of `generate` (TZ-i to its distributor), 0 to 8 days after it."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(rows):
            notified = LAST_SUBMISSION - timedelta(days=i % 14)  # as `generate` dates notice i
            submitted = min(notified + timedelta(days=i % 9), LAST_SUBMISSION)
            writer.writerow([f"FK-{i:07d}", f"D{i % 400:05d}", f"TZ-{i:07d}", f"{submitted.isoformat()} 09:00", i % 5])


def ids_so_far(url: str, names: tuple[str, ...] = WRITTEN) -> dict[str, int]:
    """The highest id of each table `names` (those the reports write), before they are ingested."""
    return {table: max((row[columns.index("id")] for row in rows), default=0)
            for table, (columns, rows) in written_rows(url, names).items()}


def rows_the_reports_wrote(url: str, before: dict[str, int]) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The rows each table gained, and the obligations the reports fulfilled (rows they changed)."""
    written = {}
    for table, (columns, rows) in written_rows(url, WRITTEN).items():
        if table == "obligations":
            written[table] = (columns, [row for row in rows if row[columns.index("report_pk")] is not None])
        else:
            written[table] = (columns, [row for row in rows if row[columns.index("id")] > before[table]])
    return written


def notices_then(kind: str, size: int, name: str, generate_file: Callable[[int, Path], None],
                 rows_written: Callable[[str, dict[str, int]], dict[str, tuple[list[str], list[tuple[Any, ...]]]]],
                 written: tuple[str, ...] = WRITTEN) -> tuple[dict[str, Any], dict[str, tuple[list[str], list[tuple[Any, ...]]]]]:
    """Ingest `size` notices (untimed), then the file `name` of `generate_file(size, path)` into the same ledger
    (timed), then the baseline of the rows `rows_written(url, the highest ids of the tables `written` before)`
    gives: the run's result and those rows. Run in a child process."""
    with tempfile.TemporaryDirectory(prefix="sw-bench-notices-then-") as tmp:
        folder = Path(tmp)
        notices_csv, second_csv = folder / "notices.csv", folder / name
        generate(size, notices_csv)
        generate_file(size, second_csv)
        url, drop = fresh_database(kind, folder, "ledger")
        base_url, drop_base = fresh_database(kind, folder, "plain")
        try:
            app = bench_app(url)
            notices = ingest_payload(app.ingest_deps(), source="bench", name="notices.csv", content=notices_csv.read_bytes(),
                                     kind="auto", now=NOW)
            assert notices.accepted == size and notices.rejected == 0, notices.errors[:3]
            before = ids_so_far(url, written)
            elapsed, rss = timed_ingest(app, name, second_csv.read_bytes(), size)
            tables = rows_written(url, before)
            baseline = plain_executemany(base_url, tables, kind, sqlite_foreign_keys=False)
            counts = {table: len(rows) for table, (_, rows) in tables.items()}
        finally:
            drop()
            drop_base()
    return {"db": kind, "size": size, "seconds": elapsed, "baseline_seconds": baseline, "peak_rss_mb": rss, "rows": counts}, tables


def one_run(kind: str, size: int) -> dict[str, Any]:
    """Ingest `size` notices (untimed), then `size` reports into the same ledger, then the baseline; run in a child process."""
    run, tables = notices_then(kind, size, "reports.csv", generate_reports, rows_the_reports_wrote)
    obligations = tables["obligations"]
    return {**run, "late": sum(1 for row in obligations[1] if row[obligations[0].index("state")] == "fulfilled_late")}


def main() -> int:
    return print_runs(__doc__, __file__, one_run, "comma-separated report counts (as many notices first)", "reports",
                      lambda run: f" ({run['late']:,} late)")


if __name__ == "__main__":
    sys.exit(main())
