"""The required scenario: real ingestion and `shortage-watch once --now` walked day by day through National Day 2024.

A notice received Friday 2024-09-27 is due Thursday 2024-10-10 (Sunday 09-29 is a make-up
working day, 10-01..10-07 are rest days). At each step the test asserts exactly which
alerts exist: no overdue during the holiday; +3 working days lands on Monday 10-14
because make-up Saturday 10-12 counts; a late report; a report for a notice never seen;
a regional shortage climbing to the province; a Chongqing district routed to the
municipality 500000; an undeliverable alert.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from shortage_watch.cli import main
from shortage_watch.services.cycle import run_cycle
from shortage_watch.store.tables import Obligation, ShortageCase
from tests.ledger.conftest import at
from tests.ledger.scenario import Scenario, notice, shortage

def test_notice_walked_through_national_day(scenario: Scenario, capsys) -> None:
    s = scenario
    s.ingest(at("2024-09-27T10:00"), notice("N1", "D1"), notice("N2", "D2"), notice("N3", "D3"))
    ids = s.obligation_ids()
    o1, o2, o3 = (f"O{ids[f'N:{n}:{d}']}" for n, d in (("N1", "D1"), ("N2", "D2"), ("N3", "D3")))
    assert s.new() == {
        f"{o1}:receipt:d1@dist.example", f"{o1}:notice_opened:ybj@jiaocheng.example", f"{o1}:notice_opened:wjj@jiaocheng.example",
        # Chongqing: 万州区 has no bureau of its own; its parent, the municipality, hears.
        f"{o2}:receipt:d2@dist.example", f"{o2}:notice_opened:ybj@cq.example", f"{o2}:notice_opened:wjw@cq.example",
        # D3 has no address and no operations address is configured: kept as undeliverable.
        f"{o3}:receipt:distributor@-", f"{o3}:notice_opened:ybj@ningde.example", f"{o3}:notice_opened:wjw@ningde.example",
    }

    # The holiday: nothing is due, nothing is overdue.
    for day in ("09-28", "09-29", "09-30", "10-01", "10-03", "10-05", "10-07", "10-08"):
        s.once(f"2024-{day}T09:00", capsys)
        assert s.new() == set(), day

    # A report for a notice never seen (notified 09-20, due 09-27): opened and fulfilled late in one step.
    s.ingest(
        at("2024-10-08T09:30"),
        {"record_kind": "distributor_report", "report_id": "R-X", "distributor_code": "D1", "manufacturer": "某某制药",
         "product_code": "XC03", "product_name": "阿莫西林胶囊", "kind": "interruption", "notified_on": "2024-09-20",
         "submitted_at": "2024-10-08T09:30:00"},
        shortage("S1", "H1", "2024-10-08"),
    )
    o4 = f"O{s.obligation_ids()['P:D1:XC03:2024-09-20']}"
    # The bureaus hear of the stoppage and of the lateness; no receipt asks D1 for the report it just made.
    assert s.new() == {
        f"{o4}:notice_opened:ybj@jiaocheng.example",
        f"{o4}:notice_opened:wjj@jiaocheng.example", f"{o4}:late_report:ybj@jiaocheng.example",
    }

    # One working day before the due date: the reminder.
    s.once("2024-10-09T09:00", capsys)
    assert s.new() == {f"{o1}:reminder:d1@dist.example", f"{o2}:reminder:d2@dist.example", f"{o3}:reminder:distributor@-"}
    s.ingest(at("2024-10-09T10:00"), shortage("S2", "H2", "2024-10-09"))
    assert s.new() == set()

    # The third hospital of 宁德市 within 7 days: a regional shortage, the city's bureaus hear at once.
    s.ingest(at("2024-10-10T10:00"), shortage("S3", "H3", "2024-10-10"))
    with s.app(at("2024-10-10T10:00")).sessions() as session:
        case = session.scalars(select(ShortageCase)).one()
    c1 = f"C{case.id}"
    assert case.state == "regional" and case.city_code == "350900"
    assert s.new() == {f"{c1}:regional_shortage:ybj@ningde.example", f"{c1}:regional_shortage:wjw@ningde.example"}

    # The due day itself, late evening: still not overdue.
    s.once("2024-10-10T23:30", capsys)
    assert s.new() == set()

    # The first instant after the deadline day: written reminder and the county bureau.
    s.once("2024-10-11T09:00", capsys)
    assert s.new() == {
        f"{o1}:written_reminder:d1@dist.example", f"{o1}:overdue:ybj@jiaocheng.example",
        f"{o2}:written_reminder:d2@dist.example", f"{o2}:overdue:ybj@cq.example",
        f"{o3}:written_reminder:distributor@-", f"{o3}:overdue:ybj@ningde.example",
    }

    # Make-up Saturday 10-12 is the 2nd working day after the due date: nothing yet.
    s.once("2024-10-12T09:00", capsys)
    assert s.new() == set()

    # +3 working days (10-11, 10-12, 10-14): the city bureau and the interview recommendation.
    # The Chongqing district's "city" is the municipality 500000.
    s.once("2024-10-14T09:00", capsys)
    assert s.new() == {
        f"{o1}:interview:ybj@ningde.example", f"{o2}:interview:ybj@cq.example", f"{o3}:interview:ybj@ningde.example",
    }

    # D1 reports late: 4 working days (10-11, 10-12, 10-14, 10-15).
    s.ingest(
        at("2024-10-15T10:00"),
        {"record_kind": "distributor_report", "report_id": "R-1", "distributor_code": "D1", "notice_id": "N1",
         "submitted_at": "2024-10-15T10:00:00"},
    )
    assert s.new() == {f"{o1}:late_report:ybj@jiaocheng.example"}
    with s.app(at("2024-10-15T10:00")).sessions() as session:
        ob1 = session.get(Obligation, int(o1[1:]))
    assert ob1.state == "fulfilled_late" and ob1.late_working_days == 4

    # +10 working days: the province, for the two still overdue (not for D1, who reported). Chongqing's
    # bureau is its district's city and province at once and had the interview level: not told again.
    s.once("2024-10-22T09:00", capsys)
    assert s.new() == set()
    s.once("2024-10-23T09:00", capsys)
    assert s.new() == {f"{o3}:province:ybj@fujian.example"}

    # The regional shortage, still open 10 working days after 10-10, goes to the province.
    result = s.once("2024-10-24T09:00", capsys)
    assert result["sweep"]["cases"] == 1
    assert s.new() == {f"{c1}:regional_escalation:ybj@fujian.example", f"{c1}:regional_escalation:wjw@fujian.example"}

    # Replaying an instant writes nothing new.
    s.once("2024-10-24T09:00", capsys)
    assert s.new() == set()

    # The undeliverable alerts are listed for the operator, never dropped.
    capsys.readouterr()
    assert main(["--config", str(s.config), "obligations", "list", "--undeliverable", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(item["matter"], item["level"]) for item in listed} == {
        (o3, "receipt"), (o3, "reminder"), (o3, "written_reminder"),
    }


def test_run_cycle_service_sweeps_like_the_command(scenario: Scenario) -> None:
    s = scenario
    s.ingest(at("2024-09-27T10:00"), notice("N1", "D1"))
    s.new()
    app = s.app(at("2024-10-11T09:00"))
    try:
        result = run_cycle(app.cycle_deps(), app.clock.now())
    finally:
        app.close()
    assert result.ok and result.sweep is not None and result.sweep.obligations == 1
    assert result.polled == []
    # The first cycle after the deadline: the missed "due tomorrow" reminder is not sent late.
    assert {k.split(":", 1)[1] for k in s.new()} == {"written_reminder:d1@dist.example", "overdue:ybj@jiaocheng.example"}
