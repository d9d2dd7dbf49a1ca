"""The pure ASGI middleware at the HTTP edge: one layer, so that every request pays for one wrapper
around `receive` and one around `send`, however many duties they carry.

`EdgeMiddleware` does, for every HTTP request:
- the request id (a well-formed incoming X-Request-ID is kept) and one access-log line;
- the security headers (app/security_headers.py) on every response;
- the bounds on the request body, in size (413) and in time between pieces (408). Handlers read the
  whole body before they open a database transaction, so these two bounds are what a slow or endless
  upload can cost the server. A whole group document (SCIM POST /Groups, PUT /Groups/{id}) may be
  larger than any other body: it carries every member (`BodyLimits`);
- the accounting of a request that did not end normally: an unexpected error (logged, generic 500), a
  client that went away (one INFO line, nothing sent, 499 in the access log), or a request still
  running when the shutdown drain period ran out (503).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import activity
from app.activity import ActivityLog
from app.lifecycle import Readiness
from app.metrics import SCIM_PREFIX as TENANT_PREFIX
from app.metrics import Metrics, route_of
from app.observability import log_access, log_safe, logger, request_id_from, request_id_var
from app.scim.schema import ERROR as SCIM_ERROR
from app.security_headers import ALWAYS, NO_STORE, html_headers

SCIM_PREFIX = "/gateway/ng/api/scim/"
# SCIM requests that carry a whole group, members included: in any letter case, with or without a
# trailing slash, as the SCIM routes match them.
_GROUP_DOCUMENTS = {
    "POST": re.compile(r"/gateway/ng/api/scim/account/[^/]+/groups/?", re.IGNORECASE),
    "PUT": re.compile(r"/gateway/ng/api/scim/account/[^/]+/groups/[^/]+/?", re.IGNORECASE),
}
# Logged, never sent: the client closed the connection before the response (nginx's convention).
CLIENT_CLOSED_REQUEST = 499
# Characters kept as they are when a path is written to the access log; the rest is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# A path made only of those characters (and letters and digits) is written as it is.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")
# Every response gets these unless the application set a header of the same name.
_DEFAULT_HEADERS = (*ALWAYS, NO_STORE)
_DEFAULT_HEADER_NAMES = frozenset(name for name, _ in _DEFAULT_HEADERS)
_CLOSE = (b"connection", b"close")


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit while it was being read."""


class BodyReadTimeout(Exception):
    """The client sent nothing more of its request body for the configured time."""


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body accepted, in bytes: `group_documents` for a SCIM POST or PUT of a
    group (Okta sends a group's full member list; 100,000 members are about 5 MB), `default` for
    every other request."""

    default: int
    group_documents: int

    def of(self, method: str, path: str) -> int:
        pattern = _GROUP_DOCUMENTS.get(method)
        return self.group_documents if pattern is not None and pattern.fullmatch(path) else self.default


class EdgeMiddleware:
    """The request id, the access log, the security headers, the body bounds, and the one place a
    request that did not end normally is logged and, if nothing was sent yet, answered.

    Bodies over their limit (`BodyLimits`) are refused with 413 — by Content-Length up front, and by counting
    for chunked bodies — and a client that sends no more of an unfinished body for `read_timeout`
    seconds gets 408. Both answers close the connection: the rest of the body is never read."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        readiness: Readiness | None = None,
        body_limits: BodyLimits,
        read_timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.readiness = readiness or Readiness()
        self.body_limits = body_limits
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming_id = length = None
        chunked = False
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"x-request-id":
                incoming_id = value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        request_id = request_id_from(incoming_id)
        token = request_id_var.set(request_id)
        path = scope.get("path", "")
        limit = self.body_limits.of(scope.get("method", ""), path)
        # An HTTP/1.x request with neither header has no body (RFC 9112, section 6.3): the server has
        # it whole with the headers, and no wait for it needs a bound. (HTTP/2 frames carry bodies
        # without either header.)
        bodiless = not chunked and (length is None or length == b"0") and scope.get("http_version") in ("1.0", "1.1")
        exchange = _Exchange(self, receive, send, request_id.encode(), limit, bodiless)
        try:
            if length is not None and length.isdigit() and int(length) > limit:
                await self._too_large(path, exchange.send, limit)
            else:
                await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            if isinstance(exc, BodyTooLarge | BodyReadTimeout) and not exchange.response_started:
                await self._body_refused(exc, path, exchange.send, limit)
            else:
                await self._ended_by_error(exc, exchange, path, request_id)
        except asyncio.CancelledError:
            if not self.readiness.draining:
                raise
            # The server cancels what is still running when the drain period is over; that is the
            # documented end of a shutdown, not a crash, so it gets one line and a retryable answer.
            logger.warning("request cut off: the shutdown drain period ended before it finished")
            if not exchange.response_started:
                await _send_error(exchange.send, path, 503, "the server is shutting down; retry the request")
        finally:
            status = exchange.status or (CLIENT_CLOSED_REQUEST if exchange.client_gone else 500)
            elapsed = time.perf_counter() - started
            log_access(log_safe(scope.get("method")), _loggable_path(path), status, elapsed * 1000)
            if self.metrics is not None:
                self.metrics.observe(scope.get("method", ""), path, status, elapsed)
            if status in (408, 413) and path.startswith(TENANT_PREFIX) and "app" in scope:
                self._record_refused_body(scope, path, status)
            request_id_var.reset(token)

    def _record_refused_body(self, scope: Scope, path: str, status: int) -> None:
        """A SCIM body refused before it was read (413, 408) reaches no route: the activity log hears
        of it here, as of any request that authenticated nobody (at most once a minute per account)."""
        log: ActivityLog = scope["app"].state.activity
        account = path[len(TENANT_PREFIX) :].partition("/")[0]
        detail = "the request body is over its limit" if status == 413 else "the request body did not arrive in time"
        record = activity.record(
            account_id=None,
            caller=activity.ANONYMOUS,
            integration_id=None,
            request_id=request_id_var.get(),
            method=str(scope.get("method", "")),
            route=route_of(path)[0],
            status=status,
            read_only=False,
            resource_type="Resource",
            resource_id=None,
            detail=detail,
        )
        log.note_anonymous(account, str(status), record)

    async def _body_refused(self, exc: Exception, path: str, send: Send, limit: int) -> None:
        if isinstance(exc, BodyTooLarge):
            await self._too_large(path, send, limit)
        else:
            detail = f"the request body stalled: nothing more of it arrived within {self.read_timeout:g} seconds"
            await _send_error(send, path, 408, detail)

    async def _too_large(self, path: str, send: Send, limit: int) -> None:
        await _send_error(send, path, 413, f"request body exceeds the limit of {limit} bytes")

    async def _ended_by_error(self, exc: Exception, exchange: _Exchange, path: str, request_id: str) -> None:
        if isinstance(exc, ClientDisconnect) or exchange.client_gone:
            # Nobody is left to answer, and a closed connection is not a fault of ours.
            logger.info("client disconnected before the response was sent")
            return
        # The one place unexpected errors end: logged with the request id, never shown.
        logger.exception("unhandled error")
        if not exchange.response_started:
            await _send_error(exchange.send, path, 500, f"internal server error (request id {request_id})")

    def response_headers(self, headers: Any, request_id: bytes) -> list[tuple[bytes, bytes]]:
        """The application's headers, then the security headers it did not set itself, the page policy
        for HTML, `connection: close` while draining, and the request id."""
        headers = list(headers)
        present: dict[bytes, bytes] = {}
        for name, value in headers:
            present.setdefault(name.lower(), value)
        if _DEFAULT_HEADER_NAMES.isdisjoint(present):
            headers.extend(_DEFAULT_HEADERS)
        else:
            headers.extend(header for header in _DEFAULT_HEADERS if header[0] not in present)
        if present.get(b"content-type", b"").startswith(b"text/html"):
            headers.extend(html_headers())
        if self.readiness.draining and b"connection" not in present:
            # While draining, every client is sent elsewhere for its next request.
            headers.append(_CLOSE)
        headers.append((b"x-request-id", request_id))
        return headers


class _Exchange:
    """One request's `receive` and `send` as the application sees them, and what they observed.

    `receive`: each wait for the next piece of an unfinished body is bounded by the read timeout, and
    the bytes are counted against the size limit; once the body is complete, or from the start when
    the request declares none, waits pass through unbounded (that is a wait for disconnect). `send`:
    the response headers are completed."""

    __slots__ = (
        "_edge",
        "_receive",
        "_send",
        "_request_id",
        "_limit",
        "_received",
        "_body_complete",
        "status",
        "response_started",
        "client_gone",
    )

    def __init__(self, edge: EdgeMiddleware, receive: Receive, send: Send, request_id: bytes, limit: int, bodiless: bool) -> None:
        self._edge = edge
        self._limit = limit
        self._receive = receive
        self._send = send
        self._request_id = request_id
        self._received = 0
        self._body_complete = bodiless
        self.status: int | None = None
        self.response_started = False
        self.client_gone = False

    async def receive(self) -> Message:
        if self._body_complete:
            message = await self._receive()
        else:
            try:
                async with asyncio.timeout(self._edge.read_timeout):
                    message = await self._receive()
            except TimeoutError:
                raise BodyReadTimeout() from None
            if message["type"] == "http.request":
                self._received += len(message.get("body", b""))
                if self._received > self._limit:
                    raise BodyTooLarge()
                self._body_complete = not message.get("more_body", False)
            else:
                self._body_complete = True
        if message["type"] == "http.disconnect":
            self.client_gone = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_started = True
            message = {**message, "headers": self._edge.response_headers(message.get("headers", ()), self._request_id)}
        await self._send(message)


def _loggable_path(path: str) -> str:
    """The path as a URL would spell it: control characters, spaces and non-ASCII percent-encoded."""
    if _PLAIN_PATH.fullmatch(path):
        return path
    return quote(path, safe=_PATH_SAFE)


async def _send_error(send: Send, path: str, status: int, detail: str) -> None:
    """A JSON error, SCIM-shaped under the SCIM prefix. It closes the connection: these answers are sent
    when the request was not (or not entirely) read, so the connection cannot carry another one."""
    if path.startswith(SCIM_PREFIX):
        payload: dict[str, Any] = {"schemas": [SCIM_ERROR], "status": str(status), "detail": detail}
        content_type = b"application/scim+json"
    else:
        payload = {"error": detail}
        content_type = b"application/json"
    body = json.dumps(payload).encode()
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), _CLOSE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
