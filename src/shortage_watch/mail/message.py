"""Build the RFC 5322 message for one rendered alert.

Every header value passes through `header_safe`, which removes CR and LF (and other
control characters, and bidirectional overrides): no field of a record can add a
header or turn the reader's view of one around. Subjects and display names are
RFC 2047 encoded by the SMTP policy; bodies are UTF-8.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, format_datetime, getaddresses, parseaddr
from zoneinfo import ZoneInfo

from shortage_watch.mail.render import RenderedMail

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
# Bidirectional controls (LRM/RLM, embeddings, overrides such as U+202E, isolates, ALM)
# and invisible joiners/BOM: in a Subject or a display name they can reverse what the
# reader sees ("exe.pdf" shown as "fdp.exe"), so headers drop them.
_INVISIBLE = re.compile(r"[\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+")
SMTP_COMPAT = compat32.clone(linesep="\r\n")
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class AddressError(ValueError):
    """An address that cannot be mailed to (a permanent failure for its alert)."""


def header_safe(value: str) -> str:
    """One line: CR, LF and other control characters become one space; bidi controls go."""
    return _CONTROL.sub(" ", _INVISIBLE.sub("", value)).strip()


@lru_cache(maxsize=4096)
def parse_address(text: str, what: str) -> Address:
    """One mailbox from 'Name <a@b>' or 'a@b'; AddressError when it is not one."""
    cleaned = header_safe(text)
    pairs = getaddresses([cleaned])
    if len(pairs) != 1 or not pairs[0][1] or "@" not in pairs[0][1]:
        raise AddressError(f"{what}: not one mail address: {cleaned!r}")
    name, addr = parseaddr(cleaned)
    local, _, domain = addr.rpartition("@")
    if not local or not domain or any(c in addr for c in " <>,;\"\\"):
        raise AddressError(f"{what}: not one mail address: {cleaned!r}")
    try:
        return Address(display_name=header_safe(name), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise AddressError(f"{what}: not one mail address: {cleaned!r} ({exc})") from None


def message_id_for(dedup_key: str, installation: str, domain: str) -> str:
    """The stable Message-ID of one alert: the same key in the same installation always gives the same id.

    The installation id keeps a fresh or reset ledger (whose keys start again at O1)
    from reusing the ids of mail an older one sent: clients would hide it as a duplicate.
    Both are hashed into one token so the header stays on one line.
    """
    digest = hashlib.sha256(f"{installation}:{dedup_key}".encode("utf-8")).hexdigest()[:32]
    return f"<sw.{digest}@{domain}>"


def thread_root_id(thread_key: str, installation: str, domain: str) -> str:
    """The (virtual) first message of a case's thread in this installation, referenced by every mail about it."""
    digest = hashlib.sha256(f"{installation}:{thread_key}".encode("utf-8")).hexdigest()[:32]
    return f"<sw.thread.{digest}@{domain}>"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = XLSX_TYPE[0]
    subtype: str = XLSX_TYPE[1]


@dataclass(frozen=True)
class Envelope:
    """A built message, serialized once: what the transports send or write."""

    message: Message
    data: bytes  # the message as sent (ASCII: encoded headers, base64 bodies)
    sender: str  # envelope sender (MAIL FROM)
    recipient: str  # envelope recipient (RCPT TO)
    message_id: str


def _utf8_text(body: str, subtype: str) -> MIMEText:
    return MIMEText(body, subtype, "utf-8")


def build_message(
    rendered: RenderedMail,
    *,
    sender: str,
    to: str,
    dedup_key: str,
    installation: str,
    thread_key: str | None,
    sent_at: datetime,
    reply_to: str | None = None,
    case_number: str | None = None,
    tz: str = "Asia/Shanghai",
    attachments: tuple[Attachment, ...] = (),
) -> Envelope:
    """multipart/alternative (text, HTML) with threading and auto-submitted headers.

    Raises AddressError when `sender`, `to` or `reply_to` is not one mail address.
    Built with the compat32 MIME classes and serialized once: the modern email policy
    re-folds every header on each flatten and costs more than the SMTP exchange itself.
    """
    from_address = parse_address(sender, "mail.from")
    to_address = parse_address(to, "recipient")
    domain = from_address.domain
    message_id = message_id_for(dedup_key, installation, domain)

    alternative = MIMEMultipart("alternative")
    alternative.attach(_utf8_text(rendered.text, "plain"))
    alternative.attach(_utf8_text(rendered.html, "html"))
    if attachments:
        # text+HTML stay one multipart/alternative part inside multipart/mixed.
        msg: Message = MIMEMultipart("mixed")
        msg.attach(alternative)
        for item in attachments:
            part = MIMEBase(item.maintype, item.subtype)
            part.set_payload(item.content)
            encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", header_safe(item.filename)))
            msg.attach(part)
    else:
        msg = alternative
    msg["From"] = _mailbox(from_address)
    msg["To"] = _mailbox(to_address)
    if reply_to:
        msg["Reply-To"] = _mailbox(parse_address(reply_to, "mail.reply_to"))
    msg["Subject"] = Header(header_safe(rendered.subject), "utf-8")
    msg["Date"] = format_datetime(sent_at.astimezone(ZoneInfo(tz)))
    msg["Message-ID"] = message_id
    if thread_key:
        root = thread_root_id(header_safe(thread_key), installation, domain)
        msg["In-Reply-To"] = root
        msg["References"] = root
    # RFC 3834: tells auto-responders (out-of-office) not to answer.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    if case_number:
        msg["X-Shortage-Watch-Case"] = header_safe(case_number)
    data = msg.as_bytes(policy=SMTP_COMPAT)
    return Envelope(message=msg, data=data, sender=from_address.addr_spec, recipient=to_address.addr_spec, message_id=message_id)


def _mailbox(address: Address) -> str:
    """'=?utf-8?b?...?= <a@b>' for a display name in any script, else the bare address."""
    if not address.display_name:
        return address.addr_spec
    return formataddr((address.display_name, address.addr_spec), charset="utf-8")
