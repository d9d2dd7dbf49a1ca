"""Serving GraphQL: read the body, authenticate, run the operation in one transaction, commit, and
only then send the response — a client never hears "done" for a write that was not stored.
Queries run in read-only transactions (on SQLite they never take the write lock).

GET with a browser's Accept header serves GraphiQL without a token; everything else needs one.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from app import auth, graphiql, jsonbody
from app.db.models import Channel
from app.db.transactions import settle_failure
from app.errors import InvalidSyntax, RateLimited, Unauthenticated, Unavailable
from app.graphql.context import Context
from app.graphql.schema import DOCUMENT_CACHE_SIZE, MAX_TOKENS, build_schema
from app.services.caller import Caller
from app.settings import Settings
from app.validation import contains_nul


class _SchemaApp(GraphQL[Context, None]):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_context(self, request: Any, response: Any) -> Context:
        return request.scope["state"]["graphql_context"]


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _unauthorized() -> Response:
    return _error(401, Unauthenticated().message, "UNAUTHENTICATED", {"WWW-Authenticate": "Bearer"})


def _ide_off() -> Response:
    """GRAPHQL_IDE off: where GraphiQL would be served, a short JSON 404 instead."""
    return _error(404, "GraphiQL is turned off on this server; send operations with POST", "NOT_FOUND")


def _unavailable(exc: Unavailable) -> Response:
    return _error(503, exc.message, "UNAVAILABLE", {"Retry-After": str(exc.retry_after)})


def _decode(body: bytes) -> dict[str, Any]:
    payload = jsonbody.decode(body, what="the GraphQL request")
    if not isinstance(payload, dict):
        raise InvalidSyntax("the GraphQL request must be a JSON object with a query")
    if contains_nul(payload.get("variables")):
        raise InvalidSyntax("strings must not contain the NUL character")
    return payload


def _is_read_only(payload: dict[str, Any]) -> bool:
    """True unless the operation to run is a mutation. A document that does not parse is read-only:
    the schema answers it with a syntax error and runs nothing."""
    query, name = payload.get("query"), payload.get("operationName")
    if not isinstance(query, str):
        return True
    return _operation_is_read_only(query, name if isinstance(name, str) else None)


@functools.lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _operation_is_read_only(query: str, name: str | None) -> bool:
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError:
        return True
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (name is None or (definition.name and definition.name.value == name)):
            return definition.operation != OperationType.MUTATION
    return True


def _plain_text_refusal(messages: list[Message]) -> str | None:
    """The text of a plain-text 4xx from strawberry (an operationName the document does not define, no
    query at all), which gets the JSON error body every other refusal has; None for any other response."""
    start = messages[0]
    content_type = dict(start.get("headers", ())).get(b"content-type", b"")
    if not 400 <= start["status"] < 500 or not content_type.startswith(b"text/plain"):
        return None
    return b"".join(message.get("body", b"") for message in messages[1:]).decode(errors="replace")


class _Buffer:
    """An ASGI `send` that keeps the response until the transaction has committed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


class GraphQLEndpoint:
    """ASGI app for /graphql."""

    def __init__(self, settings: Settings, tracer_provider: Any = None) -> None:
        schema = build_schema(
            introspection=settings.graphql_introspection, cost_budget=settings.graphql_cost_budget, tracer_provider=tracer_provider
        )
        self.inner = _SchemaApp(schema, graphql_ide=None, allow_queries_via_get=False)
        self.ide = settings.graphql_ide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            await (graphiql.page_response() if self.ide else _ide_off())(scope, receive, send)
            return
        if request.method != "POST":
            await _error(
                405, "send GraphQL operations with POST (GET serves GraphiQL to a browser)", "METHOD_NOT_ALLOWED", {"Allow": "GET, POST"}
            )(scope, receive, send)
            return
        # The whole body first (bounded in size and time by the middleware), before any database work.
        body = await request.body()
        try:
            verified = await auth.authenticate(request, channel=Channel.GRAPHQL)
            payload = _decode(body)
        except Unauthenticated:
            await _unauthorized()(scope, receive, send)
            return
        except Unavailable as exc:
            await _unavailable(exc)(scope, receive, send)
            return
        except RateLimited as exc:
            await _error(429, exc.message, "RATE_LIMITED", {"Retry-After": str(exc.retry_after)})(scope, receive, send)
            return
        except InvalidSyntax as exc:
            await _error(400, exc.message, "BAD_USER_INPUT")(scope, receive, send)
            return
        try:
            messages = await self._execute(request, verified.caller, body, read_only=_is_read_only(payload))
        except Unavailable as exc:
            await _unavailable(exc)(scope, receive, send)
            return
        # Only now, with the transaction committed, does the client hear that it worked.
        plain = _plain_text_refusal(messages)
        if plain is not None:
            await _error(messages[0]["status"], plain, "BAD_USER_INPUT")(scope, receive, send)
        else:
            for message in messages:
                await send(message)
        await auth.record_use(request, verified)

    async def _execute(self, request: Request, caller: Caller, body: bytes, *, read_only: bool) -> list[Message]:
        """Run the operation in one transaction and commit it; return the response, unsent. A
        deadlock runs it again; a database outage raises Unavailable. A query's session runs on one
        of the connections kept for reads (as SCIM's reads do), which need no transaction of their
        own (see `create_sessionmaker`)."""
        state = request.app.state

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def operation(session: AsyncSession) -> list[Message]:
            buffer = _Buffer()
            async with session.begin():
                context = Context(request=request, session=session, caller=caller)
                request.scope.setdefault("state", {})["graphql_context"] = context
                await self.inner(request.scope, replay, buffer)
                if context.database_error is not None:
                    raise context.database_error
            return buffer.messages

        async def on_kept(connection: AsyncConnection) -> list[Message]:
            async with AsyncSession(bind=connection, expire_on_commit=False, autoflush=False) as session:
                return await operation(session)

        async def once() -> list[Message]:
            if read_only:
                return await state.read_connections.run(on_kept)
            async with state.sessionmaker() as session:
                return await operation(session)

        attempt = 0
        while True:
            attempt += 1
            try:
                return await once()
            except Exception as exc:
                if not await settle_failure(exc, attempt):
                    raise
