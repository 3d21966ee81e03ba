"""The smtp transport reuses its connection: at most one per batch, never one per message."""

from __future__ import annotations

from shortage_watch.services.deliver import deliver_due
from tests.mail.conftest import WORKING_NOW, add_alerts, make_app, smtp_sink  # noqa: F401  (fixtures)


def test_one_smtp_session_per_batch(make_app, smtp_sink) -> None:  # noqa: F811
    app = make_app(mail={"transport": "smtp", "batch_size": 4}, smtp={"port": smtp_sink.port})
    add_alerts(app, 8)
    sessions: list[object] = []  # the aiosmtpd session objects, one per TCP connection
    original = smtp_sink.handler.handle_MAIL

    async def counting_mail(server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if not any(s is session for s in sessions):
            sessions.append(session)
        return await original(server, session, envelope, address, mail_options)

    smtp_sink.handler.handle_MAIL = counting_mail  # type: ignore[method-assign]
    result = deliver_due(app.deliver_deps(), WORKING_NOW)
    assert (result.sent, result.batches) == (8, 2)
    assert len(smtp_sink.handler.received) == 8
    assert 1 <= len(sessions) <= result.batches  # 8 messages in 2 batches: not eight connections
