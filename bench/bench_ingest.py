"""Ingest speed: 100,000 generated stoppage notices from one CSV into SQLite.

Compares the full ingest path (archive the payload, parse, validate with pydantic,
look up identities, store current rows and their versions, one transaction) with plain
DB-API `executemany`s, one transaction each: of the notice rows alone into
`stoppage_notices` (issue 3's first baseline), and of every row the run wrote, table by
table (notices, their versions, the payload and its receipt), as bench_ingest_ledger
measures. The record listener is a no-op here, so the ledger's own work is not measured.
Prints the rates and the ratios (the figure that matters; aim >= 0.3).

    .venv/bin/python bench/bench_ingest.py [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.services.record_writer import NoopRecordListener
from shortage_watch.settings import Settings
from shortage_watch.store.db import make_engine, upgrade_schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest_ledger import fresh_database, plain_executemany, written_rows  # noqa: E402

WRITTEN = ("raw_payloads", "raw_receipts", "stoppage_notices", "record_versions")  # what ingest writes, listener aside
HEADER = ["通知编号", "生产企业", "药品编码", "药品名称", "规格", "类型", "配送企业编码", "配送企业名称", "通知日期",
          "预计恢复日期", "原因", "药品类别"]
KINDS = ["停产", "断供", "减产"]
CLASSES = ["集采中选", "国谈药品", "短缺清单", "其他"]
NOW = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)


@dataclass
class BenchApp(App):
    @property
    def record_listener(self) -> Any:  # type: ignore[override]
        return NoopRecordListener()


def generate(rows: int) -> tuple[bytes, list[tuple[Any, ...]]]:
    """The CSV (UTF-8 with BOM, Chinese headers) and the same rows as DB-API tuples."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    tuples: list[tuple[Any, ...]] = []
    received = NOW.replace(tzinfo=None).isoformat(sep=" ")
    for i in range(rows):
        notified = date(2024, 1, 1) + timedelta(days=i % 270)
        row = [f"TZ-{i:07d}", f"制药企业{i % 97}股份有限公司", f"XJ{i:010d}", f"药品{i % 501}", "0.25g*24粒",
               KINDS[i % 3], f"D{i % 400:05d}", f"配送企业{i % 400}", notified.isoformat(), "", "原料药供应不足",
               CLASSES[i % 4]]
        writer.writerow(row)
        kind = ("stoppage", "interruption", "reduction")[i % 3]
        priority = ("winning_bid", "negotiated", "shortage_list", "other")[i % 4]
        tuples.append((row[0], row[6], row[7], row[1], row[2], row[3], row[4], kind, notified.isoformat(), None,
                       None, row[10], priority, 1, "bench", received, received))
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8"), tuples


def bench_ingest(folder: Path, content: bytes) -> tuple[float, Any]:
    url = ingest_url(folder)
    upgrade_schema(make_engine(url))
    app = BenchApp(Settings(database={"url": url}, calendar={"overrides_dir": str(folder / "cal")}),
                   clock=FixedClock(NOW))
    started = time.perf_counter()
    result = ingest_payload(app.ingest_deps(), source="bench", name="notices.csv", content=content, kind="auto", now=NOW)
    elapsed = time.perf_counter() - started
    app.close()
    return elapsed, result


def ingest_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'ingest.db'}"


def bench_written_rows(folder: Path) -> float:
    """Every row the ingest run wrote (`ingest_url`), table by table, into an empty schema: one transaction."""
    url, _ = fresh_database("sqlite", folder, "written")  # the folder goes with the file
    return plain_executemany(url, written_rows(ingest_url(folder), WRITTEN), "sqlite")


def bench_parse_validate(content: bytes) -> float:
    """The pure part alone: decode, parse, validate and hash every row (no database)."""
    from zoneinfo import ZoneInfo

    from shortage_watch.domain.records import validate_record
    from shortage_watch.intake.parsers import parse_payload

    tz = ZoneInfo("Asia/Shanghai")
    started = time.perf_counter()
    for raw in parse_payload(content, name="notices.csv", kind="auto", lazy=True).rows:
        record, _ = validate_record(raw.kind, raw.values, row=raw.row, now=NOW, tz=tz)
        record.content_hash()  # type: ignore[union-attr]
    return time.perf_counter() - started


def bench_executemany(folder: Path, tuples: list[tuple[Any, ...]]) -> float:
    url = f"sqlite:///{folder / 'plain.db'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.executemany(
            "INSERT INTO stoppage_notices (notice_id, distributor_code, distributor_name, manufacturer, "
            "product_code, product_name, specification, kind, notified_on, region_code, expected_resume_on, "
            "reason, priority_class, version, source, received_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tuples,
        )
        cursor.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return elapsed


def bench_core_executemany(folder: Path, tuples: list[tuple[Any, ...]]) -> float:
    """The same rows through SQLAlchemy Core `execute(insert(table), rows)` (its type processing included)."""
    from sqlalchemy import insert

    from shortage_watch.store.tables import StoppageNotice

    columns = ["notice_id", "distributor_code", "distributor_name", "manufacturer", "product_code", "product_name",
               "specification", "kind", "notified_on", "region_code", "expected_resume_on", "reason",
               "priority_class", "version", "source", "received_at", "updated_at"]
    rows = []
    for values in tuples:
        row = dict(zip(columns, values))
        row["notified_on"] = date.fromisoformat(row["notified_on"])
        row["received_at"] = row["updated_at"] = NOW
        rows.append(row)
    engine = make_engine(f"sqlite:///{folder / 'core.db'}")
    upgrade_schema(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(StoppageNotice.__table__), rows)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    content, tuples = generate(args.rows)
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        folder = Path(tmp)
        plain = bench_executemany(folder, tuples)
        core = bench_core_executemany(folder, tuples)
        ingest, result = bench_ingest(folder, content)
        written = bench_written_rows(folder)
    pure = bench_parse_validate(content)
    assert result.accepted == args.rows, result
    ingest_rate, plain_rate = args.rows / ingest, args.rows / plain
    print(f"ingest path (CSV {len(content) / 1e6:.1f} MB, parse + validate + archive + versions, "
          f"no-op record listener): {args.rows} records in {ingest:.2f} s = {ingest_rate:,.0f} records/s")
    print(f"  of which parse + validate + hash alone (no database):            "
          f"{args.rows} records in {pure:.2f} s = {args.rows / pure:,.0f} records/s")
    print(f"plain executemany of the same rows into stoppage_notices:        "
          f"{args.rows} rows in {plain:.2f} s = {plain_rate:,.0f} rows/s")
    print(f"SQLAlchemy Core executemany of the same rows (type processing included): "
          f"{args.rows} rows in {core:.2f} s = {args.rows / core:,.0f} rows/s")
    print(f"plain executemany of every row the ingest wrote ({', '.join(WRITTEN)}), table by table: "
          f"{written:.2f} s = {args.rows / written:,.0f} notices/s")
    print(f"ratio ingest/executemany = {ingest_rate / plain_rate:.2f} of the notice rows alone, "
          f"{written / ingest:.2f} of every row written (aim >= 0.3); "
          f"against SQLAlchemy Core executemany of the notice rows: {ingest_rate / (args.rows / core):.2f}")


if __name__ == "__main__":
    main()
