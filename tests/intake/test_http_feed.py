"""An http source against a real local HTTP server (pytest-httpserver), not a mocked requests."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from shortage_watch.services.poll import acquire_source_lease, poll_http_source, poll_source, poll_sources, release_source_lease
from shortage_watch.store.tables import RawReceipt, SourceState, StoppageNotice
from tests.intake.conftest import NOW


def notice(i: int) -> dict[str, Any]:
    return {"notice_id": f"N{i}", "manufacturer": "M", "product_code": f"P{i}", "product_name": "药",
            "kind": "stoppage", "distributor_code": "D1", "notified_on": "2024-09-27"}


def feed_source(httpserver: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {"name": "feed", "type": "http", "url": httpserver.url_for("/feed"), "record_kind": "stoppage_notice",
            "retries": 2, "connect_timeout": 2.0, "read_timeout": 2.0, **extra}


class Sleeper:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def poll(app: Any, sleeper: Sleeper | None = None) -> Any:
    source, deps = app.settings.sources[0], app.poll_deps()
    assert acquire_source_lease(deps, source.name)
    try:
        return poll_http_source(deps, source, NOW, sleep=sleeper or Sleeper())
    finally:
        release_source_lease(deps, source.name)


def state(app: Any) -> SourceState:
    with app.sessions() as session:
        return session.get(SourceState, "feed")


def test_cursor_across_pages_then_incremental(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver)])
    httpserver.expect_ordered_request("/feed", query_string="").respond_with_json(
        {"records": [notice(1)], "next_cursor": "c2", "has_more": True})
    httpserver.expect_ordered_request("/feed", query_string={"cursor": "c2"}).respond_with_json(
        {"records": [notice(2), notice(3)], "next_cursor": "c3", "has_more": False})
    outcome = poll(app)
    assert (outcome.status, outcome.items, outcome.accepted) == ("ok", 2, 3)
    assert state(app).cursor == "c3"
    httpserver.expect_ordered_request("/feed", query_string={"cursor": "c3"}).respond_with_json(
        {"records": [], "next_cursor": "c3", "has_more": False})
    again = poll(app)
    assert (again.status, again.accepted) == ("ok", 0)
    httpserver.check_assertions()


def test_etag_gives_304_and_nothing_is_stored(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver)])
    httpserver.expect_ordered_request("/feed").respond_with_json([notice(1)], headers={"ETag": '"v1"'})
    httpserver.expect_ordered_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data("", status=304)
    assert poll(app).accepted == 1
    outcome = poll(app)
    assert outcome.status == "not_modified"
    httpserver.check_assertions()
    with app.sessions() as session:
        assert len(session.scalars(select(RawReceipt)).all()) == 1
    assert state(app).etag == '"v1"'


def test_429_with_retry_after_is_honoured(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver)])
    httpserver.expect_ordered_request("/feed").respond_with_data("slow down", status=429, headers={"Retry-After": "7"})
    httpserver.expect_ordered_request("/feed").respond_with_json([notice(1)])
    sleeper = Sleeper()
    outcome = poll(app, sleeper)
    assert (outcome.status, outcome.accepted) == ("ok", 1)
    assert sleeper.waits == [7.0]


def test_500_then_200_retries_with_backoff(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver)])
    httpserver.expect_ordered_request("/feed").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request("/feed").respond_with_data("oops", status=503)
    httpserver.expect_ordered_request("/feed").respond_with_json([notice(1)])
    sleeper = Sleeper()
    outcome = poll(app, sleeper)
    assert (outcome.status, outcome.accepted) == ("ok", 1)
    assert sleeper.waits == [0.5, 1.0]
    assert state(app).consecutive_failures == 0


def test_500_until_retries_are_spent_records_a_failure_and_keeps_the_cursor(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver, retries=1)])
    httpserver.expect_request("/feed").respond_with_data("oops", status=500)
    outcome = poll(app)
    assert outcome.status == "failed" and "HTTP 500" in outcome.error
    current = state(app)
    assert (current.consecutive_failures, current.cursor) == (1, None)
    assert "HTTP 500" in current.last_error


def test_a_read_timeout_is_a_recorded_failure(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver, retries=0, read_timeout=0.2)])

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/feed").respond_with_handler(slow)
    outcome = poll(app)
    assert outcome.status == "failed" and "timeout" in outcome.error
    assert state(app).consecutive_failures == 1


def test_invalid_json_is_archived_rejected_and_the_cursor_stays(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver)])
    httpserver.expect_request("/feed").respond_with_data('{"records": [', content_type="application/json")
    outcome = poll(app)
    assert outcome.status == "failed" and "JSON" in outcome.error
    with app.sessions() as session:
        receipt = session.scalars(select(RawReceipt)).one()
        assert receipt.status == "rejected" and "JSON" in receipt.errors[0]["reason"]
    assert state(app).cursor is None and state(app).consecutive_failures == 1


def test_a_50_mb_body_is_cut_at_max_bytes_without_reading_it_all(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver, max_bytes=1024 * 1024)])
    served: list[int] = []

    def huge(request: Request) -> Response:
        def body():  # type: ignore[no-untyped-def]
            yield b"["
            for i in range(50):  # 50 x 1 MiB, produced lazily
                served.append(i)
                yield b" " * (1024 * 1024)
            yield b"]"

        return Response(body(), content_type="application/json")  # chunked: no Content-Length to trust

    httpserver.expect_request("/feed").respond_with_handler(huge)
    outcome = poll(app)
    assert outcome.status == "failed" and "max_bytes" in outcome.error
    assert len(served) < 10  # the client stopped reading; the server never produced 50 MB
    with app.sessions() as session:
        assert session.scalars(select(RawReceipt)).all() == []


def test_a_declared_content_length_over_the_cap_is_refused_before_reading(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver, max_bytes=2048)])
    httpserver.expect_request("/feed").respond_with_data("[" + " " * 5000 + "]", content_type="application/json")
    outcome = poll(app)
    assert outcome.status == "failed" and "max_bytes" in outcome.error


def test_auth_header_from_settings_and_field_map(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver, auth_token="Bearer s3cret",
                                        field_map={"noticeNo": "notice_id", "drug": "product_code"})])
    foreign = {k: v for k, v in notice(1).items() if k not in ("notice_id", "product_code")}
    foreign.update(noticeNo="N1", drug="P1")
    httpserver.expect_request("/feed", headers={"Authorization": "Bearer s3cret"}).respond_with_json([foreign])
    outcome = poll(app)
    assert (outcome.status, outcome.accepted) == ("ok", 1)
    with app.sessions() as session:
        assert session.scalars(select(StoppageNotice.product_code)).one() == "P1"


def test_another_replica_holding_the_lease_means_no_request(make_app, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sources=[feed_source(httpserver)])
    with app.sessions.begin() as session:
        session.add(SourceState(name="feed", consecutive_failures=0, lease_owner="other-replica",
                                lease_until=datetime.now(timezone.utc) + timedelta(minutes=5)))
    outcome = poll_source(app.poll_deps(), app.settings.sources[0], NOW)
    assert outcome.status == "busy"
    assert len(httpserver.log) == 0


def test_poll_sources_survives_a_dead_feed_and_respects_intervals(make_app, httpserver: HTTPServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dead = {"name": "dead", "type": "http", "url": "http://127.0.0.1:9/feed", "retries": 0, "connect_timeout": 0.5}
    app = make_app(sources=[dead, {"name": "box", "type": "inbox", "path": str(inbox)}])
    outcomes = poll_sources(app.poll_deps(), NOW)
    assert [(o.source, o.status) for o in outcomes] == [("dead", "failed"), ("box", "ok")]
    later = poll_sources(app.poll_deps(), NOW)  # interval not elapsed: nothing is polled again
    assert [o.status for o in later] == ["not_due", "not_due"]
    forced = poll_sources(app.poll_deps(), NOW, only="box")
    assert [(o.source, o.status) for o in forced] == [("box", "ok")]


def test_connection_errors_are_retried_with_backoff_then_recorded(make_app) -> None:  # type: ignore[no-untyped-def]
    dead = {"name": "feed", "type": "http", "url": "http://127.0.0.1:9/feed", "retries": 2, "connect_timeout": 0.5}
    app = make_app(sources=[dead])
    sleeper = Sleeper()
    outcome = poll(app, sleeper)
    assert outcome.status == "failed" and "connection error after 3 attempt(s)" in outcome.error
    assert sleeper.waits == [0.5, 1.0]


def test_retry_after_as_seconds_or_http_date() -> None:
    from shortage_watch.intake.sources_http import retry_after_seconds

    now = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("Tue, 08 Oct 2024 02:00:30 GMT", now) == 30.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None
