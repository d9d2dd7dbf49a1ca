"""Serving GraphQL: authenticate, open one transaction per request, hand the schema a Context.

GET with a browser's Accept header serves GraphiQL without a token; everything else needs one.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from app.auth import bearer_token
from app.db.models import Channel
from app.errors import Unauthenticated
from app.graphql.context import Context
from app.graphql.loaders import attach as attach_loaders
from app.graphql.schema import schema
from app.services import tokens
from app.validation import contains_nul


class _SchemaApp(GraphQL[Context, None]):
    async def get_context(self, request: Any, response: Any) -> Context:
        # Absent only while GraphiQL itself is served, which runs no operation.
        return request.scope.get("state", {}).get("graphql_context")  # type: ignore[no-any-return]


def _unauthorized() -> Response:
    body = {"errors": [{"message": Unauthenticated().message, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return Response(
        json.dumps(body), status_code=401, media_type="application/json", headers={"WWW-Authenticate": "Bearer"}
    )


def _nul_in_variables(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False  # the GraphQL view answers malformed JSON itself
    return isinstance(payload, dict) and contains_nul(payload.get("variables"))


def _bad_request(message: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}
    return Response(json.dumps(body), status_code=400, media_type="application/json")


class GraphQLEndpoint:
    """ASGI app for /graphql."""

    def __init__(self) -> None:
        self.inner = _SchemaApp(schema, graphql_ide="graphiql", allow_queries_via_get=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            await self.inner(scope, receive, send)
            return
        # Read the body here so the size limit surfaces as 413 rather than a GraphQL parse error.
        body = await request.body()
        if _nul_in_variables(body):
            await _bad_request("strings must not contain the NUL character")(scope, receive, send)
            return

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async with request.app.state.sessionmaker() as session, session.begin():
            try:
                caller = await tokens.authenticate(session, bearer_token(request), channel=Channel.GRAPHQL)
            except Unauthenticated:
                await _unauthorized()(scope, receive, send)
                return
            context = Context(request=request, session=session, caller=caller)
            attach_loaders(context)
            scope.setdefault("state", {})["graphql_context"] = context
            await self.inner(scope, replay, send)
