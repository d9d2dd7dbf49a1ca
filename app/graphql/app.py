"""Serving GraphQL: read the body, authenticate, run the operation in one transaction, commit, and
only then send the response — a client never hears "done" for a write that was not stored.
Queries run in read-only transactions (on SQLite they never take the write lock).

GET with a browser's Accept header serves GraphiQL without a token; everything else needs one.

The endpoint reads the request itself (it has decoded the body strictly already) and hands the
operation to the schema: Strawberry's HTTP view would decode the body a second time and walk its
support for batches, uploads, streams and websockets, none of which this API offers — a tenth of a
small query's CPU. What that view refused (a body that is not JSON by its content type, a `query`
that is not a string, an operation the document does not define) is refused here with its words.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType as StrawberryOperationType

from app import auth, graphiql, jsonbody
from app.db.models import Channel
from app.db.transactions import settle_failure
from app.errors import InvalidSyntax, RateLimited, Unauthenticated, Unavailable
from app.graphql.context import Context
from app.graphql.schema import DOCUMENT_CACHE_SIZE, MAX_TOKENS, build_schema
from app.services.caller import Caller
from app.settings import Settings
from app.validation import contains_nul

# What a POST may run, as Strawberry's own HTTP view allows it.
_POST_OPERATIONS = StrawberryOperationType.from_http("POST")


class _Refused(Exception):
    """A request the schema cannot run: a 400 whose message is the reason, in the words Strawberry's
    HTTP view used for it."""

    def __init__(self, message: str) -> None:
        self.message = message


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


def _operation(payload: dict[str, Any], content_type: str) -> tuple[Any, dict[str, Any] | None, Any, dict[str, Any] | None]:
    """(query, variables, operationName, extensions) of a request, checked as Strawberry's HTTP view
    checks them, or `_Refused`."""
    media_type, _ = parse_content_type(content_type)
    if "application/json" not in media_type:
        raise _Refused("Unsupported content type")
    query, variables, extensions = payload.get("query"), payload.get("variables"), payload.get("extensions")
    if not isinstance(query, (str, type(None))):
        raise _Refused("The GraphQL operation's `query` must be a string or null, if provided.")
    if not isinstance(variables, (dict, type(None))):
        raise _Refused("The GraphQL operation's `variables` must be an object or null, if provided.")
    if not isinstance(extensions, (dict, type(None))):
        raise _Refused("The GraphQL operation's `extensions` must be an object or null, if provided.")
    return query, variables, payload.get("operationName"), extensions


class GraphQLEndpoint:
    """ASGI app for /graphql."""

    def __init__(self, settings: Settings, tracer_provider: Any = None) -> None:
        self.schema: strawberry.Schema = build_schema(
            introspection=settings.graphql_introspection, cost_budget=settings.graphql_cost_budget, tracer_provider=tracer_provider
        )
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
            operation = _operation(payload, request.headers.get("content-type", ""))
        except Unauthenticated:
            await _unauthorized()(scope, receive, send)
            return
        except Unavailable as exc:
            await _unavailable(exc)(scope, receive, send)
            return
        except RateLimited as exc:
            await _error(429, exc.message, "RATE_LIMITED", {"Retry-After": str(exc.retry_after)})(scope, receive, send)
            return
        except (InvalidSyntax, _Refused) as exc:
            await _error(400, exc.message, "BAD_USER_INPUT")(scope, receive, send)
            return
        try:
            answer = await self._execute(request, verified.caller, operation, read_only=_is_read_only(payload))
        except Unavailable as exc:
            await _unavailable(exc)(scope, receive, send)
            return
        # Only now, with the transaction committed, does the client hear that it worked.
        if isinstance(answer, _Refused):
            await _error(400, answer.message, "BAD_USER_INPUT")(scope, receive, send)
        else:
            await Response(answer, media_type="application/json")(scope, receive, send)
        await auth.record_use(request, verified)

    async def _execute(self, request: Request, caller: Caller, operation: tuple[Any, ...], *, read_only: bool) -> bytes | _Refused:
        """Run the operation in one transaction and commit it; return the response's body, unsent,
        or the reason the schema could not run it. A deadlock runs it again; a database outage
        raises Unavailable. A query's session runs on one of the connections kept for reads (as
        SCIM's reads do), which need no transaction of their own (see `create_sessionmaker`)."""
        state = request.app.state
        query, variables, operation_name, extensions = operation

        async def run(session: AsyncSession) -> bytes | _Refused:
            async with session.begin():
                context = Context(request=request, session=session, caller=caller)
                try:
                    result = await self.schema.execute(
                        query,
                        variable_values=variables,
                        context_value=context,
                        operation_name=operation_name,
                        allowed_operation_types=_POST_OPERATIONS,
                        operation_extensions=extensions,
                    )
                except CannotGetOperationTypeError as exc:
                    return _Refused(exc.as_http_error_reason())
                except InvalidOperationTypeError as exc:
                    return _Refused(exc.as_http_error_reason("POST"))
                except MissingQueryError:
                    return _Refused("No GraphQL query found in the request")
                if context.database_error is not None:
                    raise context.database_error
            return orjson.dumps(process_result(result))

        async def on_kept(connection: AsyncConnection) -> bytes | _Refused:
            async with AsyncSession(bind=connection, expire_on_commit=False, autoflush=False) as session:
                return await run(session)

        async def once() -> bytes | _Refused:
            if read_only:
                return await state.read_connections.run(on_kept)
            async with state.sessionmaker() as session:
                return await run(session)

        attempt = 0
        while True:
            attempt += 1
            try:
                return await once()
            except Exception as exc:
                if not await settle_failure(exc, attempt):
                    raise
