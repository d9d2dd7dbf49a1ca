"""OpenTelemetry tracing: off unless the standard OTEL_* variables ask for it.

On when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true or
OTEL_TRACES_EXPORTER=none keeps it off. The OTLP exporter (HTTP/protobuf) reads its own OTEL_EXPORTER_OTLP_*
settings (endpoint, headers, timeout), and the service is named by OTEL_SERVICE_NAME (scimgraph).

Spans: one per HTTP request (ASGI instrumentation), one per SQL statement that SQLAlchemy runs
(statements on PostgreSQL's request path run on asyncpg directly, see app/db/statements.py, and
show inside their request's span only), and Strawberry's spans of a GraphQL operation. As in the
access log, no query string is recorded: it carries SCIM filters, and with them user names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp

TRACER_NAME = "scimgraph"
_EXPORTERS = ("otlp", "console")


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter in _EXPORTERS or bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def provider_from_environment(env: Mapping[str, str] | None = None) -> Any:
    """A tracer provider exporting as the environment says, in batches."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    env = os.environ if env is None else env
    provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "scimgraph"}))
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _without_query(span: Any, scope: dict[str, Any]) -> None:
    """The request's span names its path, never its query string."""
    if span is not None and span.is_recording():
        path = scope.get("path", "")
        span.set_attribute("http.target", path)
        span.set_attribute("url.query", "")
        server = scope.get("server") or ("", None)
        span.set_attribute("http.url", f"{scope.get('scheme', 'http')}://{server[0]}{':' + str(server[1]) if server[1] else ''}{path}")


def traced_middleware(app: ASGIApp, tracer_provider: Any) -> ASGIApp:
    """`app` with a span per HTTP request (a Starlette middleware factory)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        app, tracer_provider=tracer_provider, server_request_hook=_without_query, exclude_spans=["receive", "send"]
    )


def trace_engine(engine: Any, provider: Any) -> None:
    """A span per statement SQLAlchemy runs on `engine` (an AsyncEngine). This engine only: the
    instrumentor's `instrument()` would patch `create_engine` for the whole process."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    usage = get_meter(TRACER_NAME).create_up_down_counter("db.client.connections.usage", unit="connections")
    EngineTracer(tracer, engine.sync_engine, usage)
