"""Mail fixtures: an App on the test database, alert rows with realistic contexts, and a
real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from shortage_watch.app import App
from shortage_watch.clock import FixedClock, utc_now
from shortage_watch.mail.samples import sample_alert_context
from shortage_watch.settings import Settings
from shortage_watch.store.tables import Alert

# A Thursday 10:00 in Shanghai: a working day, within working hours.
WORKING_NOW = dt.datetime(2024, 10, 10, 2, 0, tzinfo=dt.timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SinkHandler:
    """Records each accepted message; scripted refusals: per-recipient codes and DATA replies."""

    received: list[Received] = field(default_factory=list)
    refuse_sender: str | None = None  # e.g. "550 5.7.1 relaying denied" for every MAIL FROM
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply, e.g. "550 5.1.1 no such user"
    data_replies: list[str] = field(default_factory=list)  # consumed one per DATA before answering 250
    hold: threading.Event | None = None  # when set, MAIL FROM waits until it is cleared
    hold_after: int | None = None  # start holding once this many messages were accepted
    holding: threading.Event = field(default_factory=threading.Event)  # set once a MAIL FROM is held
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if self.refuse_sender:
            return self.refuse_sender
        while self.hold is not None and self.hold_after is not None and len(self.received) >= self.hold_after and self.hold.is_set():
            self.holding.set()
            await asyncio.sleep(0.02)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.data_replies:
            return self.data_replies.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted"

    def message_ids(self) -> list[str]:
        return [r.message["Message-ID"] for r in self.received]


@dataclass
class Sink:
    handler: SinkHandler
    port: int
    cafile: Path | None = None


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (cryptography)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    """A plain SMTP server on 127.0.0.1 (no TLS, no AUTH)."""
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield Sink(handler, port)
    controller.stop()


@pytest.fixture
def tls_sink(tmp_path: Path) -> Iterator[Sink]:
    """SMTP on 127.0.0.1 that requires STARTTLS, then AUTH (user 'bureau', password '密码-secret')."""
    cert, key = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"bureau" and auth_data.password == "密码-secret".encode()
        return AuthResult(success=ok, handled=False)

    handler = SinkHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=authenticator, auth_required=True, auth_require_tls=True,
    )
    controller.start()
    yield Sink(handler, port, cafile=cert)
    controller.stop()


def mail_settings(db_url: str, tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "calendar": {"overrides_dir": str(tmp_path / "calendar")},
        "mail": {"transport": "file", "file_dir": str(tmp_path / "mail"), "from": "医保短缺监测 <alerts@sw.example.gov.cn>", "reply_to": "office@sw.example.gov.cn"},
        "smtp": {"host": "127.0.0.1", "security": "none", "timeout": 5, "rate_per_minute": 100000},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return Settings(**data)


@pytest.fixture
def make_app(db_url: str, tmp_path: Path) -> Iterator[Callable[..., App]]:
    """App(settings on the test database) with section overrides, e.g. make_app(smtp={"port": 2525})."""
    apps: list[App] = []

    def make(**sections: dict[str, Any]) -> App:
        app = App(mail_settings(db_url, tmp_path, **sections), clock=FixedClock(WORKING_NOW))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


_counter = iter(range(1, 10**9))


def add_alerts(app: App, count: int = 1, *, template: str = "written_reminder", email_for: Callable[[int], str] | None = None,
               role: str = "distributor", urgent: bool = False, language: str = "zh-CN", status: str = "pending",
               due: dt.datetime = WORKING_NOW, product_name: str = "注射用头孢曲松钠", thread_of: Callable[[int], str] | None = None) -> list[int]:
    """Insert `count` outbox rows as the escalation sweep writes them; returns their ids."""
    ids = []
    with app.sessions.begin() as session:
        rows = []
        for _ in range(count):
            n = next(_counter)
            context = dict(sample_alert_context(template, product_name=product_name))
            context["urgent"] = urgent
            context["recipient"] = {**context["recipient"], "role": role}
            email_addr = email_for(n) if email_for else f"d{n}@example.com"
            thread = thread_of(n) if thread_of else f"O{n}"
            context["thread_key"] = thread
            context["case_number"] = f"SW-O-{n:06d}"
            row = Alert(
                dedup_key=f"{thread}:{template}:{n}:{email_addr}", thread_key=thread, level=template, template=template,
                recipient_role=role, recipient_region="350902", recipient_email=email_addr, language=language, urgent=urgent,
                context=context, status=status, attempts=0, next_attempt_at=due, created_at=due,
            )
            rows.append(row)
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    return ids


def alert_rows(app: App) -> dict[int, Alert]:
    from sqlalchemy import select

    with app.sessions() as session:
        return {a.id: a for a in session.scalars(select(Alert))}
