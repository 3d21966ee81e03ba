"""The operator listener under misbehaving clients (/healthz, /metrics): idle connections by the
hundred, connections reset mid-request. Bounded threads, one log line, no traceback."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Iterator

import pytest
import requests

from shortage_watch.health import Check, HealthReport
from shortage_watch.httpserver import MAX_CONNECTIONS, OperatorServer
from shortage_watch.metrics import DaemonMetrics
from shortage_watch.store.db import make_engine

LIMITS = {"max_connections": MAX_CONNECTIONS, "idle_seconds": 0.5}  # a short idle limit: the test need not wait


@pytest.fixture
def listener(sqlite_url: str) -> Iterator[OperatorServer]:
    engine = make_engine(sqlite_url)
    server = OperatorServer("127.0.0.1", 0, DaemonMetrics(engine), lambda: HealthReport([Check("database", True, "ok")]), **LIMITS)
    server.start()
    yield server
    server.stop()
    engine.dispose()


def _idle_connections(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


def _wait_until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.slow  # a real listener and a hundred connections
def test_a_hundred_idle_connections_hold_a_bounded_number_of_threads(listener: OperatorServer) -> None:
    before = threading.active_count()
    sockets = _idle_connections(listener.port, 100)
    try:
        time.sleep(0.2)  # let the listener accept what it will (less than its idle limit)
        assert threading.active_count() - before <= MAX_CONNECTIONS
    finally:
        for s in sockets:
            s.close()
    # Once they are gone, the listener answers again.
    assert _wait_until(lambda: threading.active_count() - before <= 1)
    assert requests.get(f"http://127.0.0.1:{listener.port}/healthz", timeout=5).status_code == 200


def test_an_idle_connection_is_closed_after_the_idle_limit(listener: OperatorServer) -> None:
    [idle] = _idle_connections(listener.port, 1)
    idle.settimeout(10)
    try:
        assert idle.recv(1) == b""  # the listener hung up on a client that never spoke
    finally:
        idle.close()


def test_clients_resetting_mid_request_give_one_log_line_each_and_no_traceback(
    listener: OperatorServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shortage_watch.httpserver")
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", listener.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        time.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        s.close()
    assert _wait_until(lambda: len([r for r in caplog.records if "ended" in r.getMessage()]) == 5)
    assert "Traceback" not in capfd.readouterr().err
    assert requests.get(f"http://127.0.0.1:{listener.port}/healthz", timeout=5).status_code == 200
