"""Fixtures for the web tests: an App on the parametrized database, a real uvicorn on a free loopback port."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.services.accounts import WebUser, add_account, change_password, create_token
from shortage_watch.settings import Settings
from shortage_watch.web.server import WebServer

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config" / "examples"
# Tuesday 8 October 2024, 10:00 in Beijing: the first working day after National Day.
NOW = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


def web_settings(db_url: str, tmp_path: Path, **web: Any) -> Settings:
    return Settings(
        database={"url": db_url},
        calendar={"overrides_dir": str(tmp_path / "calendar")},
        directory={name: str(EXAMPLES / f"{name}.csv") for name in ("regions", "contacts", "distributors", "hospitals")},
        escalation={"policy": str(REPO / "config" / "escalation.toml")},
        mail={"transport": "file", "file_dir": str(tmp_path / "mail")},
        web={"session_secret_file": str(tmp_path / "web_secret"), "api_requests_per_minute": 1000, **web},
    )


@pytest.fixture
def make_web(db_url: str, tmp_path: Path) -> Iterator[Callable[..., tuple[App, WebServer]]]:
    """make_web(**web settings) -> (App at NOW, a started uvicorn serving it on 127.0.0.1:<free port>)."""
    started: list[tuple[App, WebServer]] = []

    def make(**web: Any) -> tuple[App, WebServer]:
        app = App(web_settings(db_url, tmp_path, **web), clock=FixedClock(NOW))
        server = WebServer(app, "127.0.0.1", 0)
        server.start()
        started.append((app, server))
        return app, server

    yield make
    for app, server in started:
        server.stop()
        app.close()


@pytest.fixture
def web(make_web: Callable[..., tuple[App, WebServer]]) -> tuple[App, WebServer]:
    return make_web()


def add_distributor(app: App, code: str, *, name: str | None = None, password: str = PASSWORD) -> WebUser:
    """An account for `code` whose initial password was already changed to `password`."""
    user, initial = add_account(app.sessions, name=name or code, role="distributor", party_code=code, now=NOW)
    change_password(app.sessions, user, current=initial, new=password, now=NOW)
    return user


def token_for(app: App, user: WebUser, name: str = "ERP") -> str:
    return create_token(app.sessions, account_id=user.id, name=name, now=NOW, actor="test")[1]


def notice(notice_id: str = "TZ-001", **fields: Any) -> dict[str, Any]:
    values = {"record_kind": "stoppage_notice", "notice_id": notice_id, "manufacturer": "华北制药股份有限公司",
              "product_code": "XJ01DDT012B001", "product_name": "注射用头孢曲松钠", "kind": "stoppage",
              "distributor_code": "D350901", "notified_on": "2024-10-08"}
    values.update(fields)
    return values
