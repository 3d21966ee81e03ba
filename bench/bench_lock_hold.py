"""Write-lock hold while a large inbox file is stored: 40,000 stoppage notices, real ledger.

Issue 11 (item 7) measured a 40,000-row inbox file holding the SQLite write lock for
141 s in one transaction, while the heartbeat went stale and `health` said "database
locked". Ingest now commits one chunk of rows per transaction. This stores the same
kind of file into a fresh SQLite ledger (the real record listener: obligations, cases,
audit) while a heartbeat thread beats every second as the daemon's would, and prints
the chunk size, the longest and median lock hold, the longest heartbeat wait, and the
ratio of the longest hold to the 141 s baseline (aim: longest hold < 1 % of it, and a
heartbeat never waiting longer than its 30 s interval).

    .venv/bin/python bench/bench_lock_hold.py [--rows N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import event

from shortage_watch.app import App
from shortage_watch.clock import FixedClock, utc_now
from shortage_watch.services.replica import write_heartbeat
from shortage_watch.services import ingest as ingest_module
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.settings import Settings
from shortage_watch.store.db import make_engine, upgrade_schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import generate  # noqa: E402  (the same generated notices)

BASELINE_SECONDS = 141.0  # one transaction for the whole 40,000-row file (issue 11)
NOW = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=40_000)
    args = parser.parse_args()
    content, _ = generate(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        upgrade_schema(make_engine(url))
        app = App(Settings(database={"url": url}, calendar={"overrides_dir": str(REPO / "config/calendar")},
                           escalation={"policy": str(REPO / "config/escalation.toml")}), clock=FixedClock(NOW))
        holds: list[float] = []
        began: dict[int, float] = {}

        @event.listens_for(app.engine, "begin")
        def _began(conn):  # type: ignore[no-untyped-def]
            began[id(conn)] = time.perf_counter()

        @event.listens_for(app.engine, "commit")
        def _committed(conn):  # type: ignore[no-untyped-def]
            if threading.current_thread() is threading.main_thread():
                holds.append(time.perf_counter() - began.pop(id(conn)))

        waits: list[float] = []
        done = threading.Event()
        started = utc_now()

        def heartbeat() -> None:
            while not done.wait(1.0):
                asked = time.perf_counter()
                write_heartbeat(app.replica, started)
                waits.append(time.perf_counter() - asked)

        beating = threading.Thread(target=heartbeat)
        beating.start()
        t0 = time.perf_counter()
        result = ingest_payload(app.ingest_deps(), source="bench", name="notices.csv", content=content, kind="auto", now=NOW)
        elapsed = time.perf_counter() - t0
        done.set()
        beating.join()
        app.close()
    longest = max(holds)
    print(f"rows {args.rows}: accepted {result.accepted} in {elapsed:.1f} s in {len(holds)} transactions; chunks of "
          f"{ingest_module.FIRST_CHUNK} rows first, then up to {ingest_module.CHUNK}, sized to hold the lock "
          f"about {ingest_module.LOCK_HOLD_TARGET} s")
    print(f"lock hold: longest {longest * 1000:.0f} ms, median {statistics.median(holds) * 1000:.0f} ms; "
          f"heartbeat: {len(waits)} beats, longest wait {max(waits, default=0) * 1000:.0f} ms")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"ratio longest hold / baseline {BASELINE_SECONDS:.0f} s = {longest / BASELINE_SECONDS:.5f} (aim < 0.01)")
    return 0 if longest < 0.01 * BASELINE_SECONDS and max(waits, default=0) < 30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
