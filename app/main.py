"""The application factory: one Starlette app serving SCIM, GraphQL and the health probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from app import graphiql, tracing
from app.activity import ActivityLog
from app.auth import TokenCache
from app.db.engine import create_engine, create_sessionmaker, read_only_engine
from app.db.transactions import KeptConnections, one_statement_connections
from app.graphql.app import GraphQLEndpoint
from app.integration_activity import IntegrationActivity
from app.lifecycle import Readiness
from app.metrics import Metrics
from app.metrics import endpoint as metrics_endpoint
from app.middleware import SCIM_PREFIX, BodyLimits, EdgeMiddleware
from app.ratelimit import RateLimits
from app.scim.errors import error_response
from app.scim.openapi import openapi_document
from app.scim.routes import scim_app
from app.settings import Settings

logger = logging.getLogger("scimgraph")


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope.get("path", "")
    if path.startswith(SCIM_PREFIX):
        response = error_response(404, "no SCIM endpoint at this path")
    else:
        response = JSONResponse({"error": "not found"}, status_code=404)
    await response(scope, receive, send)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.state.settings.public_url))


async def readyz(request: Request) -> Response:
    """Ready while no shutdown has begun and the database (and the replica, when there is one)
    answers within the readiness timeout. The probe is bounded so that a hung database turns it into
    a prompt 503, not a hung probe."""
    state = request.app.state
    if state.readiness.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    timeout = state.settings.readiness_timeout_seconds
    body = {"status": "ok", "database": "ok"}
    for name, engine in (("database", state.engine), ("replica", state.replica)):
        if engine is None:
            continue
        try:
            async with asyncio.timeout(timeout):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:
            # Probes run every few seconds: one line each, not a traceback each.
            logger.warning("readiness check: %s unreachable: %s", name, _failure_reason(exc, timeout))
            body.update(status="unavailable", **{name: "unreachable"})
            continue
        body[name] = "ok"
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def _failure_reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} seconds"
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line[:200]}" if first_line else type(exc).__name__


def _attach_database(app: Starlette, engine: AsyncEngine, replica: AsyncEngine | None = None, tracer_provider: Any = None) -> None:
    """The database, and where requests that only read go: `replica` when there is one. Tokens are
    read from `engine` whatever the request: a new token works at once, a revoked one stops."""
    reads = replica or engine
    if tracer_provider is not None:
        for traced_engine in {engine, reads}:
            tracing.trace_engine(traced_engine, tracer_provider)
    app.state.engine = engine
    app.state.replica = replica
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.one_statement_connections = one_statement_connections(engine)
    app.state.token_sessionmaker = create_sessionmaker(engine, read_only=True)
    app.state.read_connections = KeptConnections(read_only_engine(reads))
    app.state.no_wait_sessionmaker = create_sessionmaker(engine, no_wait=True)


def create_app(
    settings: Settings, *, engine: AsyncEngine | None = None, replica: AsyncEngine | None = None, tracer_provider: Any = None
) -> Starlette:
    """Build the app. When `engine` (and `replica`) are given the caller owns them; otherwise the
    lifespan makes them from the settings (the replica only when DATABASE_READ_URL is set). Traces
    go to `tracer_provider`, or where the OTEL_* variables say when they ask for them (app/tracing.py)."""
    if tracer_provider is None and tracing.wanted():
        tracer_provider = tracing.provider_from_environment()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if engine is not None:  # the caller's, attached when the app was built
            yield
            return
        made = create_engine(settings.database_url, settings.database_timeouts, pool_size=settings.db_pool_size)
        copy = settings.database_read_url
        made_replica = create_engine(copy, settings.database_timeouts, pool_size=settings.db_pool_size) if copy else None
        _attach_database(app, made, made_replica, tracer_provider)
        # The health of integrations and the activity log are noted in memory and written in the
        # background; the last of them when the app stops.
        recorders = (app.state.integration_activity, app.state.activity)
        writers = [asyncio.create_task(recorder.run(app.state.sessionmaker)) for recorder in recorders]
        try:
            yield
        finally:
            for writer in writers:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            for recorder in recorders:
                await recorder.write(app.state.sessionmaker)
            await made.dispose()
            if made_replica is not None:
                await made_replica.dispose()

    readiness = Readiness()
    metrics = Metrics()
    activity_log = ActivityLog()
    # The busiest first: the router tries them in this order.
    routes: list[BaseRoute] = [
        Mount("/gateway/ng/api/scim/account/{account}", app=scim_app()),
        Route("/graphql", GraphQLEndpoint(settings, tracer_provider)),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        Route("/metrics", metrics_endpoint),
        *([Route("/graphiql/{digest}/{name}", graphiql.asset)] if settings.graphql_ide else []),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                EdgeMiddleware,
                readiness=readiness,
                body_limits=BodyLimits(settings.max_body_bytes, settings.max_group_body_bytes),
                read_timeout=settings.body_read_timeout_seconds,
                metrics=metrics,
            ),
            *([] if tracer_provider is None else [Middleware(tracing.traced_middleware, tracer_provider=tracer_provider)]),
        ],
        lifespan=lifespan,
    )
    # Paths the router cannot match at all (a newline in a segment, say) still get a proper body.
    app.router.default = not_found
    app.state.settings = settings
    app.state.readiness = readiness
    app.state.token_cache = TokenCache()
    app.state.integration_activity = IntegrationActivity()
    app.state.activity = activity_log
    app.state.rate_limits = RateLimits.from_settings(settings)
    app.state.metrics = metrics
    metrics.watch_pool(lambda: app.state.engine.pool if hasattr(app.state, "engine") else None)
    if engine is not None:
        # Tests hand in an engine and may call the app without running the lifespan.
        _attach_database(app, engine, replica, tracer_provider)
    return app
