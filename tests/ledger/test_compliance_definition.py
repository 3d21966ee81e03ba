"""Compliance has one definition: the `compliance` command and the monthly summary give the same figures."""

from __future__ import annotations

import json

from sqlalchemy import select

from shortage_watch.cli import main
from shortage_watch.services.digests import send_monthly_summaries
from shortage_watch.store.tables import Alert
from tests.ledger.conftest import at
from tests.ledger.scenario import notice


def _report(report_id: str, distributor: str, notice_id: str, submitted_at: str) -> dict[str, str]:
    return {"record_kind": "distributor_report", "report_id": report_id, "distributor_code": distributor,
            "notice_id": notice_id, "submitted_at": submitted_at}


def _october_ledger(s) -> None:
    """Notices received 2024-09-27 fall due 2024-10-10 (after National Day); one received 2024-10-29 falls due in November."""
    s.ingest(at("2024-09-27T10:00"), notice("N1", "D1"), notice("N2", "D2"), notice("N3", "D1", product="XB02"),
             notice("N4", "D3", product="XC03"))
    s.ingest(at("2024-10-09T10:00"), _report("R1", "D1", "N1", "2024-10-09T10:00:00"))  # on time
    s.ingest(at("2024-10-15T10:00"), _report("R3", "D1", "N3", "2024-10-15T10:00:00"))  # late
    s.ingest(at("2024-10-29T10:00"), {**notice("N5", "D1", product="XD04"), "notified_on": "2024-10-29"})  # due in November: not October's


def _cli_compliance(capsys, config, region: str) -> dict[str, tuple[int, int, int, int, int]]:
    capsys.readouterr()
    code = main(["--config", str(config), "compliance", "--since", "2024-10-01", "--until", "2024-10-31", "--region", region, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return {r["distributor"]: (r["notices"], r["on_time"], r["late"], r["overdue"], r["open"]) for r in json.loads(out)}


def test_compliance_command_and_monthly_summary_count_the_same(scenario, capsys):
    _october_ledger(scenario)
    app = scenario.app(at("2024-11-01T10:00"))
    try:
        assert send_monthly_summaries(app.digest_deps(), at("2024-11-01T10:00")) == 4  # every insurance bureau address
        with app.sessions() as session:
            summaries = list(session.scalars(select(Alert).where(Alert.template == "monthly_summary")))
    finally:
        app.close()
    by_region = {
        alert.recipient_region: {r["distributor_code"]: (r["obligations"], r["on_time"], r["late"], r["overdue"], r["open"])
                                 for r in alert.context["compliance"]}
        for alert in summaries
    }
    assert by_region["350900"] == {"D1": (2, 1, 1, 0, 0), "D3": (1, 0, 0, 1, 0)}  # N5 falls due in November
    assert by_region["500000"] == {"D2": (1, 0, 0, 1, 0)}
    for region, monthly in by_region.items():
        assert _cli_compliance(capsys, scenario.config, region) == monthly, region
