"""Rate limits per token and of failed authentication (app/ratelimit.py): 429 with Retry-After and
the body each API speaks, and requests go through again once the window has passed."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import TokenCache
from app.main import create_app
from app.settings import ConfigError, Settings, load_settings
from tests.support.clients import GraphQLClient, ScimClient, Tenant

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
def limited_client(settings: Settings, engine: AsyncEngine) -> MakeClient:
    """A client of an app with the rate limits a test names (the Settings fields)."""

    async def make(**limits: str) -> httpx.AsyncClient:
        app = create_app(replace(settings, **limits), engine=engine)
        app.state.token_cache = TokenCache(clock=lambda: 0.0)  # a token verified once stays verified
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://scim.example.test")

    return make


class WallClock:
    """time.time held still, moved on only by `advance`. The counters' windows are kept in wall
    time (limits' storage reads time.time), so a test of a window of one second would otherwise
    depend on the host running its requests inside that second: a slow or busy one does not."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(time, "time", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def test_a_token_over_its_limit_gets_429_with_retry_after_and_recovers(
    limited_client: MakeClient, tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = WallClock(monkeypatch)
    client = await limited_client(rate_limit_per_token="3/second")
    async with client:
        scim = ScimClient(client, tenant)
        assert [(await scim.get("/Users")).status_code for _ in range(3)] == [200, 200, 200]
        refused = await scim.get("/Users")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["schemas"] == [ERROR] and refused.json()["status"] == "429"
        graphql = await GraphQLClient(client, tenant).raw("{ viewer { accountIdentifier } }")
        assert graphql.status_code == 429
        assert graphql.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert "retry-after" in graphql.headers
        # Another token is counted on its own.
        assert (await ScimClient(client, other_tenant).get("/Users")).status_code == 200
        clock.advance(0.9)
        assert (await scim.get("/Users")).status_code == 429  # still inside the window
        clock.advance(0.2)
        assert (await scim.get("/Users")).status_code == 200


async def test_failed_authentication_is_throttled_per_address_and_tokens_in_use_keep_working(
    limited_client: MakeClient, tenant: Tenant
) -> None:
    client = await limited_client(rate_limit_failed_auth_per_address="3/minute")
    async with client:
        scim = ScimClient(client, tenant)
        assert (await scim.get("/Users")).status_code == 200  # verified: in use
        forged = ScimClient(client, replace(tenant, token=tenant.token[:-4] + "AAAA"))
        assert [(await forged.get("/Users")).status_code for _ in range(3)] == [401, 401, 401]
        refused = await forged.get("/Users")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        garbage = await client.get(f"{tenant.base}/Users", headers={"Authorization": "Bearer nonsense"})
        assert garbage.status_code == 429
        assert (await client.post("/graphql", json={"query": "{ viewer { accountIdentifier } }"})).status_code == 429
        assert (await scim.get("/Users")).status_code == 200
        # A token in use is looked at even when its cached record has expired (a fresh cache here).
        client._transport.app.state.token_cache = TokenCache()  # type: ignore[attr-defined]
        assert (await scim.get("/Users")).status_code == 200


async def test_failed_authentication_is_throttled_per_account_named(
    limited_client: MakeClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    client = await limited_client(rate_limit_failed_auth_per_address="off", rate_limit_failed_auth_per_account="2/minute")
    async with client:
        bad = {"Authorization": "Bearer sat.acme.0000000000000000.wrong"}
        assert [(await client.get(f"{tenant.base}/Users", headers=bad)).status_code for _ in range(3)] == [401, 401, 429]
        # Another account's path is its own.
        assert (await client.get(f"{other_tenant.base}/Users", headers=bad)).status_code == 401


@pytest.mark.parametrize("name", ["RATE_LIMIT_PER_TOKEN", "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS", "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT"])
def test_rate_limit_settings_are_checked_at_start(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "lots"})
    assert getattr(load_settings({name: "off"}), name.lower()) == "off"
    assert getattr(load_settings({name: "10/second;100/minute"}), name.lower()) == "10/second;100/minute"
