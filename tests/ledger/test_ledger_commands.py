"""The ledger's commands for people: obligations list, cases list|show|resolve, compliance, once errors."""

from __future__ import annotations

import json
from pathlib import Path

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first
from tests.ledger.conftest import at
from tests.ledger.scenario import notice, shortage


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _two_distributors(s) -> None:
    s.ingest(at("2024-09-27T10:00"), notice("N1", "D1"), notice("N2", "D2"), notice("N3", "D1", product="XB02"))
    s.ingest(at("2024-10-09T10:00"), {"record_kind": "distributor_report", "report_id": "R1", "distributor_code": "D1",
                                      "notice_id": "N1", "submitted_at": "2024-10-09T10:00:00"})
    s.ingest(at("2024-10-15T10:00"), {"record_kind": "distributor_report", "report_id": "R3", "distributor_code": "D1",
                                      "notice_id": "N3", "submitted_at": "2024-10-15T10:00:00"})


def test_obligations_list_filters_by_state_region_and_distributor(scenario, capsys):
    _two_distributors(scenario)
    cfg = str(scenario.config)
    code, out, _ = run(capsys, "--config", cfg, "once", "--now", "2024-10-16T09:00")
    assert code == 0
    assert_chinese_first(out.splitlines()[0], "2024-10-16 09:00 运行一轮：轮询 0 个数据来源；巡检：1 项报告义务", "cycle at 2024-10-16 09:00: polled 0 source(s); sweep: 1 obligation(s)")
    code, out, _ = run(capsys, "--config", cfg, "obligations", "list", "--json")
    assert code == 0 and len(json.loads(out)) == 3
    _, out, _ = run(capsys, "--config", cfg, "obligations", "list", "--state", "overdue", "--json")
    assert [(o["distributor"], o["region"]) for o in json.loads(out)] == [("D2", "500101")]
    _, out, _ = run(capsys, "--config", cfg, "obligations", "list", "--state", "late", "--json")
    assert [o["late_working_days"] for o in json.loads(out)] == [4]
    _, out, _ = run(capsys, "--config", cfg, "obligations", "list", "--region", "500000", "--json")
    assert [o["distributor"] for o in json.loads(out)] == ["D2"]  # 万州区 lies within 重庆市
    _, out, _ = run(capsys, "--config", cfg, "obligations", "list", "--distributor", "D1", "--lang", "en")
    assert out.count("SW-O-") == 2 and "reported late" in out


def test_compliance_per_distributor(scenario, capsys):
    _two_distributors(scenario)
    code, out, _ = run(capsys, "--config", str(scenario.config), "compliance", "--json")
    rows = {r["distributor"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["D1"] | {"name": None} == {"distributor": "D1", "name": None, "notices": 2, "on_time": 1, "late": 1,
                                          "overdue": 0, "open": 0, "median_working_days": 6.5}
    assert rows["D1"]["name"] == "宁德医药配送有限公司"
    assert rows["D2"]["notices"] == 1 and rows["D2"]["overdue"] == 1  # the clock is now, long after 2024
    # --since/--until bound the deadline (due 2024-10-10 for notices received 2024-09-27), as the monthly summary does.
    code, out, _ = run(capsys, "--config", str(scenario.config), "compliance", "--since", "2024-10-01", "--until", "2024-10-31", "--json")
    assert code == 0 and sum(r["notices"] for r in json.loads(out)) == 3
    code, out, _ = run(capsys, "--config", str(scenario.config), "compliance", "--since", "2024-10-11", "--lang", "en")
    assert code == 0 and "no report obligations (since 2024-10-11)" in out


def test_cases_list_show_and_resolve_by_hospital_then_whole(scenario, capsys):
    s = scenario
    s.ingest(at("2024-10-08T10:00"), shortage("S1", "H1", "2024-10-08"), shortage("S2", "H2", "2024-10-08"))
    cfg = str(s.config)
    _, out, _ = run(capsys, "--config", cfg, "cases", "list", "--json")
    [case] = json.loads(out)
    assert case["city_code"] == "350900" and case["hospitals_open"] == 2
    code, out, _ = run(capsys, "--config", cfg, "cases", "resolve", str(case["id"]), "--hospital", "H1", "--note", "已调拨")
    assert code == 0 and "1 hospital(s) still short" in out
    code, out, _ = run(capsys, "--config", cfg, "cases", "show", str(case["id"]), "--json")
    shown = json.loads(out)
    assert [(r["hospital"], r["part_closed"]) for r in shown["reports"]] == [("H1", True), ("H2", False)]
    assert [h["action"] for h in shown["history"]] == ["opened", "part_closed"]
    assert shown["notices"] == [] and shown["obligations"] == []
    code, out, _ = run(capsys, "--config", cfg, "cases", "show", str(case["id"]), "--lang", "en")
    assert code == 0 and "unexplained shortage" in out and "(closed)" in out
    code, out, _ = run(capsys, "--config", cfg, "cases", "resolve", str(case["id"]), "--note", "供应恢复")
    assert code == 0 and "resolved" in out
    _, out, _ = run(capsys, "--config", cfg, "cases", "list", "--state", "resolved", "--json")
    assert json.loads(out)[0]["resolution_note"] == "供应恢复"
    code, _, err = run(capsys, "--config", cfg, "cases", "resolve", str(case["id"]), "--note", "again")
    assert code == 1 and "already resolved" in err
    code, _, err = run(capsys, "--config", cfg, "cases", "show", "999")
    assert code == 2 and err.strip() == "shortage-watch: error: 没有短缺案件 SW-C-000999 / no case SW-C-000999"


def test_once_refuses_bad_now_and_missing_schema_and_bad_policy_in_one_line(scenario, capsys, write_config, tmp_path: Path):
    code, _, err = run(capsys, "--config", str(scenario.config), "once", "--now", "yesterday")
    assert code == 2 and "--now" in err and "Traceback" not in err
    assert_chinese_first(err, "参数 --now：'yesterday' 不是日期时间", "--now: 'yesterday' is not an ISO date-time")
    fresh = write_config({"database": {"url": f"sqlite:///{tmp_path / 'empty.db'}"}}, name="fresh.toml")
    code, _, err = run(capsys, "--config", str(fresh), "once")
    assert code == 2 and "shortage-watch db upgrade" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[[ladders.report.levels]]\nname = 'x'\noffset = 'later'\n", encoding="utf-8")
    bad = write_config({"escalation": {"policy": str(broken)}}, name="bad.toml")
    assert main(["--config", str(bad), "db", "upgrade"]) == 0
    code, _, err = run(capsys, "--config", str(bad), "once")
    assert code == 2 and "escalation.policy" in err and "offset" in err and len(err.strip().splitlines()) == 1


def test_once_polls_every_source_now_and_fails_on_a_failing_one(tmp_path, write_config, capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = str(write_config({"sources": [
        {"name": "good", "type": "inbox", "path": str(inbox), "interval": 3600, "settle_seconds": 0},
        {"name": "gone", "type": "inbox", "path": str(tmp_path / "missing"), "interval": 3600},
    ]}))
    assert main(["--config", config, "db", "upgrade"]) == 0
    code, out, _ = run(capsys, "--config", config, "once", "--json")
    summary = json.loads(out)
    assert code == 1
    assert {s["source"]: s["status"] for s in summary["sources"]} == {"good": "ok", "gone": "failed"}
    assert any("gone" in error and "does not exist" in error for error in summary["errors"])
    # A second cycle right away still polls: an operator's `once` ignores the sources' intervals.
    (inbox / "n.json").write_text(json.dumps(notice("N9", "D1")), encoding="utf-8")
    code, out, _ = run(capsys, "--config", config, "once", "--json")
    assert {s["source"]: (s["status"], s["accepted"]) for s in json.loads(out)["sources"]}["good"] == ("ok", 1)
    # Read by a person: the cycle, then each source and error on a line of its own, Chinese first.
    code, out, _ = run(capsys, "--config", config, "once")
    lines = out.splitlines()
    assert code == 1 and "轮询 2 个数据来源" in lines[0] and "polled 2 source(s)" in lines[0]
    assert_chinese_first(lines[1], "good：正常，0 项，接受 0", "good: ok, 0 item(s), accepted 0")
    assert_chinese_first(lines[2], "gone：失败", "gone: failed: ")
