"""`mail preview`, `mail test`, `outbox list`, `outbox retry` through the real CLI."""

from __future__ import annotations

import email
import email.policy
import json

import pytest
from sqlalchemy import update

from shortage_watch.app import App
from shortage_watch.cli import main
from shortage_watch.settings import load_settings
from shortage_watch.store.tables import Alert

from tests.commands.bilingual import assert_chinese_first

from .conftest import add_alerts, alert_rows


@pytest.fixture
def config(write_config):
    path = write_config()
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return path


@pytest.fixture
def cli_app(config):
    app = App(load_settings(config, explicit=True))
    yield app
    app.close()


def test_preview_prints_subject_and_text(config, capsys):
    assert main(["--config", str(config), "mail", "preview", "written_reminder"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Subject: 书面提醒：") and "2024年10月10日（星期四）17:30前" in out


def test_preview_english_html_to_a_file(config, tmp_path, capsys):
    target = tmp_path / "digest.html"
    assert main(["--config", str(config), "mail", "preview", "digest", "--lang", "en", "--output", str(target)]) == 0
    html = target.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Daily drug supply digest" in html


def test_preview_monthly_summary_as_eml_carries_the_workbook(config, tmp_path):
    target = tmp_path / "monthly.eml"
    assert main(["--config", str(config), "mail", "preview", "monthly_summary", "--output", str(target)]) == 0
    msg = email.message_from_bytes(target.read_bytes(), policy=email.policy.default)
    assert [a.get_filename() for a in msg.iter_attachments()] == ["宁德市2024年9月药品短缺月度汇总.xlsx"]


def test_preview_of_an_unknown_template_is_one_line_and_exit_2(config, capsys):
    assert main(["--config", str(config), "mail", "preview", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shortage-watch: error: ") and err.count("\n") == 1
    assert_chinese_first(err, "没有名为 'nope' 的邮件模板", "unknown template 'nope'; known: ")


def test_preview_to_a_file_says_what_it_wrote_chinese_first(config, tmp_path, capsys):
    target = tmp_path / "reminder.txt"
    assert main(["--config", str(config), "mail", "preview", "written_reminder", "--output", str(target)]) == 0
    assert_chinese_first(capsys.readouterr().out, f"已将 written_reminder（zh-CN，text）写入 {target}",
                         f"wrote written_reminder (zh-CN, text) to {target}")


def test_mail_test_over_smtp(write_config, smtp_sink, capsys):
    path = write_config({"mail": {"transport": "smtp"}, "smtp": {"port": smtp_sink.port, "security": "none"}})
    assert main(["--config", str(path), "mail", "test", "--to", "ops@example.com"]) == 0
    [received] = smtp_sink.handler.received
    assert received.rcpt_tos == ["ops@example.com"] and received.message["Subject"] == "测试邮件：药品短缺监测系统邮件发送正常"
    assert_chinese_first(capsys.readouterr().out, "测试邮件已发往 ops@example.com（经 smtp，", "sent test message <")


def test_mail_test_with_nothing_listening_exits_1(write_config, capsys):
    from .conftest import free_port

    path = write_config({"mail": {"transport": "smtp"}, "smtp": {"port": free_port(), "security": "none", "timeout": 2}})
    assert main(["--config", str(path), "mail", "test", "--to", "ops@example.com"]) == 1
    assert_chinese_first(capsys.readouterr().out, "未发送", "not sent (transient)")


def test_mail_test_with_a_bad_address_exits_2(config, capsys):
    assert main(["--config", str(config), "mail", "test", "--to", "nobody"]) == 2
    assert_chinese_first(capsys.readouterr().err, "收件地址无效", "not one mail address")


def test_outbox_list_and_retry(config, cli_app, capsys):
    dead, pending = add_alerts(cli_app, 2)
    add_alerts(cli_app, 1, status="sent")
    with cli_app.sessions.begin() as s:
        s.execute(update(Alert).where(Alert.id == dead).values(status="dead", attempts=8, last_error="refused: 550 no such user"))

    assert main(["--config", str(config), "outbox", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["id"] for a in listed["alerts"]] == [dead, pending]
    assert listed["counts"] == {"dead": 1, "pending": 1, "sent": 1}
    assert all(a["next_attempt_at"].endswith("+08:00") for a in listed["alerts"])  # as every --json

    assert main(["--config", str(config), "outbox", "list", "--status", "dead"]) == 0
    out = capsys.readouterr().out
    assert "错误 error: refused: 550 no such user" in out and f"{pending:>7}" not in out
    assert_chinese_first(out.splitlines()[-1].removeprefix("# "), "列出 1 条；发件箱：1 pending, 1 sent, 1 dead",
                         "1 listed; outbox: 1 pending, 1 sent, 1 dead")

    assert main(["--config", str(config), "outbox", "retry", "--all-dead"]) == 0
    assert_chinese_first(capsys.readouterr().out, "已重新排队 1 条提醒", f"requeued 1 alert(s): {dead}")
    row = alert_rows(cli_app)[dead]
    assert (row.status, row.attempts, row.last_error) == ("pending", 0, None)


def test_outbox_retry_refuses_a_sent_alert_and_an_unknown_id(config, cli_app, capsys):
    [sent] = add_alerts(cli_app, 1, status="sent")
    assert main(["--config", str(config), "outbox", "retry", str(sent)]) == 2
    assert_chinese_first(capsys.readouterr().err, f"提醒 {sent} 的状态是 sent", f"alert {sent} is sent; only dead or pending")
    assert main(["--config", str(config), "outbox", "retry", "999999"]) == 2
    assert_chinese_first(capsys.readouterr().err, "没有编号为 999999 的提醒", "no alert with id 999999")


@pytest.mark.parametrize("action", [["list"], ["retry", "1"], ["retry", "--all-dead"]])
def test_outbox_with_the_database_unreachable_is_one_line_and_exit_1(write_config, action, capsys):
    from .conftest import free_port

    path = write_config({"database": {"url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"}})
    assert main(["--config", str(path), "outbox", *action]) == 1
    err = capsys.readouterr().err
    assert err.startswith("shortage-watch: error: 无法连接数据库 / database unreachable") and err.count("\n") == 1


def test_outbox_list_on_an_empty_database_says_to_upgrade(write_config, capsys):
    path = write_config()
    assert main(["--config", str(path), "outbox", "list"]) == 2
    assert "db upgrade" in capsys.readouterr().err
