"""HTTP feeds at their limits (huge numbers, long headers, slow bodies), against a real local HTTP server (pytest-httpserver) and both databases.

A bad value is one row error, never a whole page rejected; a header or cursor that does
not fit is ignored with a message, never a failed poll; the raw page is always kept.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response
from sqlalchemy import select

from shortage_watch.store.tables import RawPayload, RawReceipt, ShortageReport, SourceState, StoppageNotice

from tests.intake.conftest import make_app  # noqa: F401  (the fixture)
from tests.intake.test_http_feed import feed_source, notice, poll, state

HUGE = 10**400  # a 401-digit integer: float() of it raises OverflowError


def stored_notices(app: Any) -> list[str]:
    with app.sessions() as session:
        return sorted(session.scalars(select(StoppageNotice.notice_id)))


def payloads(app: Any) -> list[bytes]:
    with app.sessions() as session:
        return list(session.scalars(select(RawPayload.content)))


def respond_json_text(httpserver: HTTPServer, body: str, **kwargs: Any) -> None:
    httpserver.expect_ordered_request("/feed", **{k: v for k, v in kwargs.items() if k == "query_string"}).respond_with_data(
        body, content_type="application/json", headers=kwargs.get("headers"))


@pytest.mark.parametrize("field", ["notified_on", "product_code", "expected_resume_on"])
def test_a_400_digit_integer_is_one_row_error_and_the_cursor_moves_on(make_app, httpserver: HTTPServer, field: str) -> None:
    app = make_app(sources=[feed_source(httpserver)])
    bad = {**notice(1), field: HUGE}
    respond_json_text(httpserver, json.dumps({"records": [bad, notice(2)], "next_cursor": "c2", "has_more": False}))

    outcome = poll(app)

    assert (outcome.status, outcome.accepted, outcome.rejected) == ("ok", 1, 1)
    assert stored_notices(app) == ["N2"]
    assert state(app).cursor == "c2"
    with app.sessions() as session:
        [errors] = session.scalars(select(RawReceipt.errors))
    assert [(e["row"], e["field"]) for e in errors] == [(0, field)]  # the JSON index
    assert "internal" not in errors[0]["reason"]


@pytest.mark.parametrize("field", ["stock_days", "monthly_demand", "reported_on"])
def test_a_400_digit_number_in_a_shortage_report_is_one_row_error(make_app, httpserver: HTTPServer, field: str) -> None:
    app = make_app(sources=[feed_source(httpserver, record_kind="shortage_report")])
    good = {"report_id": "S1", "hospital_code": "H1", "product_code": "P1", "product_name": "药",
            "reported_on": "2024-09-27", "supply_status": "short"}
    respond_json_text(httpserver, json.dumps({"records": [{**good, "report_id": "S0", field: HUGE}, good], "next_cursor": "c2"}))

    outcome = poll(app)

    assert (outcome.status, outcome.accepted, outcome.rejected) == ("ok", 1, 1)
    with app.sessions() as session:
        assert list(session.scalars(select(ShortageReport.report_id))) == ["S1"]
    assert state(app).cursor == "c2"


def test_an_etag_and_last_modified_too_long_to_store_are_ignored_and_the_page_is_kept(make_app, httpserver: HTTPServer) -> None:
    app = make_app(sources=[feed_source(httpserver)])
    headers = {"ETag": '"' + "e" * 600 + '"', "Last-Modified": "Tue, 01 Oct 2024 00:00:00 GMT" + " " * 100 + "x" * 100}
    respond_json_text(httpserver, json.dumps([notice(1)]), headers=headers)

    outcome = poll(app)

    assert (outcome.status, outcome.accepted) == ("ok", 1)
    current = state(app)
    assert (current.etag, current.last_modified, current.last_error) == (None, None, None)
    assert stored_notices(app) == ["N1"]
    assert len(payloads(app)) == 1


def test_an_etag_that_fits_is_still_kept(make_app, httpserver: HTTPServer) -> None:
    app = make_app(sources=[feed_source(httpserver)])
    respond_json_text(httpserver, json.dumps([notice(1)]), headers={"ETag": '"' + "e" * 510 + '"'})
    assert poll(app).accepted == 1
    assert state(app).etag == '"' + "e" * 510 + '"'


@pytest.mark.parametrize("cursor", ["c\u00002", "c" * 5000], ids=["nul", "5000-chars"])
def test_a_cursor_no_column_can_hold_keeps_the_records_and_the_old_cursor_with_a_message(
    make_app, httpserver: HTTPServer, cursor: str
) -> None:
    app = make_app(sources=[feed_source(httpserver)])
    page = json.dumps({"records": [notice(1)], "next_cursor": cursor, "has_more": True})
    respond_json_text(httpserver, page)

    outcome = poll(app)

    assert outcome.status == "failed" and "next_cursor" in (outcome.error or "")
    assert stored_notices(app) == ["N1"]
    assert payloads(app) == [page.encode()]
    current = state(app)
    assert current.cursor is None
    assert "next_cursor" in (current.last_error or "")
    assert current.consecutive_failures == 1


def test_a_page_no_json_decoder_accepts_is_kept_and_reported(make_app, httpserver: HTTPServer) -> None:
    app = make_app(sources=[feed_source(httpserver)])
    page = '{"records": [{"notice_id": ' + "9" * 5000 + "}]}"  # past Python's int-to-str digit limit
    respond_json_text(httpserver, page)

    outcome = poll(app)

    assert outcome.status == "failed"
    assert payloads(app) == [page.encode()]
    with app.sessions() as session:
        current = session.get(SourceState, "feed")
    assert current is not None and current.last_error and "internal" not in current.last_error


DRIP_SECONDS = 0.25  # between two bytes: well inside read_timeout, so only a total deadline stops it


def dripping(body: bytes) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        def drip() -> Iterator[bytes]:
            for i in range(len(body)):
                time.sleep(DRIP_SECONDS)
                yield body[i:i + 1]
        return Response(drip(), content_type="application/json")
    return handler


@pytest.fixture
def dripping_headers() -> Iterator[str]:
    """A raw TCP server that answers every connection with its status line and headers one byte at a time."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                try:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 400:
                        if stop.is_set():
                            break
                        conn.sendall(bytes([byte]))
                        time.sleep(DRIP_SECONDS)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/feed"
    stop.set()
    thread.join(5)
    server.close()


def test_a_feed_dripping_its_body_is_cut_off_at_the_total_deadline(make_app, httpserver: HTTPServer) -> None:
    app = make_app(sources=[feed_source(httpserver, read_timeout=1.0, total_timeout=2.0, retries=2)])
    httpserver.expect_request("/feed").respond_with_handler(dripping(json.dumps([notice(i) for i in range(20)]).encode()))

    started = time.monotonic()
    outcome = poll(app)
    took = time.monotonic() - started

    assert outcome.status == "failed" and "total_timeout" in (outcome.error or "")
    assert took < 6, f"the poll took {took:.1f}s"  # one deadline of 2 s, no retry of a dripping server
    assert "total_timeout" in (state(app).last_error or "")


def test_a_feed_dripping_its_headers_is_cut_off_at_the_total_deadline(make_app, dripping_headers: str) -> None:
    app = make_app(sources=[{"name": "feed", "type": "http", "url": dripping_headers, "record_kind": "stoppage_notice",
                             "retries": 2, "connect_timeout": 1.0, "read_timeout": 1.0, "total_timeout": 2.0}])
    started = time.monotonic()
    outcome = poll(app)
    took = time.monotonic() - started

    assert outcome.status == "failed" and "total_timeout" in (outcome.error or "")
    assert took < 6, f"the poll took {took:.1f}s"
