"""Officer commands speak the officer's language: SW-O-/SW-C- numbers as printed in mail, names
instead of codes, Chinese first (English with --lang en), regions checked, +08:00 in JSON."""

from __future__ import annotations

import json

import pytest

from shortage_watch.cli import main
from shortage_watch.services.alerts import audit
from tests.ledger.conftest import at
from tests.ledger.scenario import notice, shortage
from tests.ledger.test_ledger_commands import _two_distributors, run
from tests.store.write_lock import finishes_within, write_lock_held


@pytest.fixture
def ledger(scenario, capsys):
    """D1 reported N1 on time and N3 late; D2 never reported N2; two hospitals of 宁德市 lack 硝酸甘油片."""
    _two_distributors(scenario)
    scenario.ingest(at("2024-10-08T10:00"), shortage("S1", "H1", "2024-10-08"), shortage("S2", "H2", "2024-10-08"))
    scenario.once("2024-10-16T09:00", capsys)
    return scenario


def row_of(out: str, number: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(number)]
    return line


def test_obligations_list_shows_names_and_working_days_late_under_chinese_headers(ledger, capsys):
    code, out, _ = run(capsys, "--config", str(ledger.config), "obligations", "list")
    assert code == 0
    header = out.splitlines()[0]
    assert header.split() == ["编号", "类型", "配送企业", "药品", "通知编号", "区划", "期限（北京时间）", "状态", "逾期工作日"]
    late = row_of(out, "SW-O-000003")
    assert "宁德医药配送有限公司 (D1)" in late and "注射用头孢曲松钠" in late and " N3 " in late
    assert "逾期后已报告" in late and late.endswith(" 4")
    overdue = row_of(out, "SW-O-000002")
    assert "万州医药物流 (D2)" in overdue and "已逾期" in overdue and int(overdue.split()[-1]) >= 5


def test_lang_en_gives_english_headers_and_states_json_keys_stay_english(ledger, capsys):
    _, out, _ = run(capsys, "--config", str(ledger.config), "obligations", "list", "--lang", "en")
    assert out.splitlines()[0].startswith("number") and "working days late" in out.splitlines()[0]
    assert "reported late" in row_of(out, "SW-O-000003") and "逾期" not in out
    _, out, _ = run(capsys, "--config", str(ledger.config), "obligations", "list", "--json", "--lang", "en")
    item = {o["case_number"]: o for o in json.loads(out)}["SW-O-000003"]
    assert (item["state"], item["working_days_late"], item["distributor_name"], item["notice_id"]) == (
        "fulfilled_late", 4, "宁德医药配送有限公司", "N3")


def test_json_instants_carry_the_shanghai_offset(ledger, capsys):
    cfg = str(ledger.config)
    _, out, _ = run(capsys, "--config", cfg, "obligations", "list", "--json")
    first = json.loads(out)[0]
    assert first["due_at"] == "2024-10-10T23:59:59+08:00"
    _, out, _ = run(capsys, "--config", cfg, "obligations", "show", "SW-O-000001", "--json")
    shown = json.loads(out)
    assert shown["fulfilled_at"].endswith("+08:00") and all(e["at"].endswith("+08:00") for e in shown["events"])
    assert all(a["sent_at"].endswith("+08:00") for a in shown["alerts"])
    _, out, _ = run(capsys, "--config", cfg, "cases", "show", "SW-C-000001", "--json")
    shown = json.loads(out)
    assert shown["opened_at"] == "2024-10-08T10:00:00+08:00" and shown["history"][0]["at"].endswith("+08:00")


def test_obligations_show_prints_the_whole_timeline(ledger, capsys):
    scenario_app = ledger.app(at("2024-10-16T09:00"))
    try:
        with scenario_app.sessions.begin() as session:  # a level the sweep skipped, as the audit trail records it
            audit(session, at=at("2024-10-16T09:00"), actor="sweep", entity="obligation", entity_id=2, action="levels",
                  detail={"fired": ["interview"], "skipped": ["written_reminder", "overdue_alert"], "alerts": 1})
    finally:
        scenario_app.close()
    code, out, _ = run(capsys, "--config", str(ledger.config), "obligations", "show", "SW-O-000002")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("SW-O-000002  书面报告  已逾期")
    assert "万州医药物流 (D2)" in out and "万州区 (500101)" in out
    assert "注射用头孢曲松钠 (XA01)" in out and "N2" in out and "某某制药" in out and "停产" in out
    assert "收到通知：2024-09-27" in out and "报告期限：2024-10-10 23:59" in out and "国务院公布的节假日安排" in out
    assert "时间线：" in lines
    assert any("开立" in line for line in lines) and any("书面提醒 (written_reminder)" in line for line in lines)
    receipt = [line for line in lines if "(receipt)" in line]
    assert receipt and "d2@dist.example：已发送 20" in receipt[0]
    assert any("跳过的级别：written_reminder, overdue_alert" in line for line in lines)
    assert any("跳过级别（未发送） — level=reminder" in line for line in lines)  # the sweep's own audit


def test_obligation_numbers_are_accepted_as_printed_in_mail(ledger, capsys):
    for number in ("SW-O-000002", "sw-o-2", "O2", "2"):
        code, out, _ = run(capsys, "--config", str(ledger.config), "obligations", "show", number, "--json")
        assert code == 0 and json.loads(out)["case_number"] == "SW-O-000002", number


def test_case_numbers_are_accepted_by_show_and_resolve(ledger, capsys):
    cfg = str(ledger.config)
    code, out, _ = run(capsys, "--config", cfg, "cases", "show", "SW-C-000001")
    assert code == 0 and out.startswith("SW-C-000001  硝酸甘油片 (XB02)  城市：宁德市 (350900)  状态：处理中")
    code, out, _ = run(capsys, "--config", cfg, "cases", "resolve", "SW-C-000001", "--note", "已调拨")
    assert code == 0 and "SW-C-000001 已解决" in out


UNKNOWN = [
    (["obligations", "show", "SW-O-000099"], "没有报告义务 SW-O-000099 / no obligation SW-O-000099"),
    (["cases", "show", "SW-C-000042"], "没有短缺案件 SW-C-000042 / no case SW-C-000042"),
    (["obligations", "list", "--region", "359999"], "目录中没有区划 359999"),
    (["cases", "list", "--region", "359999"], "目录中没有区划 359999"),
    (["compliance", "--region", "359999"], "目录中没有区划 359999"),
    (["obligations", "show", "SW-C-000001"], "参数 id：SW-C-000001 是短缺案件编号，不是报告义务编号 / argument id: SW-C-000001 numbers a case, not an obligation"),
    (["cases", "resolve", "SW-O-000001", "--note", "x"], "SW-O-000001 是报告义务编号，不是短缺案件编号"),
    (["cases", "show", "第一个"], "不是短缺案件编号"),
    (["compliance", "--since", "2024年13月1日"], "日期"),
]


def test_an_unknown_number_or_region_is_one_line_and_exit_2(ledger, capsys):
    for argv, message in UNKNOWN:
        capsys.readouterr()
        try:
            code = main(["--config", str(ledger.config), *argv])
        except SystemExit as exc:  # argparse refuses a malformed argument itself
            code = exc.code
        out, err = capsys.readouterr()
        assert code == 2 and out == "", argv
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)


def test_region_filters_cases_and_compliance(ledger, capsys):
    cfg = str(ledger.config)
    _, out, _ = run(capsys, "--config", cfg, "cases", "list", "--region", "350902", "--json")
    assert [c["case_number"] for c in json.loads(out)] == ["SW-C-000001"]  # a county sees its city's case
    _, out, _ = run(capsys, "--config", cfg, "cases", "list", "--region", "500000", "--json")
    assert json.loads(out) == []
    _, out, _ = run(capsys, "--config", cfg, "compliance", "--region", "500000", "--json")
    assert [r["distributor"] for r in json.loads(out)] == ["D2"]
    code, out, _ = run(capsys, "--config", cfg, "compliance", "--region", "350900")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["配送企业", "通知数", "按时"]
    assert "宁德医药配送有限公司 (D1)" in out and "D2" not in out


def test_dates_accept_the_forms_records_accept(ledger, capsys):
    for since in ("2024-09-27", "2024/9/27", "2024年9月27日"):
        code, out, _ = run(capsys, "--config", str(ledger.config), "compliance", "--since", since, "--json")
        assert code == 0 and sum(r["notices"] for r in json.loads(out)) == 3, since
        code, out, _ = run(capsys, "--config", str(ledger.config), "deadline", "--received", since, "--json")
        assert code == 0 and json.loads(out)["due"] == "2024-10-10", since
    for now in ("2024/10/16 09:00", "2024年10月16日 09:00"):  # and date-times as records write them
        code, out, _ = run(capsys, "--config", str(ledger.config), "once", "--now", now, "--json")
        assert code == 0 and json.loads(out)["now"] == "2024-10-16T09:00:00+08:00", now


def test_listings_read_while_a_replica_holds_the_write_lock(ledger, capsys):
    """`obligations list|show`, `cases list` and `outbox list` only read: a long ingest in another
    process (holding SQLite's write lock) does not hold them up."""
    cfg = str(ledger.config)
    with write_lock_held(ledger.app(at("2024-10-16T09:00")).settings.database.url):
        for argv in (("obligations", "list"), ("obligations", "show", "SW-O-000001"), ("cases", "list"), ("outbox", "list")):
            code, out, _ = finishes_within(10, lambda: run(capsys, "--config", cfg, *argv))
            assert code == 0 and out, argv
