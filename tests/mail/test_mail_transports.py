"""Transport details: the per-minute rate limit, implicit TLS, and a server that hangs."""

from __future__ import annotations

import socket
import ssl

from aiosmtpd.controller import Controller

from shortage_watch.mail.message import build_message
from shortage_watch.mail.render import RenderedMail
from shortage_watch.mail.transports import FileTransport, RateLimiter, SmtpTransport, make_transport
from shortage_watch.settings import MailSettings, SmtpSettings

from .conftest import WORKING_NOW, SinkHandler, free_port, make_cert


def envelope(to: str = "d@example.com"):
    return build_message(RenderedMail("测试", "正文\n", "<p>正文</p>\n"), sender="a@sw.example.cn", to=to,
                         dedup_key=f"k:{to}", installation="a1b2c3d4e5f60718", thread_key=None, sent_at=WORKING_NOW)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limit_allows_a_minute_of_burst_then_paces():
    clock = FakeTime()
    limiter = RateLimiter(60, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(60):
        limiter.acquire()
    assert clock.slept == []  # one minute's worth goes at once
    limiter.acquire()
    limiter.acquire()
    assert [round(s, 6) for s in clock.slept] == [1.0, 1.0]  # then one per second


def test_implicit_tls_on_a_dedicated_port(tmp_path):
    cert, key = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="ssl", timeout=5, ca_file=cert))
        with transport.batch() as batch:
            assert batch.send(envelope()).sent
        assert [r.rcpt_tos for r in handler.received] == [["d@example.com"]]
    finally:
        controller.stop()


def test_untrusted_certificate_is_a_transient_failure(tmp_path, tls_sink):
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=tls_sink.port, security="starttls", timeout=5))  # system CAs only
    with transport.batch() as batch:
        outcome = batch.send(envelope())
        again = batch.send(envelope("e@example.com"))
    assert outcome.status == "transient" and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert again == outcome  # the rest of the batch waits for the next run
    assert tls_sink.handler.received == []


def test_a_server_that_never_answers_times_out_as_transient():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the TCP connection, never sends a greeting
    try:
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=listener.getsockname()[1], security="none", timeout=0.5))
        with transport.batch() as batch:
            outcome = batch.send(envelope())
        assert outcome.status == "transient" and "timed out" in outcome.error
    finally:
        listener.close()


def test_file_transport_is_the_default(tmp_path):
    transport = make_transport(MailSettings(file_dir=tmp_path / "out"), SmtpSettings())
    assert isinstance(transport, FileTransport)
    sent = envelope()
    with transport.batch() as batch:
        assert batch.send(sent).sent
    [eml] = (tmp_path / "out").glob("*.eml")
    assert eml.read_bytes() == sent.data


def test_file_transport_never_overwrites_an_existing_eml(tmp_path):
    transport = FileTransport(tmp_path)
    first = envelope()
    with transport.batch() as batch:
        assert batch.send(first).sent
    [eml] = tmp_path.glob("*.eml")
    eml.write_bytes(b"kept as it was")  # an older mail with this name (or a copy someone annotated)
    with transport.batch() as batch:
        assert batch.send(first).sent  # a resend (delivery is at least once)
    assert eml.read_bytes() == b"kept as it was"
    assert [p.read_bytes() for p in tmp_path.glob("*.2.eml")] == [first.data]
    assert not list(tmp_path.glob("*.tmp*"))


def test_file_transport_reports_an_unwritable_folder_as_transient(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with FileTransport(blocker / "mail").batch() as batch:
        outcome = batch.send(envelope())
    assert outcome.status == "transient" and "cannot write" in outcome.error
