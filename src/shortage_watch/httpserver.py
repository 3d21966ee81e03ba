"""The optional operator listener: `/healthz` (JSON, 200 or 503) and `/metrics` (Prometheus).

Off by default (`daemon.http_enabled`); binds `daemon.http_host` (127.0.0.1 unless the
operator opens it, e.g. inside a container).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shortage_watch.health import HealthReport
from shortage_watch.metrics import DaemonMetrics

log = logging.getLogger(__name__)


MAX_CONNECTIONS = 16  # at once; a scraper and a health probe need two
IDLE_SECONDS = 5.0  # a connection that sends nothing for this long is closed


class _BoundedHTTPServer(ThreadingHTTPServer):
    """One thread per connection, but at most `max_connections`: the rest are closed at once.

    Idle connections (a port scanner, a client that never sends) would otherwise each
    hold a thread for as long as they stay open.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int) -> None:
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusing = False
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if not self._refusing:  # one line per flood, not one per connection
                log.warning("operator listener: %d connections open; refusing more until some close", self.max_connections)
            self._refusing = True
            self.shutdown_request(request)
            return
        self._refusing = False
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line, not a traceback on stderr: a client hanging up is no fault of ours."""
        error = sys.exc_info()[1]
        log.info("operator listener: connection from %s ended: %s", client_address[0], f"{type(error).__name__}: {error}")


class OperatorServer:
    """A small HTTP server on its own daemon thread, with a bounded number of connections."""

    def __init__(self, host: str, port: int, metrics: DaemonMetrics, health: Callable[[], HealthReport],
                 max_connections: int = MAX_CONNECTIONS, idle_seconds: float = IDLE_SECONDS) -> None:
        handler = _handler_for(metrics, health, idle_seconds)
        self.httpd = _BoundedHTTPServer((host, port), handler, max_connections)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="operator-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("operator listener on http://%s:%s (/healthz, /metrics)", *self.httpd.server_address[:2])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler_for(metrics: DaemonMetrics, health: Callable[[], HealthReport], idle_seconds: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shortage-watch"
        timeout = idle_seconds  # the socket timeout: a client silent this long is hung up on

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            elif path == "/healthz":
                report = health()
                body = json.dumps(report.as_json(), ensure_ascii=False).encode("utf-8")
                self._reply(200 if report.ok else 503, "application/json; charset=utf-8", body)
            else:
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
            log.debug("http %s", format % args)

    return Handler
