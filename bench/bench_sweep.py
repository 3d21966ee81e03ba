"""Benchmark: the sweep's cost follows the due items, not the size of the ledger.

Two SQLite files: 10,000 and 1,000,000 open obligations, the same 1,000 of them due
(their reminder level). Prints both sweep times, their ratio (aim: under 1.5, baseline
named in issue 4) and the time per due obligation. Setup bulk-inserts rows with
executemany in one transaction.

Then the day after a golden week (issue 12): 100,000 obligations due at once among 1,000,000 open, on
SQLite and on a throwaway PostgreSQL database. The ledger is what ingest leaves: each obligation is one
distributor's report of its own stoppage notice (1,000,000 notice rows, one per obligation), over the
directory of bench_ingest_ledger (400 distributors in 40 counties of 10 cities), with varied products,
manufacturers and kinds and half of them priority products (the faster ladder); the due ones had their
opening alerts mailed (3-4 each, sent, which the sweep reads as what was mailed before) and reach their
reminder (one alert each, to the distributor). Prints the time per due obligation (aim <= 0.3 ms) and the
ratio against a plain UPDATE of those rows' next_action_at (from where they were due to where the sweep put
them) plus a plain insert of the alerts the sweep wrote (aim >= 0.25), with the machine's load average (it
is shared). Both start on an empty SQLite write-ahead log.

    .venv/bin/python bench/bench_sweep.py [--small 10000] [--large 1000000] [--due 1000]
        [--week-open 1000000] [--week-due 100000] [--databases sqlite,postgresql] [--batch 1000] [--week-only]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from shortage_watch.app import App  # noqa: E402
from shortage_watch.clock import FixedClock  # noqa: E402
from shortage_watch.domain.deadline import report_deadline  # noqa: E402
from shortage_watch.domain.policy import is_priority  # noqa: E402
from shortage_watch.services.escalate import sweep  # noqa: E402
from shortage_watch.settings import Settings  # noqa: E402
from shortage_watch.store.db import upgrade_schema  # noqa: E402
from shortage_watch.store.tables import Alert, Obligation, StoppageNotice  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest_ledger import BenchApp, directory  # noqa: E402

SHANGHAI_OFFSET = timedelta(hours=8)
NOW = datetime(2024, 10, 9, 1, 0, tzinfo=timezone.utc)  # 09:00 Asia/Shanghai: reminders of notices received 09-27 are due


def _sqlite_text(instant: datetime) -> str:
    """How UTCDateTime stores an instant on SQLite (naive UTC text, microseconds)."""
    return instant.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def build(path: Path, total: int, due: int) -> tuple[App, float]:
    settings = Settings(
        database={"url": f"sqlite:///{path}"},
        escalation={"policy": str(REPO / "config" / "escalation.toml")},
        directory={"operations_email": "ops@example.org"},
        calendar={"overrides_dir": str(REPO / "config" / "calendar")},
    )
    app = App(settings, FixedClock(NOW))
    upgrade_schema(app.engine)
    deadline = report_deadline(app.calendar, datetime(2024, 9, 27).date(), 5)
    ladder = json.dumps(app.policy.ladder_for("report").as_json(), ensure_ascii=False)
    due_at = _sqlite_text(deadline.due_at)
    opened = _sqlite_text(datetime(2024, 9, 27, 2, 0, tzinfo=timezone.utc))
    reminder_at = _sqlite_text(datetime(2024, 10, 8, 16, 0, tzinfo=timezone.utc))  # 10-09 00:00 Shanghai
    later = datetime(2024, 12, 1, tzinfo=timezone.utc)
    # The due rows are spread through the table, not bunched at its start.
    stride = max(1, total // due)
    started = time.perf_counter()
    sql = (
        "INSERT INTO obligations (kind, subject_key, party_code, region_code, priority, received_on, due_on, due_at,"
        " calendar_status, state, level, policy, next_action_at, opened_at, updated_at)"
        " VALUES ('report', ?, 'D1', '350902', 0, '2024-09-27', ?, ?, 'official', 'open', 2, ?, ?, ?, ?)"
    )

    def rows():
        for i in range(total):
            is_due = i % stride == 0 and i // stride < due
            next_at = reminder_at if is_due else _sqlite_text(later + timedelta(seconds=i % 86400))
            yield (f"N:B{i}:D1", deadline.due.isoformat(), due_at, ladder, next_at, opened, opened)

    with app.engine.begin() as conn:
        conn.exec_driver_sql(sql, list(rows()))
    return app, time.perf_counter() - started


ROUNDS = 3


def _restore_due(app: App, due_ids: list[int], next_action_at: str) -> None:
    """Put the swept rows back where they were, so the same sweep can be timed again."""
    with app.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alerts")
        conn.exec_driver_sql("DELETE FROM audit_events")
        conn.exec_driver_sql(
            "UPDATE obligations SET level = 2, next_action_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
            [(next_action_at, i) for i in due_ids],
        )


def measure(total: int, due: int, workdir: Path) -> float:
    """The best of ROUNDS sweeps of the same due rows (this machine is shared: the minimum is the signal)."""
    app, setup = build(workdir / f"sweep_{total}.db", total, due)
    try:
        # Warm the per-App caches (calendar years, policy, directory) so both runs time only the sweep.
        app.calendar.nth_working_day_after(NOW.date(), 20)
        app.policy
        app.directory
        with app.engine.connect() as conn:
            due_ids = [r[0] for r in conn.exec_driver_sql(
                "SELECT id FROM obligations WHERE next_action_at <= ?", (_sqlite_text(NOW),))]
            reminder_at = conn.exec_driver_sql(
                "SELECT next_action_at FROM obligations WHERE id = ?", (due_ids[0],)).scalar()
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            result = sweep(app.sweep_deps(), NOW)
            times.append(time.perf_counter() - started)
            with app.sessions() as session:
                alerts = session.scalar(select(func.count()).select_from(Alert))
            assert result.obligations == due and alerts == due and not result.failed, (result.as_json(), alerts)
            again = sweep(app.sweep_deps(), NOW)
            assert again.alerts == 0 and again.obligations == 0
            _restore_due(app, due_ids, reminder_at)
        elapsed = min(times)
        print(f"  {total:>9,} open obligations: setup {setup:6.1f} s, sweep of {due:,} due: best {elapsed:.2f} s"
              f" of {', '.join(f'{t:.2f}' for t in times)}")
        return elapsed
    finally:
        app.close()


PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WEEK_AIM_RATIO, WEEK_AIM_MS = 0.25, 0.3


def _database(kind: str, folder: Path) -> tuple[str, Any]:
    """A migrated empty database (SQLite file, or a throwaway PostgreSQL database) and a function that drops it."""
    if kind == "sqlite":
        url, drop = f"sqlite:///{folder / 'week.db'}", (lambda: None)
    else:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"sw_bench_sweep_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return url, drop


class LockHolds:
    """The longest write transaction on `engine`, begin to commit: how long the sweep held SQLite's write lock
    (or its batch's row locks on PostgreSQL) at a stretch."""

    def __init__(self, engine: Any) -> None:
        self.longest = 0.0
        self.started: dict[int, float] = {}
        event.listen(engine, "begin", lambda conn: self.started.__setitem__(id(conn), time.perf_counter()))
        event.listen(engine, "commit", self._ended)
        event.listen(engine, "rollback", self._ended)

    def _ended(self, conn: Any) -> None:
        began = self.started.pop(id(conn), None)
        if began is not None:
            self.longest = max(self.longest, time.perf_counter() - began)


# The golden week's notices: every due obligation is a distributor's report of its own stoppage notice, as
# ingest opens them (a notice x distributor each), spread over the bench directory's 400 distributors (40
# counties) and over products, manufacturers and kinds, with a mix of priorities (half on the faster ladder).
WEEK_KINDS = ("stoppage", "interruption", "reduction")
WEEK_CLASSES = ("winning_bid", "other", "negotiated", None, "shortage_list", None)
SETUP_CHUNK = 50_000


def _week_ledger(app: App, total: int, due: int) -> None:
    """`total` stoppage notices received 09-27, each opening its distributor's report obligation at the reminder
    level (ingest's rows, written with plain executemany); `due` of them, spread through the table, due now."""
    deadline = report_deadline(app.calendar, datetime(2024, 9, 27).date(), 5)
    ladders = {priority: app.policy.ladder_for("report", priority) for priority in (False, True)}
    snapshots = {priority: ladder.as_json() for priority, ladder in ladders.items()}
    opening_levels = {priority: sum(1 for level in ladder.levels if level.offset is None) for priority, ladder in ladders.items()}
    # The reminder: 00:00 Shanghai one working day before the due date (10-09), two for priority products (10-08).
    reminder_at = {False: datetime(2024, 10, 8, 16, 0, tzinfo=timezone.utc), True: datetime(2024, 10, 7, 16, 0, tzinfo=timezone.utc)}
    opened = datetime(2024, 9, 27, 2, 0, tzinfo=timezone.utc)
    later = datetime(2024, 12, 1, tzinfo=timezone.utc)
    stride = max(1, total // due)
    rng = random.Random(12)
    notices: list[dict[str, Any]] = []
    obligations: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    with app.engine.begin() as conn:
        for i in range(total):
            d = rng.randrange(400)
            party = app.directory.distributor(f"D{d:05d}")
            priority_class = WEEK_CLASSES[rng.randrange(len(WEEK_CLASSES))]
            priority = is_priority(priority_class)
            notice_id = f"TZ-{i:07d}"
            notices.append(dict(id=i + 1, notice_id=notice_id, distributor_code=party.code, distributor_name=party.name,
                                manufacturer=f"制药企业{rng.randrange(97)}股份有限公司", product_code=f"XJ{rng.randrange(5000):06d}",
                                product_name=f"药品{rng.randrange(501)}", specification="0.25g*24粒", kind=WEEK_KINDS[rng.randrange(3)],
                                notified_on=deadline.received, region_code=party.region_code, expected_resume_on=None,
                                reason="原料药供应不足", priority_class=priority_class, version=1, source="bench", received_at=opened,
                                updated_at=opened))
            is_due = i % stride == 0 and i // stride < due
            if is_due:
                alerts.extend(_opening_alerts(i + 1, party.code, party.region_code, priority, opened))
            obligations.append(dict(id=i + 1, kind="report", subject_key=f"N:{notice_id}:{party.code}", party_code=party.code, region_code=party.region_code,
                                    notice_pk=i + 1, product_code=notices[-1]["product_code"], priority=priority, received_on=deadline.received,
                                    due_on=deadline.due, due_at=deadline.due_at, calendar_status=deadline.calendar, state="open",
                                    level=opening_levels[priority], policy=snapshots[priority],
                                    next_action_at=reminder_at[priority] if is_due else later + timedelta(seconds=i % 86400),
                                    opened_at=opened, updated_at=opened))
            if len(obligations) == SETUP_CHUNK or i == total - 1:
                conn.execute(StoppageNotice.__table__.insert(), notices)
                conn.execute(Obligation.__table__.insert(), obligations)
                if alerts:
                    conn.execute(Alert.__table__.insert(), alerts)
                notices, obligations, alerts = [], [], []
        if conn.dialect.name == "postgresql":
            # Ids were given: the sequence goes past them. Ingest analyses the tables a large file grows; so does the bench.
            for table in ("stoppage_notices", "obligations"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {total})")
            for table in ("stoppage_notices", "obligations", "alerts"):
                conn.exec_driver_sql(f"ANALYZE {table}")


def _opening_alerts(obligation_id: int, party_code: str, county: str, priority: bool, opened: datetime) -> list[dict[str, Any]]:
    """The opening levels' alerts a due obligation had mailed (receipt; notice_opened to the county bureaus, and to
    the city's insurance bureau for a priority product), sent: the sweep reads them to tell what was mailed before."""
    city = county[:4] + "00"
    to = [("receipt", "distributor", None, f"d{int(party_code[1:])}@dist.example"),
          ("notice_opened", "insurance", county, f"ybj@{county}.example"), ("notice_opened", "health", city, f"wjw@{city}.example")]
    if priority:
        to.append(("notice_opened", "insurance", city, f"ybj@{city}.example"))
    sent_at = opened + timedelta(minutes=5)
    return [dict(dedup_key=f"O{obligation_id}:{level}:{role}:{region}:{email}", obligation_id=obligation_id, case_id=None,
                 thread_key=f"O{obligation_id}", level=level, template=level, recipient_role=role, recipient_region=region,
                 recipient_email=email, language="zh-CN", urgent=priority and level != "receipt", context={"thread_key": f"O{obligation_id}"},
                 status="sent", attempts=1, next_attempt_at=opened, sent_at=sent_at, created_at=opened)
            for level, role, region, email in to]


def _settle(engine: Any) -> None:
    """Start a timed run with SQLite's write-ahead log empty, so neither the sweep nor its baseline pays for
    copying back pages the setup (or the baseline's reset) wrote; on PostgreSQL, nothing to do."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside any transaction: a checkpoint cannot run inside one
        try:
            busy, _, _ = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert not busy, "the write-ahead log could not be emptied"
        finally:
            raw.close()


def golden_week(kind: str, total: int, due: int, folder: Path, batch: int) -> tuple[float, float]:
    """`due` obligations due at once among `total` open (the day after a golden week), each its own notice's
    (`_week_ledger`): the sweep's time, and the baseline's: a plain UPDATE of those rows' next_action_at plus a
    plain insert of the alerts it wrote."""
    url, drop = _database(kind, folder)
    settings = Settings(
        database={"url": url},
        escalation={"policy": str(REPO / "config" / "escalation.toml"), "sweep_batch": batch},
        directory={"operations_email": "ops@example.org"},
        calendar={"overrides_dir": str(REPO / "config" / "calendar")},
    )
    app = BenchApp(settings, FixedClock(NOW), directory=directory())
    try:
        upgrade_schema(app.engine)
        started = time.perf_counter()
        _week_ledger(app, total, due)
        setup = time.perf_counter() - started
        app.calendar.nth_working_day_after(NOW.date(), 20)  # warm the per-App caches (calendar years, policy, directory)
        app.directory
        mark = "?" if kind == "sqlite" else "%s"
        with app.engine.connect() as conn:
            before = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM alerts").scalar()
            due_before = conn.exec_driver_sql(f"SELECT id, next_action_at FROM obligations WHERE next_action_at <= {mark}",
                                              (_sqlite_text(NOW) if kind == "sqlite" else NOW,)).all()
        _settle(app.engine)
        holds = LockHolds(app.engine)
        started = time.perf_counter()
        result = sweep(app.sweep_deps(), NOW)
        elapsed = time.perf_counter() - started
        assert result.obligations == due and result.alerts == due and not result.failed, result.as_json()
        raw = app.engine.raw_connection()
        try:
            cursor = raw.cursor()
            # The alerts the sweep wrote: those after the opening alerts the setup wrote.
            cursor.execute(f"SELECT * FROM alerts WHERE id > {before}")
            columns = [d[0] for d in cursor.description]
            alerts = [tuple(row) for row in cursor.fetchall()]
            cursor.execute(f"SELECT id, next_action_at FROM obligations WHERE id IN (SELECT obligation_id FROM alerts WHERE id > {before})")
            moved = [(at, row_id) for row_id, at in cursor.fetchall()]
            cursor.execute(f"DELETE FROM alerts WHERE id > {before}")
            # The baseline starts where the sweep started: each row at its old next_action_at, so its UPDATE
            # moves every row as the sweep did. Left at the sweep's values, the UPDATE changed nothing, and
            # SQLite writes no page whose bytes stay the same: the baseline skipped the row pages and index
            # entries the sweep had to write (100,000 of each) and took half the time it should.
            cursor.executemany(f"UPDATE obligations SET next_action_at = {mark} WHERE id = {mark}", [(at, row_id) for row_id, at in due_before])
            raw.commit()
        finally:
            raw.close()
        _settle(app.engine)
        raw = app.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if kind == "postgresql":
                from psycopg.types.json import Json

                alerts = [tuple(Json(v) if isinstance(v, (dict, list)) else v for v in row) for row in alerts]
            started = time.perf_counter()
            if kind == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(f"UPDATE obligations SET next_action_at = {mark} WHERE id = {mark}", moved)
            cursor.executemany(f"INSERT INTO alerts ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})", alerts)
            raw.commit()
            baseline = time.perf_counter() - started
        finally:
            raw.close()
        print(f"  {kind:10} {due:,} due among {total:,} open (setup {setup:.0f} s): sweep {elapsed:.2f} s = "
              f"{elapsed / due * 1000:.3f} ms per due obligation (aim <= {WEEK_AIM_MS}); baseline UPDATE + INSERT {baseline:.2f} s; "
              f"ratio {baseline / elapsed:.2f} (aim >= {WEEK_AIM_RATIO}); batch {batch:,}, longest lock hold {holds.longest:.2f} s; "
              f"load {os.getloadavg()[0]:.1f}")
        return elapsed, baseline
    finally:
        app.close()
        drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--week-open", type=int, default=1_000_000, help="open obligations in the golden-week sweep")
    parser.add_argument("--week-due", type=int, default=100_000, help="of which due at once")
    parser.add_argument("--databases", default="sqlite,postgresql", help="for the golden-week sweep")
    parser.add_argument("--batch", type=int, default=1000, help="escalation.sweep_batch of the golden-week sweep")
    parser.add_argument("--week-only", action="store_true", help="skip the ledger-size comparison (issue 4)")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    missed = False
    if not args.week_only:
        print(f"bench_sweep: SQLite, {args.due:,} due obligations (reminder level, one alert each)")
        with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
            small = measure(args.small, args.due, Path(tmp))
            large = measure(args.large, args.due, Path(tmp))
        ratio = large / small
        print(f"sweep {args.small:,}: {small:.2f} s; sweep {args.large:,}: {large:.2f} s")
        print(f"ratio large/small: {ratio:.2f} (aim < 1.5, issue 4)")
        print(f"time per due obligation: {large / args.due * 1000:.2f} ms ({args.large:,} rows), {small / args.due * 1000:.2f} ms ({args.small:,} rows)")
        missed = ratio >= 1.5
    print(f"bench_sweep golden week: {args.week_due:,} obligations due at once among {args.week_open:,} open (issue 12), each its own"
          f" stoppage notice's report, 400 distributors in 40 counties, half priority; the due ones had their opening alerts mailed and reach their reminder")
    for kind in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
            elapsed, baseline = golden_week(kind, args.week_open, args.week_due, Path(tmp), args.batch)
        missed |= elapsed / args.week_due * 1000 > WEEK_AIM_MS or baseline / elapsed < WEEK_AIM_RATIO
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
