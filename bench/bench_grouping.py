"""Benchmark: a ledger of stoppage notices walked past every ladder level with `once`, mailed grouped.

Builds N notices (default 10,000; `--notices 1000` on a busy machine) for the sample directory's
distributors, received over five working days, and runs one cycle (`run_cycle`, as `once --now`
does) each morning until the last province escalation. Every mail goes to .eml files. Prints the
messages before grouping (one per alert: every sent outbox row was its own message, issue 15's
107,500 for 10,000 notices), the messages now, their ratio, the largest count per recipient,
template and cycle (aim: 1), and checks by parsing every message that each sent item is listed in
exactly the one message its row names.

    .venv/bin/python bench/bench_grouping.py [--notices 10000]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from shortage_watch.app import App  # noqa: E402
from shortage_watch.clock import FixedClock  # noqa: E402
from shortage_watch.services.cycle import run_cycle  # noqa: E402
from shortage_watch.settings import Settings  # noqa: E402
from shortage_watch.store.db import upgrade_schema  # noqa: E402
from shortage_watch.store.tables import Alert, StoppageNotice  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
RECEIVED = [date(2024, 11, 4) + timedelta(days=d) for d in range(5)]  # Monday to Friday
CASE = re.compile(r"SW-[OC]-\d{6}")


def build(folder: Path, notices: int) -> App:
    examples = REPO / "config" / "examples"
    settings = Settings(
        database={"url": f"sqlite:///{folder / 'ledger.db'}"},
        escalation={"policy": str(REPO / "config" / "escalation.toml")},
        calendar={"overrides_dir": str(REPO / "config" / "calendar")},
        directory={name: str(examples / f"{name}.csv") for name in ("regions", "contacts", "distributors", "hospitals")}
        | {"operations_email": "ops@example.org"},
        mail={"transport": "file", "file_dir": str(folder / "mail")},
    )
    app = App(settings, FixedClock(datetime.combine(RECEIVED[0], datetime.min.time(), SHANGHAI)))
    upgrade_schema(app.engine)
    return app


def receive(app: App, day: date, numbers: range) -> None:
    """Store one day's notices and tell the ledger, 500 per transaction (as a big inbox file would)."""
    now = datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=10)
    distributors = sorted(app.directory.distributors.values(), key=lambda p: p.code)
    numbers = list(numbers)
    for start in range(0, len(numbers), 500):
        with app.sessions.begin() as session:
            for n in numbers[start:start + 500]:
                party = distributors[n % len(distributors)]
                row = StoppageNotice(
                    notice_id=f"N{n:06d}", distributor_code=party.code, distributor_name=party.name, manufacturer="某某制药",
                    product_code=f"P{n % 997:04d}", product_name=f"药品{n % 997}", kind="stoppage", notified_on=day,
                    region_code=party.region_code, version=1, source="bench", received_at=now, updated_at=now,
                )
                session.add(row)
                session.flush()
                app.record_listener.record_stored(session, "stoppage_notice", row, None, now)


def walk(app: App, notices: int) -> int:
    """Receive the notices over five days, then one cycle every morning until nothing is left to fire."""
    per_day = -(-notices // len(RECEIVED))
    cycles = 0
    day = RECEIVED[0]
    while day <= RECEIVED[-1] + timedelta(days=40):
        if day in RECEIVED:
            index = RECEIVED.index(day)
            receive(app, day, range(index * per_day, min(notices, (index + 1) * per_day)))
            run_cycle(app.cycle_deps(), datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=10, minute=5))
        else:
            run_cycle(app.cycle_deps(), datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=9))
        cycles += 1
        day += timedelta(days=1)
    return cycles


def check(app: App, mail_dir: Path) -> tuple[int, int, int, Counter]:
    """(items sent, messages, most items of one template to one recipient in one message's cycle, per template)."""
    with app.sessions() as session:
        rows = session.execute(select(Alert.message_id, Alert.template, Alert.recipient_email, Alert.context, Alert.created_at)
                               .where(Alert.status == "sent")).all()
    by_id: dict[str, email.message.EmailMessage] = {}
    for path in mail_dir.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["Message-ID"] not in by_id, f"{message['Message-ID']} written twice"
        by_id[message["Message-ID"]] = message
    listed: dict[str, set[str]] = {}
    for message_id, message in by_id.items():
        listed[message_id] = set(CASE.findall(message.get_body(("plain",)).get_content()))
    items = Counter(message_id for message_id, *_ in rows)
    assert set(items) == set(by_id), "a sent item names a message that was never written, or a message lists no item"
    for message_id, _, _, context, _ in rows:
        assert context["case_number"] in listed[message_id], f"{context['case_number']} missing from its message"
    for message_id, count in items.items():
        assert len(listed[message_id]) == count, f"{message_id}: {count} items but {len(listed[message_id])} listed"
    per_cycle = Counter((m, t, e, c.date()) for m, t, e, _, c in rows)
    messages_per_group = Counter((t, e, c) for (_, t, e, c) in per_cycle)
    return len(rows), len(by_id), max(messages_per_group.values()), Counter(t for _, t, *_ in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app = build(folder, args.notices)
        started = time.perf_counter()
        cycles = walk(app, args.notices)
        elapsed = time.perf_counter() - started
        sent, messages, worst, templates = check(app, folder / "mail")
        app.close()
    print(f"{args.notices} notices, {cycles} cycles in {elapsed:.0f} s")
    print("items sent by template: " + ", ".join(f"{t} {n}" for t, n in templates.most_common()))
    print(f"messages before grouping (one per item): {sent}")
    print(f"messages with grouping: {messages}  (ratio {sent / max(1, messages):.0f} : 1)")
    print(f"most messages for one recipient, template and cycle: {worst} (aim: 1)")
    print("every item listed in exactly the one message its row names: checked")
    return 0 if worst == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
