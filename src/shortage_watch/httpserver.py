"""The optional operator listener: `/healthz` (JSON, 200 or 503) and `/metrics` (Prometheus).

Off by default (`daemon.http_enabled`); binds `daemon.http_host` (127.0.0.1 unless the
operator opens it, e.g. inside a container).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shortage_watch.health import HealthReport
from shortage_watch.metrics import DaemonMetrics

log = logging.getLogger(__name__)


class OperatorServer:
    """A small threaded HTTP server on its own daemon thread."""

    def __init__(self, host: str, port: int, metrics: DaemonMetrics, health: Callable[[], HealthReport]) -> None:
        handler = _handler_for(metrics, health)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
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


def _handler_for(metrics: DaemonMetrics, health: Callable[[], HealthReport]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shortage-watch"

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
