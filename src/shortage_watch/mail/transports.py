"""Where built messages go: an SMTP server, or `.eml` files in a folder.

A transport opens one `Batch` per delivery batch (`with transport.batch() as b`), and
`b.send(envelope)` returns an `Outcome`: sent, transient (retry later) or permanent
(this message can never be delivered as it is). It never raises for a delivery
problem, so one bad message cannot stop a batch.
"""

from __future__ import annotations

import base64
import os
import smtplib
import socket
import ssl
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Protocol

from shortage_watch.mail.message import Envelope
from shortage_watch.settings import MailSettings, SmtpSettings


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "transient", "permanent"]
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == "sent"


SENT = Outcome("sent")


class Batch(Protocol):
    def send(self, envelope: Envelope) -> Outcome: ...


class Transport(Protocol):
    name: str

    def batch(self) -> AbstractContextManager[Batch]: ...


class RateLimiter:
    """At most `per_minute` sends in any minute (a token bucket holding one minute's worth).

    Shared by the batches of one transport, so a process never exceeds the server's limit.
    """

    def __init__(self, per_minute: int, monotonic=time.monotonic, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._last = monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is free; returns the seconds slept."""
        with self._lock:
            now = self._monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
            self.tokens -= 1
        if wait > 0:
            self._sleep(wait)
        return wait


def classify_smtp_error(exc: BaseException) -> Outcome:
    """4xx, connection problems and timeouts are transient; a 5xx answer is permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
        return _by_code(code, reply, "recipient refused")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        # MAIL FROM refused (relay denied, auth required): the settings are wrong, not
        # this message; keep the mail until an operator fixes mail.from or [smtp].
        return Outcome("transient", f"sender {exc.sender} refused: {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPDataError):
        return _by_code(exc.smtp_code, exc.smtp_error, "refused")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Bad credentials will not fix themselves per message, but an operator can fix
        # the settings: keep the mail (transient) rather than killing every alert.
        return Outcome("transient", f"authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc.smtp_code, exc.smtp_error, "server error")
    if isinstance(exc, (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError)):
        return Outcome("transient", f"{type(exc).__name__}: {exc}")
    return Outcome("transient", f"{type(exc).__name__}: {exc}")


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _by_code(code: int, reply: bytes | str, what: str) -> Outcome:
    status: Literal["transient", "permanent"] = "permanent" if 500 <= code < 600 else "transient"
    return Outcome(status, f"{what}: {code} {_text(reply)}")


class SmtpBatch:
    """One SMTP connection reused for a batch; reconnects once after the server drops it."""

    def __init__(self, transport: "SmtpTransport") -> None:
        self.transport = transport
        self.client: smtplib.SMTP | None = None
        self.connect_error: Outcome | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.transport.smtp
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                _login(client, s.username, password)
        except BaseException:
            client.close()
            raise
        return client

    def send(self, envelope: Envelope) -> Outcome:
        if self.connect_error is not None:
            # The server refused this batch's connection: the rest of the batch waits too.
            return self.connect_error
        self.transport.limiter.acquire()
        for attempt in (1, 2):
            reused = self.client is not None
            try:
                if self.client is None:
                    self.client = self._connect()
                self.client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
                return SENT
            except smtplib.SMTPServerDisconnected as exc:
                # A connection idle too long is dropped by the server: reconnect once.
                self._drop()
                if attempt == 2 or not reused:
                    self.connect_error = None if reused else Outcome("transient", f"disconnected: {exc}")
                    return Outcome("transient", f"disconnected: {exc}")
            except (OSError, smtplib.SMTPException) as exc:
                outcome = classify_smtp_error(exc)
                connection_failed = isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)
                if self.client is None or connection_failed or isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused)):
                    # No usable connection (refused, TLS or AUTH failed, timed out): not
                    # this message's fault, so transient, and the batch's rest waits too.
                    outcome = Outcome("transient", outcome.error)
                    self._drop()
                    self.connect_error = outcome
                elif not _alive(self.client):
                    self._drop()  # e.g. after 421 smtplib has closed it; the next message reconnects
                return outcome
            except Exception as exc:  # never let one message's oddity escape the batch
                self._drop()
                return Outcome("transient", f"{type(exc).__name__}: {exc}")
        return Outcome("transient", "unreachable")  # pragma: no cover (loop always returns)

    def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except OSError:
                pass
        self.client = None

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH; smtplib only encodes ASCII, so non-ASCII credentials go as UTF-8 AUTH PLAIN (RFC 4616)."""
    if username.isascii() and password.isascii():
        client.login(username, password)
        return
    token = base64.b64encode(b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")).decode("ascii")
    code, reply = client.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _alive(client: smtplib.SMTP) -> bool:
    return getattr(client, "sock", None) is not None


class SmtpTransport:
    """SMTP with starttls|ssl|none, optional AUTH, a timeout and a per-minute rate limit."""

    name = "smtp"

    def __init__(self, smtp: SmtpSettings) -> None:
        self.smtp = smtp
        self.limiter = RateLimiter(smtp.rate_per_minute)

    @contextmanager
    def batch(self) -> Iterator[SmtpBatch]:
        batch = SmtpBatch(self)
        try:
            yield batch
        finally:
            batch.close()


class FileBatch:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, envelope: Envelope) -> Outcome:
        """Write the message as `<message-id>.eml`, atomically; never over an existing file.

        A resent alert (delivery is at least once) lands beside the first copy as
        `<message-id>.2.eml`, as a second delivery would arrive in a mailbox.
        """
        stem = envelope.message_id.strip("<>").replace("@", "_at_").replace("/", "_")
        temp = self.folder / f"{stem}.tmp{os.getpid()}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(envelope.data)
            try:
                _link_to_free_name(temp, self.folder, stem)
            finally:
                temp.unlink(missing_ok=True)
        except OSError as exc:
            return Outcome("transient", f"cannot write {self.folder / (stem + '.eml')}: {exc.strerror or exc}")
        return SENT


def _link_to_free_name(temp: Path, folder: Path, stem: str) -> Path:
    """Hard-link `temp` to the first free `<stem>[.N].eml`; a link never replaces a file another process made."""
    for copy in range(1, 1000):
        target = folder / (f"{stem}.eml" if copy == 1 else f"{stem}.{copy}.eml")
        try:
            os.link(temp, target)
            return target
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder / stem}.eml: 999 copies already")


class FileTransport:
    """Writes each message as an `.eml` file: a fresh install shows its mail without a server."""

    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextmanager
    def batch(self) -> Iterator[FileBatch]:
        yield FileBatch(self.folder)


def make_transport(mail: MailSettings, smtp: SmtpSettings) -> SmtpTransport | FileTransport:
    """The transport `mail.transport` names."""
    if mail.transport == "smtp":
        return SmtpTransport(smtp)
    return FileTransport(mail.file_dir)
