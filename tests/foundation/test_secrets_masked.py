"""Secrets that must not leak: feed tokens across redirects, in errors, health and command
output; passwords and tokens inside feed and database URLs. Real local HTTP servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from shortage_watch.cli import main
from shortage_watch.health import check_health
from shortage_watch.redact import MASK, mask_url, scrub
from shortage_watch.store.tables import RawReceipt, SourceState

from tests.daemon.conftest import start_daemon, stop_daemon, wait_for
from tests.intake.conftest import make_app  # noqa: F401  (the fixture)
from tests.intake.test_http_feed import feed_source, notice, poll

TOKEN = "s3cret-Token-9f8e7d"


@pytest.fixture
def other_host() -> Iterator[HTTPServer]:
    """A second server, reached as 'localhost' while the feed is '127.0.0.1': another host."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def everything_stored(app: Any) -> str:
    """Every text the ledger keeps about sources and receipts, as one string to search."""
    with app.sessions() as session:
        states = [(s.last_error, s.cursor) for s in session.scalars(select(SourceState))]
        receipts = [(r.name, json.dumps(r.errors, ensure_ascii=False)) for r in session.scalars(select(RawReceipt))]
    return repr(states) + repr(receipts)


@pytest.mark.parametrize("header", ["X-Api-Key", "Authorization"])
def test_a_redirect_to_another_host_does_not_carry_the_feed_token(make_app, httpserver: HTTPServer, other_host: HTTPServer, header: str) -> None:
    app = make_app(sources=[feed_source(httpserver, auth_header=header, auth_token=TOKEN)])
    elsewhere = f"http://localhost:{other_host.port}/elsewhere"
    httpserver.expect_request("/feed", headers={header: TOKEN}).respond_with_data("", status=302, headers={"Location": elsewhere})
    other_host.expect_request("/elsewhere").respond_with_json([notice(1)])

    outcome = poll(app)

    assert outcome.accepted == 1
    [(request, _)] = other_host.log
    assert header not in request.headers
    assert TOKEN not in str(request.headers)


def test_a_redirect_on_the_same_host_keeps_the_token(make_app, httpserver: HTTPServer) -> None:
    app = make_app(sources=[feed_source(httpserver, auth_header="X-Api-Key", auth_token=TOKEN)])
    httpserver.expect_request("/feed").respond_with_data("", status=302, headers={"Location": httpserver.url_for("/v2/feed")})
    httpserver.expect_request("/v2/feed", headers={"X-Api-Key": TOKEN}).respond_with_json([notice(1)])
    assert poll(app).accepted == 1


@pytest.mark.parametrize("token", [" " + TOKEN, TOKEN + "\n", "\t" + TOKEN + " "], ids=["leading-space", "trailing-newline", "tabs"])
def test_a_token_pasted_with_spaces_is_sent_trimmed_and_never_shown(make_app, httpserver: HTTPServer, token: str) -> None:
    app = make_app(sources=[feed_source(httpserver, auth_header="X-Api-Key", auth_token=token)])
    httpserver.expect_request("/feed", headers={"X-Api-Key": TOKEN}).respond_with_json([notice(1)])

    outcome = poll(app)

    assert (outcome.status, outcome.accepted) == ("ok", 1)
    assert TOKEN not in everything_stored(app)


def test_a_token_with_a_control_character_is_refused_without_quoting_it(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config({"sources": [{"name": "feed", "type": "http", "url": "http://127.0.0.1:1/feed", "auth_token": "ab\x01" + TOKEN}]})

    assert main(["--config", str(config), "config", "check"]) == 2

    captured = capsys.readouterr()
    assert "auth_token" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert TOKEN not in captured.err + captured.out


def test_a_token_in_the_feed_url_is_masked_in_errors_receipts_and_health(make_app, httpserver: HTTPServer) -> None:
    url = httpserver.url_for("/feed") + f"?token={TOKEN}"
    app = make_app(sources=[{**feed_source(httpserver), "url": url}])
    httpserver.expect_request("/feed").respond_with_data("<html>maintenance</html>", content_type="text/html")

    outcome = poll(app)

    assert outcome.status == "failed"
    assert TOKEN not in (outcome.error or "")
    stored = everything_stored(app)
    assert TOKEN not in stored and MASK in stored
    report = check_health(app.settings, app.engine)
    assert TOKEN not in json.dumps([c.__dict__ for c in report.checks], ensure_ascii=False, default=str)


def test_config_check_masks_passwords_and_tokens_in_every_url(write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config({
        "database": {"url": f"postgresql+psycopg://sw:{TOKEN}-db@db.example/sw?password={TOKEN}-q&sslmode=require"},
        "sources": [
            {"name": "userinfo", "type": "http", "url": f"https://feeder:{TOKEN}-u@feeds.example/notices"},
            {"name": "query", "type": "http", "url": f"https://feeds.example/notices?token={TOKEN}-t&page=1"},
        ],
    })

    assert main(["--config", str(config), "config", "check"]) == 0

    out = capsys.readouterr().out
    assert TOKEN not in out
    assert "db.example" in out and "feeds.example/notices" in out  # the rest stays readable


def test_the_daemon_start_line_masks_a_password_in_the_database_url_query(pg_url: str, write_config: Callable[..., Path], tmp_path: Path) -> None:
    url = f"{pg_url}?password={TOKEN}"
    config = write_config({"database": {"url": url}, "daemon": {"heartbeat_interval": 1}})
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path=log_path)
    try:
        wait_for(lambda: "running on" in log_path.read_text(encoding="utf-8"), 30, "the start line")
    finally:
        stop_daemon(proc)
    text = log_path.read_text(encoding="utf-8")
    assert TOKEN not in text and "password=" + MASK in text


@pytest.mark.parametrize(("url", "shown"), [
    ("https://u:p4ss@host/feed?token=t0k&cursor=c2", f"https://u:{MASK}@host/feed?token={MASK}&cursor=c2"),
    ("postgresql+psycopg://sw@db/sw?password=pw&sslmode=require", f"postgresql+psycopg://sw@db/sw?password={MASK}&sslmode=require"),
    ("sqlite:///var/shortage_watch.db", "sqlite:///var/shortage_watch.db"),
    ("sqlite:////abs/ledger.db?password=x", f"sqlite:////abs/ledger.db?password={MASK}"),
    ("http://127.0.0.1:8080/feed", "http://127.0.0.1:8080/feed"),
])
def test_mask_url_hides_passwords_and_query_values(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_scrub_masks_a_secret_also_when_quoted_trimmed() -> None:
    assert scrub(f"Invalid header value: ' {TOKEN}'", [" " + TOKEN]) == f"Invalid header value: '{MASK}'"
    assert scrub(f"token {TOKEN} again {TOKEN}", [TOKEN + "\n"]) == f"token {MASK} again {MASK}"
