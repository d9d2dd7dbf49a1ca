"""Pure ASGI middleware: request ids, the access log and the request body limit."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import access_logger, logger, request_id_var

SCIM_PREFIX = "/gateway/ng/api/scim/"
SCIM_ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit while it was being read."""


class RequestContextMiddleware:
    """Assigns a request id (honouring a sane incoming X-Request-ID), logs one access line per
    request, and refuses bodies over `max_body_bytes` with 413 — by Content-Length up front, and by
    counting for chunked bodies."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        path = scope.get("path", "")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._reject(path, send_with_id)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise BodyTooLarge()
                return message

            started_response = False

            async def tracking_send(message: Message) -> None:
                nonlocal started_response
                started_response = started_response or message["type"] == "http.response.start"
                await send_with_id(message)

            try:
                await self.app(scope, limited_receive, tracking_send)
            except BodyTooLarge:
                await self._reject(path, send_with_id)
            except Exception:
                # The one place unexpected errors end: logged with the request id, never shown.
                logger.exception("unhandled error")
                if not started_response:
                    await self._internal_error(path, request_id, send_with_id)
        finally:
            access_logger.info(
                "%s %s %s %.1fms", scope.get("method"), path, status, (time.perf_counter() - started) * 1000
            )
            request_id_var.reset(token)

    async def _reject(self, path: str, send: Any) -> None:
        detail = f"request body exceeds the limit of {self.max_body_bytes} bytes"
        await _send_error(send, path, 413, detail)

    async def _internal_error(self, path: str, request_id: str, send: Any) -> None:
        await _send_error(send, path, 500, f"internal server error (request id {request_id})")


async def _send_error(send: Any, path: str, status: int, detail: str) -> None:
    if path.startswith(SCIM_PREFIX):
        payload: dict[str, Any] = {"schemas": [SCIM_ERROR_URN], "status": str(status), "detail": detail}
        content_type = b"application/scim+json"
    else:
        payload = {"error": detail}
        content_type = b"application/json"
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
