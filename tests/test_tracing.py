"""OpenTelemetry: off by default, on with the standard OTEL_* variables; with it on, a request makes
spans for HTTP, its SQL and a GraphQL operation, and none records a query string or an argument."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from app import tracing
from app.auth import TokenCache
from app.db.engine import create_engine
from app.main import create_app
from app.settings import Settings
from tests.support.clients import Tenant


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_off_unless_the_environment_asks(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


async def test_a_traced_request_has_http_sql_and_graphql_spans_without_queries_or_arguments(
    settings: Settings, database_url: str, tenant: Tenant, engine: AsyncEngine
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced_engine = create_engine(database_url)  # instrumented for this test only
    try:
        app = create_app(settings, engine=traced_engine, tracer_provider=provider)
        app.state.token_cache = TokenCache(clock=lambda: 0.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://scim.example.test") as client:
            listed = await client.get(f"{tenant.base}/Users", params={"filter": 'userName eq "alice@example.com"'}, headers=tenant.headers)
            assert listed.status_code == 200
            query = '{ ssoLoginPreflight(email: "alice@example.com") { reason } }'
            assert (await client.post("/graphql", json={"query": query}, headers=tenant.headers)).status_code == 200
    finally:
        await traced_engine.dispose()
    spans = exporter.get_finished_spans()
    names = [span.name for span in spans]
    assert any(name.startswith("GET") for name in names), names
    assert any(span.attributes.get("db.statement") or span.attributes.get("db.query.text") for span in spans), names
    assert any("GraphQL" in name or name.startswith("query") for name in names), names
    recorded = " ".join(str(value) for span in spans for value in (span.attributes or {}).values())
    assert "alice" not in recorded and "filter" not in recorded
    assert tenant.token not in recorded
