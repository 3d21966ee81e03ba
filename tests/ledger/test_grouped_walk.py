"""A ledger walked past every level with `once` (real ingest, CLI and file transport): a 30-row file
gets one receipt listing 30 deadlines, and every alert is in exactly one message (parsed back)."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from shortage_watch.store.tables import Alert
from tests.ledger.conftest import at
from tests.ledger.scenario import notice

CASE = re.compile(r"SW-[OC]-\d{6}")
WALK = ("2024-09-27T10:00", "2024-10-09T09:00", "2024-10-11T09:00", "2024-10-16T09:00", "2024-10-25T09:00")


def messages(folder: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(folder.glob("*.eml"))]


def test_a_30_row_file_gets_one_receipt_and_every_item_is_in_exactly_one_message(scenario, capsys, tmp_path):
    scenario.ingest(at("2024-09-27T10:00"), *[notice(f"N-{n:02d}", "D1", product=f"P{n:02d}") for n in range(30)],
                    *[notice(f"M-{n:02d}", "D2", product=f"Q{n:02d}") for n in range(4)])
    scenario.once(WALK[0], capsys)
    sent = messages(tmp_path / "mail")
    receipts = [m for m in sent if m["To"] == "d1@dist.example"]
    assert len(receipts) == 1 and receipts[0]["Subject"] == "登记回执：共30项"
    text = receipts[0].get_body(("plain",)).get_content()
    assert len(set(CASE.findall(text))) == 30 and text.count("报告期限：") == 30
    assert receipts[0].get_content_type() == "multipart/mixed"  # more than mail.group_attach_over: XLSX attached

    for now in WALK[1:]:
        scenario.once(now, capsys)
    app = scenario.app(at(WALK[-1]))
    try:
        with app.sessions() as session:
            rows = session.scalars(select(Alert).where(Alert.status == "sent")).all()
    finally:
        app.close()
    sent = messages(tmp_path / "mail")
    by_id = {m["Message-ID"]: m for m in sent}
    assert len(by_id) == len(sent)  # no message twice
    items_per_message = Counter(r.message_id for r in rows)
    assert set(items_per_message) == set(by_id)  # every sent item names a message that exists, and vice versa
    for message_id, count in items_per_message.items():
        listed = set(CASE.findall(by_id[message_id].get_body(("plain",)).get_content()))
        assert listed == {r.context["case_number"] for r in rows if r.message_id == message_id}
        assert len(listed) == count  # one row of the table per item, no item twice
    print(f"\n{len(rows)} alerts sent as {len(sent)} messages")
    assert len(sent) * 4 < len(rows)
