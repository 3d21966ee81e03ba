"""`accounts …`, `tokens …` and `web`: what the operator runs on the server."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from shortage_watch.cli import main
from tests.commands.bilingual import assert_chinese_first
from tests.web.conftest import EXAMPLES, REPO


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def config(write_config, tmp_path: Path) -> str:
    path = write_config({"directory": {name: str(EXAMPLES / f"{name}.csv")
                                       for name in ("regions", "contacts", "distributors", "hospitals")}})
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return str(path)


def test_add_distributor_prints_a_one_time_password_and_refuses_unknown_codes(config, capsys):
    code, out, err = run(capsys, "--config", config, "accounts", "add-distributor", "D350901")
    assert code == 0, err
    assert re.search(r"初始密码 initial password: \S{14}$", out, re.M)
    assert "首次登录须修改密码" in out
    code, _, err = run(capsys, "--config", config, "accounts", "add-distributor", "D999999")
    assert code == 2 and "不在目录中" in err and "Traceback" not in err
    code, _, err = run(capsys, "--config", config, "accounts", "add-distributor", "D350901")
    assert code == 2 and "exists already" in err
    code, out, _ = run(capsys, "--config", config, "accounts", "list", "--json")
    [account] = json.loads(out)
    assert account["name"] == "D350901" and account["must_change_password"] is True


def test_disable_and_reset_password(config, capsys):
    run(capsys, "--config", config, "accounts", "add-distributor", "D350901")
    assert run(capsys, "--config", config, "accounts", "disable", "D350901")[0] == 0
    _, out, _ = run(capsys, "--config", config, "accounts", "list")
    header, row = out.splitlines()
    assert header.startswith("账户 name") and "状态 state" in header
    assert row.startswith("D350901") and "已停用 disabled" in row
    code, out, _ = run(capsys, "--config", config, "accounts", "reset-password", "D350901")
    assert code == 0 and "new initial password" in out
    code, _, err = run(capsys, "--config", config, "accounts", "disable", "nobody")
    assert code == 2 and "no account named 'nobody'" in err


def test_tokens_create_list_revoke(config, capsys):
    code, _, err = run(capsys, "--config", config, "tokens", "create", "--distributor", "D350901")
    assert code == 2 and "accounts add-distributor D350901" in err
    run(capsys, "--config", config, "accounts", "add-distributor", "D350901")
    code, out, _ = run(capsys, "--config", config, "tokens", "create", "--distributor", "D350901", "--name", "ERP",
                       "--json")
    created = json.loads(out)
    assert code == 0 and created["token"].startswith("sw_") and created["id"] == 1
    code, out, _ = run(capsys, "--config", config, "tokens", "list")
    assert code == 0 and "ERP" in out and created["token"] not in out and "有效 active" in out
    assert run(capsys, "--config", config, "tokens", "revoke", "1")[0] == 0
    _, out, _ = run(capsys, "--config", config, "tokens", "list")
    assert out.splitlines()[0].startswith("编号 id") and "已撤销 revoked " in out.splitlines()[1]
    _, out, _ = run(capsys, "--config", config, "tokens", "list", "--json")
    assert json.loads(out)[0]["revoked_at"] is not None
    code, _, err = run(capsys, "--config", config, "tokens", "revoke", "7")
    assert code == 2 and "no token with id 7" in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_web_serves_the_portal_until_interrupted(config):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "shortage_watch", "--config", config, "web", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        page = requests.get(f"http://127.0.0.1:{port}/login", timeout=10)
        assert page.status_code == 200 and "登录" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_web_on_a_port_in_use_is_one_line_exit_1(config, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = run(capsys, "--config", config, "web", "--port", str(taken.getsockname()[1]))
    assert code == 1 and err.count("\n") == 1
    assert_chinese_first(err, "门户无法在 127.0.0.1:", "web: cannot listen on 127.0.0.1:")


def test_empty_account_and_token_lists_say_so_chinese_first(config, capsys):
    assert_chinese_first(run(capsys, "--config", config, "accounts", "list")[1], "还没有账户", "no accounts")
    assert_chinese_first(run(capsys, "--config", config, "tokens", "list")[1], "还没有令牌", "no tokens")


def test_web_on_no_port_is_refused_chinese_first(config, capsys):
    code, _, err = run(capsys, "--config", config, "web", "--port", "70000")
    assert code == 2
    assert_chinese_first(err, "--port 70000 不是有效端口", "--port 70000 is not a port (0-65535)")


@pytest.mark.slow
def test_run_serves_the_portal_beside_its_timers(write_config, tmp_path):
    from tests.daemon.conftest import start_daemon, stop_daemon, wait_for

    port = _free_port()
    config = write_config({"web": {"enabled": True, "port": port}})
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path=log_path)
    try:
        def login_page():
            try:
                return requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
            except requests.ConnectionError:
                return None

        page = wait_for(login_page, 60, "the portal of `run`")
        assert page.status_code == 200 and "登录" in page.text
        assert f"portal and API on http://127.0.0.1:{port}/" in log_path.read_text()
    finally:
        code, _ = stop_daemon(proc)
    assert code == 0
