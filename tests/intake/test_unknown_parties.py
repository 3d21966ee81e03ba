"""Unknown parties are never silent: a row naming a distributor or hospital the directory does not
list is accepted (the record is kept) and reported: in `submit --json`, beside the archived inbox
file, and in the operations address's daily digest. `directory check` says where mail falls back."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.cli import main
from shortage_watch.clock import FixedClock
from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.digests import send_daily_digests
from shortage_watch.settings import load_settings
from shortage_watch.store.tables import Alert, Obligation
from tests.ledger.test_templates_from_ledger import problems
from tests.intake.conftest import EXAMPLES, STOPPAGE_HEADER_ZH, notice_row, sample_directory_settings

UNKNOWN_DISTRIBUTOR = "D359999"


def csv_file(folder: Path, *rows: list[str], name: str = "通知.csv") -> Path:
    path = folder / name
    path.write_bytes(("\r\n".join([STOPPAGE_HEADER_ZH, *(",".join(r) for r in rows)]) + "\r\n").encode("gbk"))
    return path


def make_config(write_config: Callable[..., Path], tmp_path: Path, **directory: Any) -> Path:
    path = write_config({"directory": {**sample_directory_settings(), **directory},
                         "sources": [{"name": "inbox", "type": "inbox", "path": str(tmp_path / "inbox"), "settle_seconds": 0}]})
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return path


def test_unknown_distributor_is_accepted_with_a_warning_and_still_owes_a_report(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path)
    path = csv_file(tmp_path, notice_row(1), notice_row(2, distributor_code=UNKNOWN_DISTRIBUTOR, distributor_name="某未登记公司"))
    capsys.readouterr()
    assert main(["--config", str(config), "submit", str(path), "--json", "--now", "2024-10-08T10:00"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["accepted"], result["rejected"], result["errors"]) == (2, 0, [])
    [warning] = result["warnings"]
    assert (warning["row"], warning["field"]) == (3, "distributor_code")
    assert f"配送企业 {UNKNOWN_DISTRIBUTOR} 不在目录中" in warning["reason"]
    assert f"distributor {UNKNOWN_DISTRIBUTOR} is not in the directory" in warning["reason"]
    app = App(load_settings(config, explicit=True))
    try:
        with app.sessions() as session:
            owed = set(session.scalars(select(Obligation.party_code)))
    finally:
        app.close()
    assert owed == {"D350901", UNKNOWN_DISTRIBUTOR}


def test_human_submit_output_shows_the_warning(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path)
    path = csv_file(tmp_path, notice_row(1, distributor_code=UNKNOWN_DISTRIBUTOR))
    capsys.readouterr()
    assert main(["--config", str(config), "submit", str(path), "--now", "2024-10-08T10:00"]) == 0
    out = capsys.readouterr().out
    assert f"提示 warning 第 2 行 row 2 [distributor_code]: 配送企业 {UNKNOWN_DISTRIBUTOR} 不在目录中" in out


def test_unknown_hospital_is_reported_too(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path)
    path = tmp_path / "直报.json"
    path.write_text(json.dumps({"record_kind": "shortage_report", "report_id": "ZB-1", "hospital_code": "H-NOBODY",
                                "region_code": "350902", "product_code": "XB02", "product_name": "硝酸甘油片",
                                "reported_on": "2024-10-08", "supply_status": "short"}), encoding="utf-8")
    capsys.readouterr()
    assert main(["--config", str(config), "submit", str(path), "--json", "--now", "2024-10-08T10:00"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accepted"] == 1 and [(w["row"], w["field"]) for w in result["warnings"]] == [(0, "hospital_code")]  # JSON index


def test_inbox_writes_the_warnings_beside_the_archived_file(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    csv_file(inbox, notice_row(1), notice_row(2, distributor_code=UNKNOWN_DISTRIBUTOR), name="华康.csv")
    assert main(["--config", str(config), "poll", "--now", "2024-10-08T10:00"]) == 0
    [archived] = (inbox / "archive").glob("*华康.csv")
    warnings_csv = archived.with_name(archived.name + ".warnings.csv")
    rows = list(csv.reader(warnings_csv.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == ["行号/row", "字段/field", "原因/reason"]
    assert rows[1][:2] == ["3", "distributor_code"] and UNKNOWN_DISTRIBUTOR in rows[1][2]
    assert not list((inbox / "archive").glob("*.errors.csv"))


def test_operations_address_gets_the_warnings_in_its_daily_digest(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path, operations_email="ops@sw.example.cn")
    path = csv_file(tmp_path, notice_row(1, distributor_code=UNKNOWN_DISTRIBUTOR))
    assert main(["--config", str(config), "submit", str(path), "--now", "2024-10-08T10:00"]) == 0
    digest_time = datetime(2024, 10, 9, 0, 30, tzinfo=timezone.utc)  # 08:30 the next working day
    app = App(load_settings(config, explicit=True), clock=FixedClock(digest_time))
    try:
        send_daily_digests(app.digest_deps(), digest_time)
        send_daily_digests(app.digest_deps(), digest_time)  # once a day
        with app.sessions() as session:
            [row] = session.scalars(select(Alert).where(Alert.template == "operations_digest")).all()
        assert row.recipient_email == "ops@sw.example.cn"
        deliver_due(app.deliver_deps(), digest_time)
    finally:
        app.close()
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in (tmp_path / "mail").glob("*.eml")]
    [message] = [m for m in mails if m["Subject"].startswith("运维日报")]
    assert message["To"] == "ops@sw.example.cn"
    text = message.get_body(("plain",)).get_content()
    # No None and no empty fact ("已连续多个工作日" in the quiet-reporter wording is prose, not a count).
    assert problems("operations_digest", (text + message.get_body(("html",)).get_content()).replace("多个工作日", "")) == []
    assert "通知.csv" in text and f"配送企业 {UNKNOWN_DISTRIBUTOR} 不在目录中" in text and "distributor_code" in text


def test_directory_check_reports_where_mail_falls_back(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path)
    capsys.readouterr()
    assert main(["--config", str(config), "directory", "check", "--json"]) == 0  # warnings do not fail the check
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any(w.startswith("未设置 directory.operations_email") for w in warnings)
    assert any(w.startswith("配送企业 D500003 渝中区康达医药有限公司 没有邮箱") for w in warnings)
    assert "区划 350921 霞浦县 没有医疗保障局联系人：其邮件发往宁德市医疗保障局（350900） / " \
           "region 350921 霞浦县 has no insurance contact: its mail goes to 宁德市医疗保障局 (350900)" in warnings
    assert not any("350900 宁德市 没有" in w for w in warnings)  # it has both contacts
    with_ops = make_config(write_config, tmp_path, operations_email="ops@sw.example.cn")
    assert main(["--config", str(with_ops), "directory", "check"]) == 0
    out = capsys.readouterr().out
    assert "提示 warning: 配送企业 D500003" in out and "operations_email is not set" not in out and "没有问题（16 条提示" in out


def test_contacts_without_an_email_are_a_problem(write_config, tmp_path, capsys):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text((EXAMPLES / "contacts.csv").read_text(encoding="utf-8") + "350921,insurance,,霞浦县医疗保障局,single,\n",
                        encoding="utf-8")
    config = make_config(write_config, tmp_path, contacts=str(contacts))
    capsys.readouterr()
    assert main(["--config", str(config), "directory", "check"]) == 1
    assert "问题 problem: contact insurance@350921: no email address" in capsys.readouterr().out


def test_an_operations_digest_written_late_does_not_list_its_files_again_the_next_day(write_config, tmp_path, capsys):
    config = make_config(write_config, tmp_path, operations_email="ops@sw.example.cn")
    early = csv_file(tmp_path, notice_row(1, distributor_code=UNKNOWN_DISTRIBUTOR), name="早上.csv")
    later = csv_file(tmp_path, notice_row(2, distributor_code=UNKNOWN_DISTRIBUTOR), name="中午.csv")
    assert main(["--config", str(config), "submit", str(early), "--now", "2024-10-09T09:00"]) == 0
    assert main(["--config", str(config), "submit", str(later), "--now", "2024-10-09T12:00"]) == 0
    written_late = datetime(2024, 10, 9, 3, 0, tzinfo=timezone.utc)  # 11:00: a replica restarted late
    next_day = datetime(2024, 10, 10, 0, 30, tzinfo=timezone.utc)
    app = App(load_settings(config, explicit=True), clock=FixedClock(written_late))
    try:
        assert send_daily_digests(app.digest_deps(), written_late) == 1
        assert send_daily_digests(app.digest_deps(), next_day) == 1
        with app.sessions() as session:
            digests = session.scalars(select(Alert).where(Alert.template == "operations_digest").order_by(Alert.id)).all()
            files = [[f["name"] for f in d.context["unknown_parties"]] for d in digests]
    finally:
        app.close()
    assert files == [["早上.csv"], ["中午.csv"]]
