"""An http source sends If-Modified-Since from the feed's Last-Modified, and a 304 stores nothing."""

from __future__ import annotations

from pytest_httpserver import HTTPServer
from sqlalchemy import func, select

from shortage_watch.store.tables import RawReceipt, SourceState
from tests.intake.conftest import make_app  # noqa: F401  (fixture)
from tests.intake.test_http_feed import feed_source, notice, poll

STAMP = "Tue, 08 Oct 2024 01:00:00 GMT"


def test_last_modified_is_sent_back_as_if_modified_since(make_app, httpserver: HTTPServer) -> None:  # noqa: F811
    app = make_app(sources=[feed_source(httpserver)])
    httpserver.expect_ordered_request("/feed").respond_with_json([notice(1)], headers={"Last-Modified": STAMP})
    httpserver.expect_ordered_request("/feed", headers={"If-Modified-Since": STAMP}).respond_with_data("", status=304)
    assert poll(app).accepted == 1
    assert poll(app).status == "not_modified"
    httpserver.check_assertions()  # the second request really carried If-Modified-Since
    with app.sessions() as session:
        assert session.get(SourceState, "feed").last_modified == STAMP
        assert session.scalar(select(func.count()).select_from(RawReceipt)) == 1
