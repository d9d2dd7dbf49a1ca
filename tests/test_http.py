from __future__ import annotations

import logging

import httpx
import pytest

from tests.conftest import Tenant


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


async def test_access_log_has_no_token_or_query(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="scimgraph.access"):
        await client.get(f"{tenant.base}/Users?filter=userName eq \"alice@contoso.com\"", headers=tenant.headers)
    text = caplog.text
    assert "/Users" in text
    assert tenant.token not in text
    assert "alice" not in text
