"""An `http` source: a JSON feed polled with requests.

Timeouts on connect and read and a total deadline per request (a server dripping
bytes never holds a poll), retries with backoff on connection errors, 429 and 5xx
(honouring Retry-After), conditional requests (ETag / Last-Modified), a `?cursor=` for
incremental polling (`next_cursor` / `has_more` in the answer; a plain list works too),
an auth header whose secret comes from settings, TLS verification, and a size cap that
stops reading at `max_bytes`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from shortage_watch import __version__
from shortage_watch.clock import utc_now
from shortage_watch.redact import scrub, url_secrets
from shortage_watch.settings import SourceSettings

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 120.0  # a longer Retry-After ends this poll; the next poll tries again
BACKOFF_BASE = 0.5
MAX_ETAG = 512  # the width of source_state.etag
MAX_LAST_MODIFIED = 128  # the width of source_state.last_modified


class FeedError(Exception):
    """The feed could not be read this time; the message says why (for source_state.last_error)."""


@dataclass(frozen=True)
class FeedPage:
    url: str
    status: int  # 200 or 304
    content: bytes = b""
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def retry_after_seconds(value: str | None, real_now: datetime) -> float | None:
    """Retry-After as seconds: an integer, or an HTTP date from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - real_now).total_seconds())


class _Deadline:
    """A total time limit for one request: when it runs out, the request's sockets are shut down.

    requests' read timeout bounds each socket read, so a server dripping one byte a
    second never trips it; shutting the socket down wakes the blocked read at once.
    """

    def __init__(self) -> None:
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.expired = False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def start(self, seconds: float) -> None:
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.add(sock)

    def _expire(self) -> None:
        # Runs on the timer's thread while the request's thread is blocked in a read.
        with self._lock:
            self.expired = True
            for sock in list(self.sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections report their sockets to a `_Deadline` as they connect."""

    def __init__(self, deadline: _Deadline) -> None:
        self.deadline = deadline
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        deadline = self.deadline

        class WatchedHTTPConnection(HTTPConnection):
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class WatchedHTTPSConnection(HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        self.poolmanager.pool_classes_by_scheme = {
            "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": WatchedHTTPConnection}),
            "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": WatchedHTTPSConnection}),
        }


class _FeedSession(requests.Session):
    """A requests session that drops the feed's own auth header on a redirect to another host.

    requests strips only `Authorization` there; a token sent as e.g. `X-Api-Key` would
    otherwise reach whatever host the feed redirects to.
    """

    def __init__(self, auth_header: str) -> None:
        super().__init__()
        self.auth_header = auth_header

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if prepared_request.url and self.should_strip_auth(response.request.url or "", prepared_request.url):
            prepared_request.headers.pop(self.auth_header, None)


class HttpFeed:
    """Fetches pages of one feed; `sleep` is injectable so tests can see the waits without waiting."""

    def __init__(self, source: SourceSettings, sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None) -> None:
        assert source.url is not None
        self.source = source
        self.sleep = sleep
        self.deadline = _Deadline()
        self.session = session or _FeedSession(source.auth_header)
        self.session.mount("http://", _DeadlineAdapter(self.deadline))
        self.session.mount("https://", _DeadlineAdapter(self.deadline))
        # What an error text must never quote: the token, and the secret parts of the URL.
        self.secrets = [source.auth_token.get_secret_value() if source.auth_token else None, *url_secrets(source.url)]
        self.session.headers["User-Agent"] = f"shortage-watch/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if source.auth_token is not None:
            self.session.headers[source.auth_header] = source.auth_token.get_secret_value()

    def close(self) -> None:
        self.session.close()

    def fetch(self, cursor: str | None, etag: str | None = None, last_modified: str | None = None) -> FeedPage:
        """One page: 200 with its bytes, or 304; FeedError after the retries are spent."""
        source = self.source
        params = {"cursor": cursor} if cursor else None
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempts = source.retries + 1
        for attempt in range(attempts):
            last_try = attempt == attempts - 1
            self.deadline.start(source.total_timeout)
            try:
                page, wait = self._attempt(params, headers, etag, last_modified, attempt, last_try)
            finally:
                self.deadline.cancel()
            if page is not None:
                return page
            self.sleep(wait)
        raise FeedError("no attempt made")  # pragma: no cover (attempts >= 1)

    def _attempt(self, params: dict[str, str] | None, headers: dict[str, str], etag: str | None,
                 last_modified: str | None, attempt: int, last_try: bool) -> tuple[FeedPage | None, float]:
        """One request under the total deadline: the page, or None and how long to wait before the next."""
        source = self.source
        try:
            response = self.session.get(
                source.url, params=params, headers=headers, stream=True, verify=source.verify_tls,
                timeout=(source.connect_timeout, source.read_timeout),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            self._raise_if_too_slow()
            reason = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
            if last_try:
                raise FeedError(f"{reason} after {attempt + 1} attempt(s): {type(exc).__name__}") from None
            return None, BACKOFF_BASE * 2 ** attempt
        except requests.RequestException as exc:
            self._raise_if_too_slow()
            raise FeedError(scrub(f"request failed: {type(exc).__name__}: {exc}", self.secrets)) from None
        with response:
            status = response.status_code
            if status == 429 or status >= 500:
                wait = retry_after_seconds(response.headers.get("Retry-After"), utc_now())
                if wait is None:
                    wait = BACKOFF_BASE * 2 ** attempt
                if last_try or wait > MAX_RETRY_AFTER:
                    raise FeedError(f"HTTP {status} after {attempt + 1} attempt(s)")
                log.info("source %s: HTTP %s, retrying in %.1fs", source.name, status, wait)
                return None, wait
            if status == 304:
                return FeedPage(response.url, 304, etag=etag, last_modified=last_modified), 0.0
            if status != 200:
                raise FeedError(f"HTTP {status}")
            body = self._read_capped(response)
            return FeedPage(response.url, 200, body, self._validator(response, "ETag", MAX_ETAG),
                            self._validator(response, "Last-Modified", MAX_LAST_MODIFIED)), 0.0

    def _raise_if_too_slow(self) -> None:
        """A request cut off at its total deadline is not retried: the server would only drip again."""
        if self.deadline.expired:
            raise FeedError(f"no complete answer within total_timeout={self.source.total_timeout:g}s; the server sends too slowly")

    def _validator(self, response: requests.Response, header: str, limit: int) -> str | None:
        """The ETag or Last-Modified to send back next time; None when absent or too long to store.

        A cut validator would never match, so one that does not fit is ignored (the page
        is then fetched in full each poll), never stored cut and never a failed poll.
        """
        value = response.headers.get(header)
        if value is not None and (len(value) > limit or not value.isprintable()):
            log.warning("source %s: ignoring a %d-character %s header (at most %d kept)", self.source.name, len(value), header, limit)
            return None
        return value

    def _read_capped(self, response: requests.Response) -> bytes:
        cap = self.source.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FeedError(f"response of {declared} bytes is larger than max_bytes={cap}")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=64 * 1024):
                size += len(chunk)
                if size > cap:
                    # Stop reading here: the rest of the body is never downloaded.
                    raise FeedError(f"response larger than max_bytes={cap}; stopped reading")
                chunks.append(chunk)
        except (requests.ConnectionError, requests.Timeout) as exc:
            self._raise_if_too_slow()
            raise FeedError(f"reading the response failed: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            self._raise_if_too_slow()
            raise FeedError(scrub(f"reading the response failed: {type(exc).__name__}: {exc}", self.secrets)) from None
        # A shut-down socket may read as a clean end of a body that has no length: cut, not complete.
        self._raise_if_too_slow()
        return b"".join(chunks)
