"""Secrets masked out of whatever is shown: URLs and known secret values.

Every URL printed, logged or stored as text (feed URLs, database URLs, page URLs in
source errors and receipts) goes through `mask_url`; every error text that may quote a
secret goes through `scrub`.
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "**********"
# Query parameters that carry no secret and help an operator read a URL.
_PLAIN_QUERY_KEYS = frozenset({"cursor", "page", "limit", "sslmode"})


def mask_url(url: str) -> str:
    """`url` with the password of its user part and every query value masked (but `cursor`, `page`, …).

    `https://u:p@host/feed?token=t&cursor=c2` → `https://u:**********@host/feed?token=**********&cursor=c2`.
    Text that does not parse as a URL is masked whole rather than shown.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{user}@{hostport}"
    if netloc == parts.netloc and not parts.query:
        return url  # nothing secret to mask (and `sqlite:///path` keeps its three slashes)
    query = "&".join(
        f"{key}={value if key in _PLAIN_QUERY_KEYS else MASK}" if value or key not in _PLAIN_QUERY_KEYS else key
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    if not netloc:
        return f"{parts.scheme}://{parts.path}" + (f"?{query}" if query else "")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The secret-bearing pieces of `url` (its password, its masked query values), for `scrub`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in _PLAIN_QUERY_KEYS]
    if parts.password:
        found.append(parts.password)
    return found


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each secret (and of it stripped of spaces) replaced by MASK."""
    variants = {v for s in secrets if s for v in (s, s.strip()) if len(v) >= 3}
    # Longest first: a secret containing another must be masked whole.
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
