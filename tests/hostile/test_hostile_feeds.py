"""Hostile HTTP feeds, against a real local HTTP server (pytest-httpserver) and both databases.

A bad value is one row error, never a whole page rejected; a header or cursor that does
not fit is ignored with a message, never a failed poll; the raw page is always kept.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from shortage_watch.store.tables import RawPayload, RawReceipt, ShortageReport, SourceState, StoppageNotice

from intake.conftest import make_app  # noqa: F401  (the fixture)
from intake.test_http_feed import feed_source, notice, poll, state

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
