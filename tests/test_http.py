from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
import socket
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import Message

from app.db.engine import create_engine
from app.main import create_app
from app.observability import JsonLineFormatter, SingleLineFormatter, _RequestIdFilter, log_access
from app.settings import Settings
from tests.support.clients import Tenant


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_request_id_is_returned_and_honoured(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


async def test_oversize_body_is_413(client: httpx.AsyncClient, tenant: Tenant) -> None:
    big = b"x" * (1024 * 1024 + 1)
    response = await client.post("/graphql", content=big, headers=tenant.headers)
    assert response.status_code == 413
    scim = await client.post(f"{tenant.base}/Users", content=big, headers=tenant.headers)
    assert scim.status_code == 413
    assert scim.json()["status"] == "413"
    assert scim.headers["content-type"].startswith("application/scim+json")


async def test_chunked_oversize_body_is_413(client: httpx.AsyncClient, tenant: Tenant) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post("/graphql", content=chunks(), headers=tenant.headers)
    assert response.status_code == 413


async def test_access_log_has_no_token_or_query(client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scimgraph.access"):
        await client.get(f'{tenant.base}/Users?filter=userName eq "alice@contoso.com"', headers=tenant.headers)
    text = caplog.text
    assert "/Users" in text
    assert tenant.token not in text
    assert "alice" not in text


async def test_json_log_lines_parse_and_carry_the_request_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """LOG_FORMAT=json: every record one JSON object on one line, the access line's values as members,
    and still no token or query string — nor can a request forge a second line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonLineFormatter())
    access = logging.getLogger("scimgraph.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        query = 'filter=userName eq "alice@contoso.com"'
        await client.get(f"{tenant.base}/Users%0a%7b%22forged%22:1%7d?{query}", headers={**tenant.headers, "X-Request-ID": "req-42"})
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["request_id"] == "req-42" and record["logger"] == "scimgraph.access" and record["level"] == "INFO"
    assert record["http_method"] == "GET" and record["http_status"] == 404 and isinstance(record["duration_ms"], float)
    assert record["http_path"].startswith(f"{tenant.base}/Users")
    assert record["time"].endswith("+00:00")
    assert tenant.token not in lines[0] and "alice" not in lines[0] and "forged" not in record


# --- the HTTP edge, at the ASGI level ---------------------------------------------------------------

SHORT_TIMEOUT = 0.2


# A body in pieces with no Content-Length: how an HTTP/1.1 client sends one.
CHUNKED = (b"transfer-encoding", b"chunked")


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"scim.example.test"), *headers],
        "server": ("scim.example.test", 443),
        "client": ("127.0.0.1", 50000),
    }


async def _exchange(app: Starlette, scope: dict[str, Any], messages: list[Message]) -> list[Message]:
    """Run one request whose client sends `messages` and then nothing at all; return what was sent."""
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # the client never sends anything more
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    # A guard against a hang, far above every timeout the app was given.
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


def _response(sent: list[Message]) -> tuple[int, dict[str, str], bytes]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def short_timeout_app(settings: Settings, engine: AsyncEngine) -> Starlette:
    return create_app(dataclasses.replace(settings, body_read_timeout_seconds=SHORT_TIMEOUT), engine=engine)


async def test_a_stalled_scim_body_is_408_in_scim_shape(short_timeout_app: Starlette, tenant: Tenant) -> None:
    headers = [
        (b"authorization", f"Bearer {tenant.token}".encode()),
        (b"content-type", b"application/scim+json"),
        (b"content-length", b"500"),
    ]
    first_chunk: Message = {"type": "http.request", "body": b'{"schemas": [', "more_body": True}
    sent = await _exchange(short_timeout_app, _scope("POST", f"{tenant.base}/Users", headers), [first_chunk])
    status, response_headers, body = _response(sent)
    assert status == 408
    assert response_headers["content-type"] == "application/scim+json"
    assert response_headers["connection"] == "close"
    error = json.loads(body)
    assert error["status"] == "408"
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert f"within {SHORT_TIMEOUT:g} seconds" in error["detail"]


@pytest.mark.parametrize(("http_version", "framing"), [("1.1", [CHUNKED]), ("2", [])], ids=["http1.1-chunked", "http2-no-length-header"])
async def test_a_stalled_graphql_body_is_408_with_an_error_object(
    short_timeout_app: Starlette, tenant: Tenant, http_version: str, framing: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"authorization", f"Bearer {tenant.token}".encode()), (b"content-type", b"application/json"), *framing]
    first_chunk: Message = {"type": "http.request", "body": b'{"query": "{', "more_body": True}
    scope = _scope("POST", "/graphql", headers) | {"http_version": http_version}
    status, _, body = _response(await _exchange(short_timeout_app, scope, [first_chunk]))
    assert status == 408
    assert "the request body stalled" in json.loads(body)["error"]


async def test_a_slow_body_that_keeps_coming_is_not_cut_off(short_timeout_app: Starlette, tenant: Tenant) -> None:
    """The timeout is per chunk: an upload that keeps making progress completes, however long it takes."""
    document = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "slow@contoso.com"}).encode()
    pieces = [document[i : i + 8] for i in range(0, len(document), 8)]
    headers = [(b"authorization", f"Bearer {tenant.token}".encode()), (b"content-type", b"application/scim+json"), CHUNKED]
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(SHORT_TIMEOUT / 4)  # pacing the client: each piece arrives well within the timeout
        more = len(pieces) > 1
        return {"type": "http.request", "body": pieces.pop(0), "more_body": more}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(short_timeout_app(_scope("POST", f"{tenant.base}/Users", headers), receive, send), timeout=10)
    assert _response(sent)[0] == 201


async def test_a_client_disconnect_is_one_info_line_and_nothing_is_sent(
    app: Starlette, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [(b"authorization", f"Bearer {tenant.token}".encode()), (b"content-type", b"application/json"), CHUNKED]
    messages: list[Message] = [{"type": "http.request", "body": b'{"query"', "more_body": True}, {"type": "http.disconnect"}]
    with caplog.at_level(logging.INFO):
        sent = await _exchange(app, _scope("POST", "/graphql", headers), messages)
    assert sent == []
    ours = [r for r in caplog.records if r.name.startswith("scimgraph") and r.name != "scimgraph.access"]
    assert [(r.levelno, r.getMessage()) for r in ours] == [(logging.INFO, "client disconnected before the response was sent")]
    assert all(r.exc_info is None for r in caplog.records)
    access = [r.getMessage() for r in caplog.records if r.name == "scimgraph.access"]
    assert access and access[-1].startswith("POST /graphql 499 ")


async def test_control_characters_in_the_path_are_escaped_in_the_access_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "/x%0D%0A2026-01-01 00:00:00,000 INFO scimgraph.access [admin] DELETE /everything 204%1B[2J"
    with caplog.at_level(logging.INFO, logger="scimgraph.access"):
        await client.get(forged)
    line = [r.getMessage() for r in caplog.records if r.name == "scimgraph.access"][-1]
    assert not any(ch in line for ch in "\r\n\x1b")
    assert line.startswith("GET /x%0D%0A2026-01-01%2000:00:00,000%20INFO")
    assert line.split()[1].endswith("%5Badmin%5D%20DELETE%20/everything%20204%1B%5B2J")


def test_the_log_formatter_escapes_control_characters_in_any_message() -> None:
    formatter = SingleLineFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, "bad %s", ("a\r\nINFO forged\x1b[31m\u202e",), None)
    assert formatter.format(record) == "WARNING bad a\\r\\nINFO forged\\x1b[31m\\u202e"


def test_log_timestamps_are_the_standard_ones() -> None:
    ours, standard = SingleLineFormatter("%(asctime)s"), logging.Formatter("%(asctime)s")
    record = logging.LogRecord("scimgraph", logging.INFO, __file__, 1, "m", None, None)
    for created in (1_790_000_000.0, 1_790_000_000.999, 1_790_000_001.5, 1_790_000_000.25, 1_790_086_400.0):
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == standard.format(record)


def test_the_access_line_holds_method_path_status_and_duration(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scimgraph.access"):
        log_access("GET", "/healthz", 200, 1.26)
    [record] = [r for r in caplog.records if r.name == "scimgraph.access"]
    assert (record.levelno, record.getMessage()) == (logging.INFO, "GET /healthz 200 1.3ms")


@pytest.mark.parametrize("incoming", ["abc] [admin", "with space", "a" * 65, "tab\there", "ünïcode"])
async def test_a_malformed_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": incoming.encode()})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_a_well_formed_request_id_is_kept(client: httpx.AsyncClient) -> None:
    incoming = "Entra-7f3a.b_9" + "x" * 50
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


async def test_api_responses_carry_the_security_headers(client: httpx.AsyncClient, tenant: Tenant) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/openapi.json"),
        await client.get(f"{tenant.base}/Users", headers=tenant.headers),
        await client.post("/graphql", json={"query": "{ __typename }"}, headers=tenant.headers),
        await client.get("/no/such/path"),
    ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer", response.url
        assert response.headers["cache-control"] == "no-store", response.url
        assert "content-security-policy" not in response.headers


async def test_readyz_says_draining_once_shutdown_begins(app: Starlette, client: httpx.AsyncClient) -> None:
    assert (await client.get("/readyz")).status_code == 200
    app.state.readiness.begin_draining()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "draining"}
    # Liveness is unaffected: the process is healthy, it is only leaving.
    assert (await client.get("/healthz")).status_code == 200
    assert response.headers["connection"] == "close"


async def test_readyz_answers_promptly_when_the_database_hangs(caplog: pytest.LogCaptureFixture) -> None:
    # A database that accepts connections and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql+asyncpg://scim@127.0.0.1:{silent.getsockname()[1]}/scim"
        engine = create_engine(url)
        app = create_app(Settings(database_url=url, readiness_timeout_seconds=SHORT_TIMEOUT), engine=engine)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                with caplog.at_level(logging.WARNING, logger="scimgraph"):
                    # A guard against a hang, far above the readiness timeout.
                    response = await asyncio.wait_for(client.get("/readyz"), timeout=3)
        finally:
            await engine.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    warnings = [r for r in caplog.records if r.name == "scimgraph"]
    assert len(warnings) == 1
    assert warnings[0].exc_info is None
    assert warnings[0].getMessage() == f"readiness check: database unreachable: no answer within {SHORT_TIMEOUT:g} seconds"
