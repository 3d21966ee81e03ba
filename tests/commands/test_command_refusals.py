"""Commands under a busy database and odd arguments: a database busy or locked while `submit` stores a file; malformed
arguments to the officer and distributor commands (every refusal one line and exit 2, never a traceback)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

import psycopg
import pytest
from sqlalchemy.engine import make_url

from shortage_watch.cli import main
from tests.ledger.scenario import make_scenario

NOTICES_CSV = (
    "notice_id,manufacturer,product_code,product_name,kind,distributor_code,notified_on\n"
    "TZ-1,某某制药,XJ1,阿莫西林胶囊,停产,D350901,2024-09-27\n"
)


def submit(config: Path, tmp_path: Path) -> int:
    data = tmp_path / "notices.csv"
    data.write_text(NOTICES_CSV, encoding="utf-8")
    return main(["--config", str(config), "submit", str(data), "--kind", "stoppage_notice", "--now", "2024-09-30T10:00"])


@pytest.mark.postgres
def test_submit_while_postgresql_holds_a_lock_exits_1_retryable_with_one_line(
    pg_url: str, write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The lock times out after 0.3 s instead of waiting: a transient database error, quickly.
    config = write_config({"database": {"url": f"{pg_url}?options=-c%20lock_timeout%3D300"}})
    plain = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as holder:
        holder.execute("LOCK TABLE raw_payloads IN ACCESS EXCLUSIVE MODE")
        code = submit(config, tmp_path)
        holder.rollback()

    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "try again" in err and "重试" in err


@pytest.mark.slow
def test_submit_while_sqlite_is_locked_exits_1_retryable_with_one_line(
    sqlite_url: str, write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config({"database": {"url": sqlite_url}})
    holder = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the 30 s busy timeout
        code = submit(config, tmp_path)
    finally:
        holder.close()

    # Every SQLite transaction begins IMMEDIATE, so here the wait ends already in the schema
    # check: "database unreachable", exit 1, before anything is read from the file.
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "locked" in err



def test_submit_with_a_broken_escalation_policy_names_the_setting_and_exits_2(
    sqlite_url: str, write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("levels = [\n", encoding="utf-8")
    config = write_config({"database": {"url": sqlite_url}, "escalation": {"policy": str(policy)}})
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    capsys.readouterr()

    code = submit(config, tmp_path)

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "unexpected" not in err
    assert err.startswith("shortage-watch: error: 设置 escalation.policy 有误 / setting escalation.policy:") and "policy.toml" in err, err


MALFORMED_ARGUMENTS = [
    ["obligations", "show", "99999999999999999999"],  # beyond any database integer
    ["obligations", "show", "٣"],  # an Arabic-Indic digit: str.isdigit() says yes, int() of it is not ours
    ["obligations", "show", "SW-O-"],
    ["obligations", "show", "SW-X-000001"],
    ["obligations", "show", "0"],
    ["obligations", "show", "1; DROP TABLE obligations"],
    ["obligations", "show", "O1\n2"],
    ["cases", "show", "SW-C-" + "9" * 500],
    ["cases", "resolve", "SW-C-000001\x00", "--note", "x"],
    ["obligations", "list", "--region", "'; DROP TABLE obligations; --"],
    ["cases", "list", "--region", "\u202e350900"],
    ["compliance", "--region", ""],
    ["compliance", "--since", "2024/02/30"],
    ["compliance", "--since", "９９９９年1月1日"],
    ["compliance", "--since", "1024-09-27"],
    ["deadline", "--received", "2024年13月40日"],
    ["template", "stoppage_notice", "--output", "/"],
    ["template", "stoppage_notice", "--output", "x.xlsx\x00.csv"],
]


@pytest.mark.parametrize("argv", MALFORMED_ARGUMENTS, ids=[" ".join(a)[:40] for a in MALFORMED_ARGUMENTS])
def test_malformed_arguments_are_one_line_and_exit_2(tmp_path: Path, write_config, capsys, argv: list[str]) -> None:
    scenario = make_scenario(tmp_path, write_config, capsys)
    capsys.readouterr()
    try:
        code = main(["--config", str(scenario.config), *argv])
    except SystemExit as exc:  # argparse refuses a malformed argument itself
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "unexpected" not in err, err
