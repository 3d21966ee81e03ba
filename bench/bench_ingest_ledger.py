"""Ingest with the real ledger, end to end: a CSV of stoppage notices whose 400 distributors are in the directory.

Each run stores a fresh ledger (SQLite file, or a throwaway PostgreSQL database on the local
server): parse, validate, archive, versions, obligations, opening alerts and audit. Baseline,
measured in the same run: a plain DB-API `executemany` of exactly the rows the run wrote, table
by table, in one transaction, into an empty copy of the schema. Prints notices/s, the ratio
ingest rate / baseline rate (aim >= 0.25; and >= 10,000 notices/s on SQLite), the time per
notice against the smallest size (aim <= 1.3), each run's peak RSS (every run is a child
process of its own) and the load average of the machine, which is shared.

    .venv/bin/python bench/bench_ingest_ledger.py [--sizes 10000,100000,1000000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from shortage_watch.app import App  # noqa: E402
from shortage_watch.clock import FixedClock  # noqa: E402
from shortage_watch.domain.directory import Contact, Directory, Party, Region  # noqa: E402
from shortage_watch.services.ingest import ingest_payload  # noqa: E402
from shortage_watch.settings import Settings  # noqa: E402
from shortage_watch.store.db import make_engine, upgrade_schema  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2024, 10, 21, 2, 0, tzinfo=timezone.utc)  # Monday 10:00 in Shanghai
HEADER = ["通知编号", "生产企业", "药品编码", "药品名称", "规格", "类型", "配送企业编码", "配送企业名称", "通知日期", "原因", "药品类别"]
KINDS = ["停产", "断供", "减产"]
CLASSES = ["集采中选", "国谈药品", "短缺清单", "其他"]
BATCH = 20_000  # rows the baseline reads and inserts at a time
WRITTEN = ("raw_payloads", "raw_receipts", "stoppage_notices", "record_versions", "obligations", "alerts", "audit_events")
AIM_RATIO, AIM_SQLITE_RATE, AIM_FLAT = 0.25, 10_000, 1.3


def directory() -> Directory:
    """Ten cities of one province, four counties each; 400 distributors spread over the counties."""
    regions = [Region("350000", "福建省", None, "province")]
    contacts = [Contact("350000", "insurance", ("ybj@fj.example",), "福建省医疗保障局"),
                Contact("350000", "health", ("wjw@fj.example",), "福建省卫生健康委员会")]
    counties = []
    for c in range(10):
        city = f"35{c + 1:02d}00"
        regions.append(Region(city, f"市{c}", "350000", "city"))
        contacts.append(Contact(city, "insurance", (f"ybj@{city}.example",), f"市{c}医疗保障局"))
        contacts.append(Contact(city, "health", (f"wjw@{city}.example",), f"市{c}卫生健康委员会", delivery="digest"))
        for k in range(4):
            county = f"35{c + 1:02d}{k + 1:02d}"
            counties.append(county)
            regions.append(Region(county, f"县{c}-{k}", city, "county"))
            contacts.append(Contact(county, "insurance", (f"ybj@{county}.example",), f"县{c}-{k}医疗保障局"))
    distributors = [Party(f"D{i:05d}", f"配送企业{i}", counties[i % len(counties)], (f"d{i}@dist.example",)) for i in range(400)]
    return Directory.build(regions, contacts, distributors, [])


@dataclass
class BenchApp(App):
    directory: Any = None


def bench_app(url: str, parties: Directory | None = None) -> BenchApp:
    """The app of a run: the ledger at `url`, the repository's calendar and escalation policy, the bench's
    directory (or `parties`, a bench's own)."""
    settings = Settings(database={"url": url}, calendar={"overrides_dir": str(REPO / "config" / "calendar")},
                        escalation={"policy": str(REPO / "config" / "escalation.toml")},
                        directory={"operations_email": "ops@example.org"})
    return BenchApp(settings, FixedClock(NOW), directory=parties or directory())


def timed_ingest(app: BenchApp, name: str, content: bytes, records: int) -> tuple[float, float]:
    """Ingest `content` as the file `name` (every one of its `records` accepted) and close the app: the
    seconds the ingest took, and the process's peak RSS (MB) by then."""
    started = time.perf_counter()
    result = ingest_payload(app.ingest_deps(), source="bench", name=name, content=content, kind="auto", now=NOW)
    elapsed = time.perf_counter() - started
    app.close()
    assert result.accepted == records and result.rejected == 0, result.errors[:3]
    return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(rows: int, path: Path) -> None:
    """The CSV (UTF-8 with BOM, Chinese headers): notices received over the last two weeks."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(notice_row(i, date(2024, 10, 21) - timedelta(days=i % 14)))


def notice_row(i: int, notified: date) -> list[str]:
    """Notice i of `generate` (in its columns, `HEADER`), notified on `notified`."""
    return [f"TZ-{i:07d}", f"制药企业{i % 97}股份有限公司", f"XJ{i % 5000:06d}", f"药品{i % 501}", "0.25g*24粒", KINDS[i % 3],
            f"D{i % 400:05d}", f"配送企业{i % 400}", notified.isoformat(), "原料药供应不足", CLASSES[i % 4]]


def fresh_database(kind: str, folder: Path, name: str) -> tuple[str, Any]:
    """A migrated empty database and a function that drops it."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / (name + '.db')}"
        drop = lambda: None  # noqa: E731  (the folder goes)
    else:
        db = f"sw_bench_{name}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}"'))
        url = make_url(PG_ADMIN_URL).set(database=db).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            admin.dispose()
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url, drop


def written_rows(url: str, names: tuple[str, ...] = WRITTEN) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every row of the tables `names` (those the run wrote), as the driver returns it, table by table."""
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {table: ([], []) for table in names}
    for table, columns, rows in streamed_rows(url, names):
        tables[table] = (columns, tables[table][1] + rows)
    return tables


def streamed_rows(url: str, names: tuple[str, ...] = WRITTEN) -> Iterator[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """(table, columns, rows) of the tables `names`, BATCH rows at a time: a 1,000,000-notice ledger holds
    ten million rows, several GB as Python tuples (`written_rows` holds them all)."""
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        for table in names:
            # A server-side cursor on PostgreSQL, so psycopg does not fetch the whole table at once.
            cursor = raw.driver_connection.cursor(name="rows") if engine.dialect.name == "postgresql" else raw.cursor()
            cursor.execute(f"SELECT * FROM {table}")
            while rows := cursor.fetchmany(BATCH):
                yield table, [d[0] for d in cursor.description], [tuple(row) for row in rows]
            cursor.close()
    finally:
        raw.close()
        engine.dispose()


def plain_executemany(url: str, tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]], dialect: str, *,
                      sqlite_foreign_keys: bool = True) -> float:
    """The baseline: the same rows into an empty schema with DB-API executemany, one transaction, table by
    table in the order of `tables`. `sqlite_foreign_keys` False: SQLite, like PostgreSQL here, checks no
    foreign key (for rows whose parents the run did not write)."""
    batches = ((table, columns, rows) for table, (columns, rows) in tables.items())
    return plain_executemany_of_batches(url, batches, dialect, sqlite_foreign_keys=sqlite_foreign_keys)


def plain_executemany_of_batches(url: str, batches: Iterable[tuple[str, list[str], list[tuple[Any, ...]]]], dialect: str, *,
                                 sqlite_foreign_keys: bool = True) -> float:
    """`plain_executemany` of rows arriving in batches (`streamed_rows`): one transaction, one executemany
    per batch; the seconds the inserts and the commit took, not the reading of the batches."""
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if dialect == "postgresql":
            from psycopg.types.json import Json

            cursor.execute("SET session_replication_role = replica")  # the same rows, so no FK checks in either order
        elif not sqlite_foreign_keys:
            cursor.execute("PRAGMA foreign_keys=OFF")
        if dialect == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        elapsed = 0.0
        for table, columns, rows in batches:
            started = time.perf_counter()
            if dialect == "postgresql":
                rows = [tuple(Json(v) if isinstance(v, (dict, list)) else v for v in row) for row in rows]
            mark = "?" if dialect == "sqlite" else "%s"
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})", rows)
            elapsed += time.perf_counter() - started
        started = time.perf_counter()
        raw.commit()
        return elapsed + time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()


def one_run(kind: str, size: int) -> dict[str, Any]:
    """Ingest `size` notices into a fresh `kind` database, then the baseline; run in a child process."""
    with tempfile.TemporaryDirectory(prefix="sw-bench-ledger-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "notices.csv"
        generate(size, csv_path)
        url, drop = fresh_database(kind, folder, "ledger")
        base_url, drop_base = fresh_database(kind, folder, "plain")
        try:
            elapsed, rss = timed_ingest(bench_app(url), "notices.csv", csv_path.read_bytes(), size)
            counts = dict.fromkeys(WRITTEN, 0)

            def counted() -> Iterator[tuple[str, list[str], list[tuple[Any, ...]]]]:
                for table, columns, rows in streamed_rows(url):
                    counts[table] += len(rows)
                    yield table, columns, rows

            baseline = plain_executemany_of_batches(base_url, counted(), kind)
        finally:
            drop()
            drop_base()
    return {"db": kind, "size": size, "seconds": elapsed, "baseline_seconds": baseline, "peak_rss_mb": rss, "rows": counts}


def each_run(doc: str, script: str, one_run: Callable[[str, int], dict[str, Any]], sizes: str,
             sizes_help: str) -> Iterator[tuple[str, int, dict[str, Any] | None]]:
    """A benchmark's runs. Options: --sizes, --databases, and --one db:size, which makes this the child
    process of one run: it prints `one_run`'s result for the parent and yields nothing. Otherwise it prints
    the load average, then runs each database and size in a child process (so its peak RSS is its own):
    (database, size, the run's result, or None when it failed, said)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", default=sizes, help=sizes_help)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # db:size, run in this (child) process
    args = parser.parse_args()
    if args.one:
        kind, size = args.one.split(":")
        print(json.dumps(one_run(kind, int(size))))
        return
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    for kind in args.databases.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            child = subprocess.run([sys.executable, script, "--one", f"{kind}:{size}"], capture_output=True, text=True)
            if child.returncode != 0:
                print(f"{kind} {size:,}: failed\n{child.stderr[-2000:]}")
                yield kind, size, None
                continue
            yield kind, size, json.loads(child.stdout.strip().splitlines()[-1])


def print_run(kind: str, size: int, run: dict[str, Any], records: str, note: str = "") -> None:
    """A run's line (time, records/s, `note`, the baseline, the ratio, peak RSS, load) and the rows it wrote by table."""
    written = sum(run["rows"].values())
    print(f"{kind:10} {size:>9,} {records}: {run['seconds']:8.1f} s = {size / run['seconds']:8,.0f} {records}/s{note}; "
          f"baseline executemany of the {written:,} rows written {run['baseline_seconds']:6.2f} s; "
          f"ratio {run['baseline_seconds'] / run['seconds']:.3f}; peak RSS {run['peak_rss_mb']:.0f} MB; load {os.getloadavg()[0]:.1f}")
    print(f"           rows written: {run['rows']}")



def print_runs(doc: str, script: str, one_run: Callable[[str, int], dict[str, Any]], sizes_help: str, records: str,
               note: Callable[[dict[str, Any]], str] = lambda run: "") -> int:
    """`each_run` (10,000 records unless told) with each run printed (`print_run`, `note` of the run);
    the exit code: 1 when a run failed."""
    failed = False
    for kind, size, run in each_run(doc, script, one_run, "10000", sizes_help):
        if run is None:
            failed = True
            continue
        print_run(kind, size, run, records, note(run))
    return 1 if failed else 0

def main() -> int:
    missed = False
    first_per_notice: dict[str, float] = {}
    for kind, size, run in each_run(__doc__, __file__, one_run, "10000,100000", "comma-separated notice counts (1000000 takes long here)"):
        if run is None:
            missed = True
            continue
        rate = size / run["seconds"]
        ratio = run["baseline_seconds"] / run["seconds"]
        per_notice = run["seconds"] / size
        flat = per_notice / first_per_notice.setdefault(kind, per_notice)
        written = sum(run["rows"].values())
        print(f"{kind:10} {size:>9,} notices: {run['seconds']:8.1f} s = {rate:8,.0f} notices/s; baseline executemany of the "
              f"{written:,} rows written {run['baseline_seconds']:6.1f} s; ratio {ratio:.2f} (aim >= {AIM_RATIO}); "
              f"time per notice x{flat:.2f} of the first size (aim <= {AIM_FLAT}); peak RSS {run['peak_rss_mb']:.0f} MB; "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"           rows written: {run['rows']}")
        missed |= ratio < AIM_RATIO or flat > AIM_FLAT or (kind == "sqlite" and rate < AIM_SQLITE_RATE)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
