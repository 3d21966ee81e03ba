"""Serving the web app with uvicorn: in the foreground (`shortage-watch web`) or in a thread beside the daemon."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from typing import TYPE_CHECKING

import uvicorn

from shortage_watch.web.app import create_app

if TYPE_CHECKING:
    from shortage_watch.app import App

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; OSError when it cannot be had (in use, bad address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class WebServer:
    """uvicorn on a socket bound up front, so a port in use is an OSError here and not an exit inside uvicorn."""

    def __init__(self, app: "App", host: str, port: int) -> None:
        self.socket = bind(host, port)
        self.host = host
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(create_app(app), log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_until_signal(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly (requests in flight finish)."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.wait(0.5):
                if self.thread is not None and not self.thread.is_alive():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def start(self, wait_seconds: float = 10.0) -> None:
        """Serve in a background thread; returns once it accepts connections."""
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="web", daemon=True)
        self.thread.start()
        pause = threading.Event()  # never set: only waited on, in small steps
        for _ in range(int(wait_seconds / 0.02)):
            if self.server.started or not self.thread.is_alive():
                break
            pause.wait(0.02)
        if not self.server.started:
            log.warning("web: the server did not report started within %ss", wait_seconds)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.socket.close()
