"""Message building: stable ids, threading, auto-submitted, and no header injection."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest

from shortage_watch.mail.message import AddressError, build_message, header_safe, message_id_for
from shortage_watch.mail.render import RenderedMail

SENT_AT = dt.datetime(2024, 10, 10, 2, 0, tzinfo=dt.timezone.utc)


def build(**overrides):
    args = dict(
        sender="医保短缺监测 <alerts@sw.example.gov.cn>", to="d@example.com", dedup_key="O1:written_reminder:d@example.com",
        installation="a1b2c3d4e5f60718", thread_key="O1", sent_at=SENT_AT, reply_to="office@sw.example.gov.cn", case_number="SW-O-000001",
    )
    args.update(overrides)
    rendered = args.pop("rendered", RenderedMail("主题", "正文\n", "<p>正文</p>\n"))
    return build_message(rendered, **args)


def parse(envelope):
    return email.message_from_bytes(envelope.data, policy=email.policy.default)


def test_message_id_is_stable_per_alert_and_uses_the_from_domain():
    first, again = build(), build()
    assert first.message_id == again.message_id == message_id_for("O1:written_reminder:d@example.com", "a1b2c3d4e5f60718", "sw.example.gov.cn")
    assert first.message_id.endswith("@sw.example.gov.cn>")
    assert build(dedup_key="O1:reminder:d@example.com").message_id != first.message_id


def test_another_installation_gives_other_message_ids_and_thread_roots():
    here, there = parse(build()), parse(build(installation="0f1e2d3c4b5a6978"))
    assert here["Message-ID"] != there["Message-ID"]
    assert here["References"] != there["References"]


def test_mail_about_one_case_threads_on_one_root():
    a, b = parse(build()), parse(build(dedup_key="O1:overdue_alert:x@example.com"))
    assert a["In-Reply-To"] == b["In-Reply-To"] == a["References"]
    assert parse(build(thread_key="O2"))["In-Reply-To"] != a["In-Reply-To"]


def test_headers_for_a_bureau_mail_client():
    msg = parse(build())
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"].datetime == SENT_AT
    assert msg["Date"].datetime.utcoffset() == dt.timedelta(hours=8)
    assert msg["X-Shortage-Watch-Case"] == "SW-O-000001"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())


def test_header_values_lose_cr_and_lf():
    assert header_safe("a\r\nBcc: x@example.com\u2028z") == "a Bcc: x@example.com z"


def test_subject_with_crlf_cannot_add_a_header():
    envelope = build(rendered=RenderedMail("药品\r\nBcc: x@example.com", "t\n", "<p>h</p>\n"))
    raw = envelope.data
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None and b"\nBcc:" not in raw
    assert msg["Subject"] == "药品 Bcc: x@example.com"


@pytest.mark.parametrize("bad", ["a@example.com\r\nBcc: x@example.com", "not an address", "a@example.com, b@example.com", ""])
def test_recipient_must_be_one_address(bad):
    with pytest.raises(AddressError):
        build(to=bad)


def test_attachment_makes_a_mixed_message_keeping_the_alternative():
    from shortage_watch.mail.message import Attachment

    msg = parse(build(attachments=(Attachment("2024年9月汇总.xlsx", b"PK\x03\x04data"),)))
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert parts[0].get_content_type() == "multipart/alternative"
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "2024年9月汇总.xlsx" and attachment.get_content() == b"PK\x03\x04data"
