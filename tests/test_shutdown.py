"""Graceful shutdown of a real `python -m app serve`: readiness flips first, in-flight requests are
served, and the process is gone within the drain period however stuck a client is."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.served import Served, read_response, read_until_closed, serve

DRAIN = 3.0
READINESS_GRACE = 1.0
# Exiting takes a little longer than the drain itself: closing the database, interpreter shutdown.
EXIT_MARGIN = 2.5
QUERY = json.dumps({"query": "{ __typename }"}).encode()


def _start_upload(server: Served) -> socket.socket:
    """A GraphQL request whose body has only begun to arrive, confirmed in flight: the server asks for
    the body (100 Continue) only once the application is reading it."""
    sock = server.connect()
    head = (
        "POST /graphql HTTP/1.1\r\nHost: scim.example.test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Length: {len(QUERY)}\r\nExpect: 100-continue\r\n\r\n"
    )
    try:
        sock.sendall(head.encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
        sock.sendall(QUERY[:5])
    except BaseException:
        sock.close()
        raise
    return sock


def _readiness_during_shutdown(server: Served) -> httpx.Response:
    """/readyz right after the signal (the signal may take a moment to be handled: it is retried)."""
    for _ in range(50):
        response = httpx.get(f"{server.url}/readyz", timeout=5)
        if response.status_code != 200:
            return response
        time.sleep(0.02)
    raise AssertionError("/readyz kept answering 200 after SIGTERM")


def _wait_until_listener_closed(server: Served) -> None:
    deadline = time.monotonic() + DRAIN + EXIT_MARGIN
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.05)
    raise AssertionError("the server never stopped accepting connections")


def test_sigterm_flips_readiness_serves_in_flight_requests_and_exits_within_the_drain_period(tmp_path: Path) -> None:
    settings = {
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
        "SHUTDOWN_READINESS_GRACE_SECONDS": str(READINESS_GRACE),
        # Long client timeouts, so that only the drain period can end the stuck upload.
        "BODY_READ_TIMEOUT_SECONDS": "60",
        "HEADER_TIMEOUT_SECONDS": "60",
    }
    with serve(tmp_path, **settings) as server, _start_upload(server) as finishing, _start_upload(server) as stuck:
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        ready = _readiness_during_shutdown(server)
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        assert ready.headers["connection"] == "close"

        # After the readiness grace no new connection is accepted, yet the in-flight request completes.
        _wait_until_listener_closed(server)
        finishing.sendall(QUERY[5:])
        finished = read_response(finishing)
        assert finished.status == 200
        assert json.loads(finished.body)["data"] == {"__typename": "Query"}

        server.proc.wait(timeout=DRAIN + 10)
        assert time.monotonic() - signalled < DRAIN + EXIT_MARGIN

        # The upload that never finished was cut off at the end of the drain with a retryable answer.
        cut_off = read_response(stuck)
        assert cut_off.status == 503
        assert "shutting down" in json.loads(cut_off.body)["error"]
        assert read_until_closed(stuck) == b""
        log = server.log_text()
        assert "Traceback" not in log
        assert "request cut off: the shutdown drain period ended before it finished" in log
