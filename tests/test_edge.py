"""The HTTP edge against a real server process: connection-level timeouts and response headers, seen
through raw sockets the way a slow or hostile client sees them."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.served import Served, read_response, read_until_closed, serve

HEADER_TIMEOUT = 1.0
BODY_READ_TIMEOUT = 1.0
# Far longer than either timeout: a request still going when the payload runs out was never cut off.
TRICKLE = b"GET /healthz HTTP/1.1\r\nHost: scim.example.test\r\nX-Slow: " + b"a" * 150


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(
        tmp_path_factory.mktemp("edge"),
        HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        BODY_READ_TIMEOUT_SECONDS=str(BODY_READ_TIMEOUT),
    ) as served:
        yield served


def trickle(sock: socket.socket, payload: bytes, interval: float = 0.1) -> bytes:
    """Send `payload` a byte at a time, `interval` apart, until the server answers or hangs up; return
    what it sent (b"" if it just closed). Fails if the server let the whole payload through."""
    sock.settimeout(interval)
    for byte in payload:
        try:
            sock.sendall(bytes([byte]))
            return sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b""
    raise AssertionError("the server kept waiting for a request that never ended")


def request(path: str, *headers: str, body: bytes = b"", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: scim.example.test", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(server: Served) -> None:
    with server.connect() as sock:
        response = read_response(sock)
        assert response.status == 408
        assert response.headers["connection"] == "close"
        assert "request headers not received" in json.loads(response.body)["error"]
        assert read_until_closed(sock) == b""


def test_headers_trickled_byte_by_byte_are_cut_off_with_408(server: Served) -> None:
    with server.connect() as sock:
        answer = trickle(sock, TRICKLE)
        assert answer.startswith(b"HTTP/1.1 408 ")
        sock.settimeout(10)
        read_until_closed(sock)


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(request("/healthz"))
        assert read_response(sock).status == 200
        # The first byte of a new request stops uvicorn's keep-alive timer; the header deadline takes over.
        answer = trickle(sock, TRICKLE)
        assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_unread_body_trickling_after_the_response_is_cut_off(server: Served) -> None:
    with server.connect() as sock:
        # /healthz never reads a body: the response goes out while the client is still "uploading".
        sock.sendall(request("/healthz", "Content-Length: 100000", body=b"x"))
        assert read_response(sock).status == 200
        assert trickle(sock, b"x" * 150) == b""


def test_headers_that_arrive_in_pieces_within_the_timeout_are_served(server: Served) -> None:
    with server.connect() as sock:
        raw = request("/healthz")
        sock.sendall(raw[:10])
        time.sleep(HEADER_TIMEOUT / 4)  # pacing the client, not waiting for the server
        sock.sendall(raw[10:])
        assert read_response(sock).status == 200


def test_a_stalled_body_is_answered_408_and_the_connection_closed(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(request("/graphql", "Content-Type: application/json", "Content-Length: 100", body=b'{"query":', method="POST"))
        response = read_response(sock)
        assert response.status == 408
        assert "the request body stalled" in json.loads(response.body)["error"]
        assert response.headers["connection"] == "close"
        assert read_until_closed(sock) == b""


def test_responses_carry_security_headers_and_no_server_header(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(request("/healthz"))
        response = read_response(sock)
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
