"""Hospital shortage reports with the real ledger, end to end: 10,000 reports over ~1,000 products x 10 cities.

Each run stores a fresh ledger (SQLite file, or a throwaway PostgreSQL database on the local server)
after the same steps as bench_ingest_ledger.py, whose helpers it uses: parse, validate, archive,
versions, then the cases they join (opened, made regional, resolved), the explanations owed by the
distributors they name, false-shortage and regional alerts, and audit. Most (product, city) pairs get
one report; 20 busy pairs get a report from 20 hospitals each (regional after three). Baseline,
measured in the same run: a plain DB-API `executemany` of exactly the rows the run wrote, table by
table, in one transaction. Prints reports/s, the ratio ingest rate / baseline rate, peak RSS (each
run is a child process) and the load average of the shared machine.

    .venv/bin/python bench/bench_ingest_hospital.py [--sizes 10000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ingest_ledger as ledger_bench  # noqa: E402

from shortage_watch.domain.directory import Directory, Party  # noqa: E402

# Cases before the reports that join them: the baseline inserts in this order (foreign keys).
WRITTEN = ("raw_payloads", "raw_receipts", "shortage_cases", "shortage_reports", "record_versions", "obligations", "alerts",
           "audit_events")
HOSPITALS_PER_CITY = 40


def directory() -> Directory:
    """bench_ingest_ledger's ten cities and 400 distributors, and 40 hospitals in each city's counties."""
    base = ledger_bench.directory()
    counties = [code for code, region in base.regions.items() if region.level == "county"]
    hospitals = [Party(f"H{n:04d}", f"医院{n}", counties[n % len(counties)], (f"h{n}@hospital.example",))
                 for n in range(HOSPITALS_PER_CITY * 10)]
    return Directory(regions=list(base.regions.values()), contacts=list(base.contacts.values()),
                     distributors=list(base.distributors.values()), hospitals=hospitals)


def hospital_of(city: int, n: int) -> str:
    """The n-th (mod 40) hospital of city `city` (0-9): hospital h is in county h % 40, city (h % 40) // 4."""
    return f"H{40 * (n // 4 % 10) + 4 * city + n % 4:04d}"


def report(i: int) -> dict[str, Any]:
    """Report i: product i % 1000 in city (i // 1000) % 10, or, one in 25, one of 20 busy (product, city)
    pairs from a hospital of its own; one in three names its distributor (owed an explanation: no
    product has a notice), one in 13 blames procurement, one in 97 says the supply is back."""
    product, city, n = i % 1000, (i // 1000) % 10, i // 10000
    if i % 25 == 0:
        j = i // 25
        product, city, n = 1000 + j % 20, (j % 20) % 10, j // 20
    record: dict[str, Any] = {
        "record_kind": "shortage_report", "report_id": f"S{i:07d}", "hospital_code": hospital_of(city, n),
        "product_code": f"YP{product:05d}", "product_name": f"药品{product}",
        "reported_on": (date(2024, 10, 21) - timedelta(days=i % 5)).isoformat(),
        "supply_status": "resolved" if i % 97 == 0 else ("severe" if i % 7 == 0 else "short"),
        "cause": "procurement" if i % 13 == 0 else "supply", "stock_days": i % 9, "monthly_demand": 10 * (i % 7), "demand_unit": "盒",
    }
    if i % 3 == 0:
        record["distributor_code"] = f"D{i % 400:05d}"
    return record


def one_run(kind: str, size: int) -> dict[str, Any]:
    """Ingest `size` hospital reports into a fresh `kind` database, then the baseline; run in a child process."""
    with tempfile.TemporaryDirectory(prefix="sw-bench-hospital-") as tmp:
        folder = Path(tmp)
        content = json.dumps({"records": [report(i) for i in range(size)]}, ensure_ascii=False).encode()
        url, drop = ledger_bench.fresh_database(kind, folder, "ledger")
        base_url, drop_base = ledger_bench.fresh_database(kind, folder, "plain")
        try:
            elapsed, rss = ledger_bench.timed_ingest(ledger_bench.bench_app(url, directory()), "reports.json", content, size)
            tables = ledger_bench.written_rows(url, WRITTEN)
            baseline = ledger_bench.plain_executemany(base_url, tables, kind)
            counts = {table: len(rows) for table, (_, rows) in tables.items()}
        finally:
            drop()
            drop_base()
    return {"db": kind, "size": size, "seconds": elapsed, "baseline_seconds": baseline, "peak_rss_mb": rss, "rows": counts}


def main() -> int:
    return ledger_bench.print_runs(__doc__, __file__, one_run, "comma-separated report counts", "reports")


if __name__ == "__main__":
    sys.exit(main())
