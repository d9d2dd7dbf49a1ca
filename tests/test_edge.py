"""The HTTP edge against a real server process: connection-level timeouts and response headers, seen
through raw sockets the way a slow or hostile client sees them."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest

from app.serving import _WriteOnce
from tests.served import Served, read_response, read_until_closed, serve

HEADER_TIMEOUT = 1.0
BODY_READ_TIMEOUT = 1.0
# Far longer than either timeout: a request still going when the payload runs out was never cut off.
TRICKLE = b"GET /healthz HTTP/1.1\r\nHost: scim.example.test\r\nX-Slow: " + b"a" * 150


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(
        tmp_path_factory.mktemp("edge"), HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT), BODY_READ_TIMEOUT_SECONDS=str(BODY_READ_TIMEOUT)
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


# --- what the HTTP parser accepts and refuses ----------------------------------------------------------
# The server runs on httptools; h11, which it replaced, refused some of these with 400 and served others.
# Whatever the parser thinks of a request, the answer is a 4xx at worst and the worker keeps serving.


def _exchange_raw(server: Served, raw: bytes) -> list[int]:
    """Send `raw` on a new connection; the statuses of the responses, in order, until the server closes
    the connection or stays silent for a moment."""
    with server.connect(timeout=HEADER_TIMEOUT / 2) as sock:
        sock.sendall(raw)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return [int(line.split()[1]) for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def _statuses(sock: socket.socket, count: int) -> list[int]:
    """The statuses of the next `count` responses on `sock`, which may arrive together in one read."""
    received = b""
    statuses: list[int] = []
    while len(statuses) < count:
        head_end = received.find(b"\r\n\r\n")
        if head_end < 0:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {statuses}"
            received += chunk
            continue
        head = received[:head_end].decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:")), 0)
        while len(received) < head_end + 4 + length:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {statuses}"
            received += chunk
        statuses.append(int(head[0].split()[1]))
        received = received[head_end + 4 + length :]
    return statuses


def _still_serving(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(request("/healthz"))
        assert read_response(sock).status == 200


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="no request line"),
        pytest.param(b"GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n", id="unknown version"),
        pytest.param(b"GET /he llo HTTP/1.1\r\nHost: a\r\n\r\n", id="space in the target"),
        pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", id="non-ASCII target"),
        pytest.param(b"FROB /healthz HTTP/1.1\r\nHost: a\r\n\r\n", id="unknown method"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", id="space in a header name"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", id="header without a colon"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", id="NUL in a header value"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: a\r\n folded\r\n\r\n", id="obsolete line folding"),
        pytest.param(b"GET /healthz HTTP/1.1\r\n\r\n", id="HTTP/1.1 without Host"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two Host headers"),
        pytest.param(
            b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="both framings"
        ),
        pytest.param(b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", id="two lengths"),
        pytest.param(b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", id="negative length"),
        pytest.param(b"POST /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", id="bad chunk size"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="HTTP/2 preface"),
        pytest.param(bytes.fromhex("160301002e0100002a0303") + b"\x00" * 40, id="TLS hello"),
    ],
)
def test_malformed_requests_get_400_and_the_connection_is_closed(server: Served, raw: bytes) -> None:
    assert _exchange_raw(server, raw) == [400]
    _still_serving(server)


@pytest.mark.parametrize("where", ["header", "target"])
@pytest.mark.parametrize("pieces", [1, 40], ids=["in one piece", "in pieces"])
def test_a_request_head_over_16_kib_gets_431(server: Served, where: str, pieces: int) -> None:
    # h11 bounded an incomplete head at 16 KiB; httptools has no bound of its own.
    filler = b"a" * 17_000
    raw = request("/healthz?" + filler.decode()) if where == "target" else request("/healthz", "X-Big: " + filler.decode())
    with server.connect() as sock:
        step = -(-len(raw) // pieces)
        try:
            for at in range(0, len(raw), step):
                sock.sendall(raw[at : at + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the rest was sent
        response = read_response(sock)
        assert response.status == 431
        assert response.headers["connection"] == "close"
        assert "16384 bytes" in json.loads(response.body)["error"]
        assert read_until_closed(sock) == b""
    _still_serving(server)


def test_a_head_of_15_kib_is_served(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(request("/healthz", "X-Big: " + "a" * 15_000))
        assert read_response(sock).status == 200


def test_pipelined_requests_are_answered_in_order(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(request("/healthz") + request("/nowhere") + request("/healthz"))
        assert _statuses(sock, 3) == [200, 404, 200]


def test_a_declined_upgrade_is_served_as_http_1_1_with_its_body(server: Served) -> None:
    """Java and curl clients offer `Upgrade: h2c` on plain HTTP, with a body. httptools stops parsing at
    such a request's headers (uvicorn issue 2722); the body must still reach the application, and the
    connection must go on serving."""
    query = json.dumps({"query": "{ __typename }"}).encode()
    offer = ("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__")
    headers = (*offer, f"Authorization: Bearer {server.token}", "Content-Type: application/json", f"Content-Length: {len(query)}")
    with server.connect() as sock:
        sock.sendall(request("/graphql", *headers, method="POST", body=query))
        answer = read_response(sock)
        assert answer.status == 200
        assert json.loads(answer.body)["data"] == {"__typename": "Query"}
        # The body may also arrive apart from the headers.
        head = request("/graphql", *headers, method="POST")
        sock.sendall(head)
        time.sleep(0.1)  # pacing the client, not waiting for the server
        sock.sendall(query + request("/healthz"))
        assert _statuses(sock, 2) == [200, 200]


class _RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_the_writes_of_one_step_leave_as_one() -> None:
    transport = _RecordingTransport()
    writer = _WriteOnce(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writer.write(b"body")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    # A close sends what was written before it, then closes; what comes after is dropped.
    writer.write(b"last")
    writer.close()
    writer.write(b"too late")
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"last"]
    assert transport.closed
    assert writer.get_extra_info("peername") == "info:peername"
