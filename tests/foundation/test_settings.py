"""Settings: TOML file, environment overrides, masked secrets, one line per bad key."""

import json
from pathlib import Path
from typing import Callable

import pytest

from shortage_watch.cli import main
from shortage_watch.settings import SettingsError, load_settings


def test_shipped_example_config_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config" / "shortage_watch.toml", explicit=True)
    assert settings.calendar.working_days == 5
    assert settings.database.url.startswith("sqlite:///")


def test_environment_beats_file(write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config({"calendar": {"working_days": 7}, "database": {"url": "sqlite:///from-file.db"}})
    monkeypatch.setenv("SHORTAGE_WATCH_DATABASE__URL", "postgresql+psycopg://u:pw@127.0.0.1/env")
    monkeypatch.setenv("SHORTAGE_WATCH_CALENDAR__CUTOFF", "17:30")
    settings = load_settings(path, explicit=True)
    assert settings.database.url == "postgresql+psycopg://u:pw@127.0.0.1/env"
    assert settings.calendar.working_days == 7  # untouched by the environment
    assert settings.calendar.cutoff is not None and settings.calendar.cutoff.isoformat() == "17:30:00"


def test_config_check_masks_every_secret(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "smtp_password"
    secret_file.write_text("file-secret-42\n", encoding="utf-8")
    path = write_config(
        {
            "database": {"url": "postgresql+psycopg://watch:db-secret-17@127.0.0.1/sw"},
            "smtp": {"username": "watch", "password_file": str(secret_file)},
        }
    )
    assert main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "db-secret-17" not in out and "file-secret-42" not in out
    data = json.loads(out[out.index("\n{") + 1:])
    assert data["smtp"]["password"] == "**********"
    assert data["database"]["url"] == "postgresql+psycopg://watch:**********@127.0.0.1/sw"


def test_secret_is_read_from_file(write_config: Callable[..., Path], tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n", encoding="utf-8")
    settings = load_settings(write_config({"smtp": {"password_file": str(secret_file)}}), explicit=True)
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "s3cret"


def test_each_bad_key_is_one_line(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        {"timezone": "Mars/Olympus", "calendar": {"working_days": 0}, "database": {"url": "mysql://x"}, "bogus": 1}
    )
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4
    joined = "\n".join(err)
    for key in ("timezone", "calendar.working_days", "database.url", "bogus"):
        assert f"setting {key}:" in joined
    assert "Traceback" not in joined


def test_bad_environment_value_names_the_key(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORTAGE_WATCH_CALENDAR__WORKING_DAYS", "five")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(write_config(), explicit=True)
    assert excinfo.value.problems[0].startswith("calendar.working_days:")


def test_missing_named_config_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "config", "check"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_broken_toml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[database\nurl=1", encoding="utf-8")
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid TOML" in err[0]


def test_config_path_from_environment(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config({"calendar": {"working_days": 9}})
    monkeypatch.setenv("SHORTAGE_WATCH_CONFIG", str(path))
    assert main(["config", "check"]) == 0
    assert '"working_days": 9' in capsys.readouterr().out


def test_config_check_reports_an_unreadable_policy(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "escalation.toml"
    policy.write_text("[ladders.report\n", encoding="utf-8")
    assert main(["--config", str(write_config({"escalation": {"policy": str(policy)}})), "config", "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("shortage-watch: error: 设置 escalation.policy 有误 / setting escalation.policy:")


@pytest.mark.parametrize("start, end", [("17:30", "08:30"), ("09:00", "09:00")])
def test_working_hours_must_end_after_they_start(write_config: Callable[..., Path], start: str, end: str) -> None:
    # Otherwise no instant is ever "within working hours": non-urgent bureau mail is deferred forever.
    path = write_config({"mail": {"working_hours_start": start, "working_hours_end": end}})
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, explicit=True)
    assert excinfo.value.problems[0].startswith("mail:") and "working_hours_end" in excinfo.value.problems[0]


def test_database_url_is_read_from_a_file_and_masked(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql+psycopg://watch:from-file-pw@127.0.0.1/sw\n", encoding="utf-8")
    path = write_config({"database": {"url_file": str(url_file)}})
    assert load_settings(path, explicit=True).database.url == "postgresql+psycopg://watch:from-file-pw@127.0.0.1/sw"
    assert main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "from-file-pw" not in out and "watch:**********@127.0.0.1/sw" in out


def test_unreadable_database_url_file_names_the_key(write_config: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(write_config({"database": {"url_file": str(tmp_path / "missing")}}), explicit=True)
    assert excinfo.value.problems[0].startswith("database: url_file: cannot read secret file")


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@127.0.0.1:notaport/db", "postgresql://u@127.0.0.1:70000/db"])
def test_a_database_port_that_is_no_port_is_a_settings_error(
    url: str, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config({"database": {"url": url}})
    assert main(["--config", str(path), "db", "current"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("shortage-watch: 设置有误 / setting database.url:"), err
    assert "port" in err and "Traceback" not in err and "ValueError" not in err
