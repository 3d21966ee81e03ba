"""A feed's source lease left by a replica that died is taken over once it expires."""

from __future__ import annotations

from datetime import timedelta

from pytest_httpserver import HTTPServer

from shortage_watch.clock import utc_now
from shortage_watch.services.poll import poll_source
from shortage_watch.store.tables import SourceState
from tests.intake.conftest import NOW, make_app  # noqa: F401  (make_app is a fixture)
from tests.intake.test_http_feed import feed_source, notice


def test_an_expired_source_lease_of_a_dead_replica_is_taken_over(make_app, httpserver: HTTPServer) -> None:  # noqa: F811
    app = make_app(sources=[feed_source(httpserver)])
    with app.sessions.begin() as session:
        session.add(SourceState(name="feed", consecutive_failures=0, lease_owner="dead-replica",
                                lease_until=utc_now() - timedelta(seconds=1)))
    httpserver.expect_request("/feed").respond_with_json([notice(1)])
    outcome = poll_source(app.poll_deps(), app.settings.sources[0], NOW)
    assert (outcome.status, outcome.accepted) == ("ok", 1)
    assert len(httpserver.log) == 1
    with app.sessions() as session:
        assert session.get(SourceState, "feed").lease_owner is None  # released after the poll
