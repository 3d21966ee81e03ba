"""Benchmark: the sweep's cost follows the due items, not the size of the ledger.

Two SQLite files: 10,000 and 1,000,000 open obligations, the same 1,000 of them due
(their reminder level). Prints both sweep times, their ratio (aim: under 1.5, baseline
named in issue 4) and the time per due obligation. Setup bulk-inserts rows with
executemany in one transaction.

    .venv/bin/python bench/bench_sweep.py [--small 10000] [--large 1000000] [--due 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from shortage_watch.app import App  # noqa: E402
from shortage_watch.clock import FixedClock  # noqa: E402
from shortage_watch.domain.deadline import report_deadline  # noqa: E402
from shortage_watch.services.escalate import sweep  # noqa: E402
from shortage_watch.settings import Settings  # noqa: E402
from shortage_watch.store.db import upgrade_schema  # noqa: E402
from shortage_watch.store.tables import Alert  # noqa: E402

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
            result = sweep(app, NOW)
            times.append(time.perf_counter() - started)
            with app.sessions() as session:
                alerts = session.scalar(select(func.count()).select_from(Alert))
            assert result.obligations == due and alerts == due and not result.failed, (result.as_json(), alerts)
            again = sweep(app, NOW)
            assert again.alerts == 0 and again.obligations == 0
            _restore_due(app, due_ids, reminder_at)
        elapsed = min(times)
        print(f"  {total:>9,} open obligations: setup {setup:6.1f} s, sweep of {due:,} due: best {elapsed:.2f} s"
              f" of {', '.join(f'{t:.2f}' for t in times)}")
        return elapsed
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    args = parser.parse_args()
    print(f"bench_sweep: SQLite, {args.due:,} due obligations (reminder level, one alert each)")
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        small = measure(args.small, args.due, Path(tmp))
        large = measure(args.large, args.due, Path(tmp))
    ratio = large / small
    print(f"sweep {args.small:,}: {small:.2f} s; sweep {args.large:,}: {large:.2f} s")
    print(f"ratio large/small: {ratio:.2f} (aim < 1.5, issue 4)")
    print(f"time per due obligation: {large / args.due * 1000:.2f} ms ({args.large:,} rows), {small / args.due * 1000:.2f} ms ({args.small:,} rows)")
    return 0 if ratio < 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
