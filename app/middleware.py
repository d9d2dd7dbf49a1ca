"""Pure ASGI middleware at the HTTP edge, outermost first.

`RequestContextMiddleware`: the request id, one access-log line per request, the security headers
(app/security_headers.py), and where a request that did not end normally is accounted for — an
unexpected error (logged, generic 500), a client that went away (one INFO line, nothing sent), or a
request still running when the shutdown drain period ran out (503).

`BodyLimitMiddleware`: bounds the request body in size (413) and in time (408). Handlers read the
whole body before they open a database transaction, so these two bounds are what a slow or endless
upload can cost the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.lifecycle import Readiness
from app.observability import access_logger, log_safe, logger, request_id_from, request_id_var
from app.security_headers import ALWAYS, NO_STORE, html_headers

SCIM_PREFIX = "/gateway/ng/api/scim/"
SCIM_ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
# Logged, never sent: the client closed the connection before the response (nginx's convention).
CLIENT_CLOSED_REQUEST = 499
# Characters kept as they are when a path is written to the access log; the rest is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit while it was being read."""


class BodyReadTimeout(Exception):
    """The client sent nothing more of its request body for the configured time."""


@dataclass
class _Outcome:
    status: int | None = None
    response_started: bool = False
    client_gone: bool = False


class RequestContextMiddleware:
    """Assigns a request id (honouring a well-formed incoming X-Request-ID), logs one access line per
    request, adds the security headers, and is the one place a request that did not end normally is
    logged and, if nothing was sent yet, answered."""

    def __init__(self, app: ASGIApp, *, readiness: Readiness | None = None) -> None:
        self.app = app
        self.readiness = readiness or Readiness()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(_header(scope, b"x-request-id"))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        outcome = _Outcome()
        path = scope.get("path", "")

        async def watching_receive() -> Message:
            message = await receive()
            outcome.client_gone = outcome.client_gone or message["type"] == "http.disconnect"
            return message

        async def decorating_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome.status = message["status"]
                outcome.response_started = True
                message = {**message, "headers": self._response_headers(message.get("headers", []), request_id)}
            await send(message)

        try:
            await self.app(scope, watching_receive, decorating_send)
        except Exception as exc:
            await self._ended_by_error(exc, outcome, path, request_id, decorating_send)
        except asyncio.CancelledError:
            if not self.readiness.draining:
                raise
            # The server cancels what is still running when the drain period is over; that is the
            # documented end of a shutdown, not a crash, so it gets one line and a retryable answer.
            logger.warning("request cut off: the shutdown drain period ended before it finished")
            if not outcome.response_started:
                await _send_error(decorating_send, path, 503, "the server is shutting down; retry the request")
        finally:
            status = outcome.status or (CLIENT_CLOSED_REQUEST if outcome.client_gone else 500)
            duration = (time.perf_counter() - started) * 1000
            access_logger.info("%s %s %s %.1fms", log_safe(scope.get("method")), _loggable_path(path), status, duration)
            request_id_var.reset(token)

    async def _ended_by_error(self, exc: Exception, outcome: _Outcome, path: str, request_id: str, send: Send) -> None:
        if isinstance(exc, ClientDisconnect) or outcome.client_gone:
            # Nobody is left to answer, and a closed connection is not a fault of ours.
            logger.info("client disconnected before the response was sent")
            return
        # The one place unexpected errors end: logged with the request id, never shown.
        logger.exception("unhandled error")
        if not outcome.response_started:
            await _send_error(send, path, 500, f"internal server error (request id {request_id})")

    def _response_headers(self, headers: Any, request_id: str) -> list[tuple[bytes, bytes]]:
        headers = list(headers)
        present = {name.lower() for name, _ in headers}
        extra = [header for header in ALWAYS if header[0] not in present]
        if b"cache-control" not in present:
            extra.append(NO_STORE)
        content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
        if content_type.startswith(b"text/html"):
            extra.extend(html_headers())
        if self.readiness.draining and b"connection" not in present:
            # While draining, every client is sent elsewhere for its next request.
            extra.append((b"connection", b"close"))
        return [*headers, *extra, (b"x-request-id", request_id.encode())]


class BodyLimitMiddleware:
    """Refuses bodies over `max_body_bytes` with 413 — by Content-Length up front, and by counting for
    chunked bodies — and answers 408 when the client sends no more of an unfinished body for
    `read_timeout` seconds. Both answers close the connection: the rest of the body is never read."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(path, send)
            return
        body = _BoundedBody(receive, self.max_body_bytes, self.read_timeout)
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, tracking_send)
        except (BodyTooLarge, BodyReadTimeout) as exc:
            if response_started:
                raise
            if isinstance(exc, BodyTooLarge):
                await self._too_large(path, send)
            else:
                detail = f"the request body stalled: nothing more of it arrived within {self.read_timeout:g} seconds"
                await _send_error(send, path, 408, detail)

    async def _too_large(self, path: str, send: Send) -> None:
        await _send_error(send, path, 413, f"request body exceeds the limit of {self.max_body_bytes} bytes")


class _BoundedBody:
    """Wraps `receive`: each wait for the next piece of an unfinished body is bounded, and the bytes are
    counted. Once the body is complete, waits pass through unbounded (that is a wait for disconnect)."""

    def __init__(self, receive: Receive, max_bytes: int, timeout: float) -> None:
        self._receive = receive
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.received = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        try:
            async with asyncio.timeout(self.timeout):
                message = await self._receive()
        except TimeoutError:
            raise BodyReadTimeout() from None
        if message["type"] != "http.request":
            self.complete = True
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            raise BodyTooLarge()
        self.complete = not message.get("more_body", False)
        return message


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value, "latin-1")
    return None


def _loggable_path(path: str) -> str:
    """The path as a URL would spell it: control characters, spaces and non-ASCII percent-encoded."""
    return quote(path, safe=_PATH_SAFE)


async def _send_error(send: Send, path: str, status: int, detail: str) -> None:
    """A JSON error, SCIM-shaped under the SCIM prefix. It closes the connection: these answers are sent
    when the request was not (or not entirely) read, so the connection cannot carry another one."""
    if path.startswith(SCIM_PREFIX):
        payload: dict[str, Any] = {"schemas": [SCIM_ERROR_URN], "status": str(status), "detail": detail}
        content_type = b"application/scim+json"
    else:
        payload = {"error": detail}
        content_type = b"application/json"
    body = json.dumps(payload).encode()
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
