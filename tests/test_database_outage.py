"""Database outages fail fast and say so: 503 with Retry-After and one log line, never a 500 with a
traceback per request, never a request (or /readyz) hanging for the length of the outage — and the
service recovers by itself when the database is back."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import migrate
from app.db.engine import create_engine, create_sessionmaker
from app.db.models import metadata
from app.main import create_app
from app.settings import DatabaseTimeouts, Settings
from tests.support.clients import SCIM_BASE, Tenant, make_tenant
from tests.support.tcp_proxy import TcpProxy

PG_URL = os.environ.get("TEST_DATABASE_URL")
# Short bounds so an outage shows within a second or two; PROMPT is the hang guard around them.
TIMEOUTS = DatabaseTimeouts(connect=0.5, pool_checkout=0.5, statement=1.0)
PROMPT = 10.0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _client_for(url: str) -> tuple[httpx.AsyncClient, AsyncEngine]:
    engine = create_engine(url, TIMEOUTS)
    app = create_app(Settings(database_url=url, public_url="https://scim.example.test"), engine=engine)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://scim.example.test"), engine


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert "Traceback" not in response.text


def _assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _probe_everything(client: httpx.AsyncClient, token: str = "sat.acme.0123456789abcdef.secret") -> None:
    """With a token this instance may already have verified (it keeps them for a second), the
    requests still need the database, and say it is unavailable."""
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{SCIM_BASE}/{token.split('.')[1]}"
    async with asyncio.timeout(PROMPT):
        _assert_unavailable(await client.get(f"{base}/Users", headers=headers))
        _assert_unavailable(await client.post(f"{base}/Users", json={"userName": "x@example.com"}, headers=headers))
        _assert_unavailable(await client.post("/graphql", json={"query": "{ users(first: 1) { totalCount } }"}, headers=headers))
        ready = await client.get("/readyz")
        assert ready.status_code == 503


async def test_connection_refused_is_503_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    client, engine = await _client_for(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/test")
    async with client:
        await _probe_everything(client)
    await engine.dispose()
    _assert_no_tracebacks(caplog)


async def test_a_database_that_never_answers_is_503_within_the_connect_timeout(caplog: pytest.LogCaptureFixture) -> None:
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _r, w: accepted.append(w), "127.0.0.1", 0)  # accepts, says nothing
    port = silent.sockets[0].getsockname()[1]
    client, engine = await _client_for(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    async with client:
        await _probe_everything(client)
    await engine.dispose()
    for writer in accepted:
        writer.close()
    silent.close()
    await silent.wait_closed()
    _assert_no_tracebacks(caplog)


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL test database, migrated (a sync fixture: migrations run their own loop)."""
    assert PG_URL is not None
    migrate.upgrade(PG_URL)
    return PG_URL


@pytest.fixture
async def proxied(pg_url: str) -> AsyncIterator[tuple[TcpProxy, httpx.AsyncClient, Tenant]]:
    upstream = make_url(pg_url)
    proxy = await TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5432).start()
    client, engine = await _client_for(upstream.set(port=proxy.port).render_as_string(hide_password=False))
    tenant = await make_tenant(create_sessionmaker(engine), "outage")
    async with client:
        yield proxy, client, tenant
    proxy.forward()
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
    await engine.dispose()
    await proxy.close()


@pytest.mark.skipif(PG_URL is None, reason="a network outage needs a database behind a network: set TEST_DATABASE_URL (CI does)")
async def test_packets_dropped_mid_session_fail_fast_and_recover(
    proxied: tuple[TcpProxy, httpx.AsyncClient, Tenant], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, client, tenant = proxied
    users = f"{tenant.base}/Users"
    assert (await client.get(users, headers=tenant.headers)).status_code == 200  # pooled, healthy
    proxy.blackhole()
    await _probe_everything(client, tenant.token)
    proxy.forward()
    async with asyncio.timeout(PROMPT):
        while (await client.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.1)
        assert (await client.get(users, headers=tenant.headers)).status_code == 200
        created = await client.post(users, json={"userName": "back@example.com"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    _assert_no_tracebacks(caplog)


@pytest.mark.skipif(PG_URL is None, reason="a network outage needs a database behind a network: set TEST_DATABASE_URL (CI does)")
async def test_pooled_connections_that_died_while_idle_are_replaced_without_an_error(
    proxied: tuple[TcpProxy, httpx.AsyncClient, Tenant], caplog: pytest.LogCaptureFixture
) -> None:
    """Pooled connections are not pinged before use (a round trip per request); one that died while
    idle fails its first statement, and the transaction runs again on a fresh connection."""
    proxy, client, tenant = proxied
    users = f"{tenant.base}/Users"
    assert (await client.get(users, headers=tenant.headers)).status_code == 200
    proxy.drop_connections()
    async with asyncio.timeout(PROMPT):
        assert (await client.get(users, headers=tenant.headers)).status_code == 200
        proxy.drop_connections()
        created = await client.post(users, json={"userName": "after-restart@example.com"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    _assert_no_tracebacks(caplog)


@pytest.mark.skipif(PG_URL is None, reason="a network outage needs a database behind a network: set TEST_DATABASE_URL (CI does)")
async def test_kept_read_connections_that_died_are_all_replaced_without_an_error(
    proxied: tuple[TcpProxy, httpx.AsyncClient, Tenant], caplog: pytest.LogCaptureFixture
) -> None:
    """Reads keep their connections between requests (app.db.transactions.KeptConnections). After a
    restart every kept one is dead: the first found dead discards them all, and the read runs again
    on a fresh connection — not on the next dead one."""
    proxy, client, tenant = proxied
    users = f"{tenant.base}/Users"
    answers = await asyncio.gather(*(client.get(users, headers=tenant.headers) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    proxy.drop_connections()
    async with asyncio.timeout(PROMPT):
        assert (await client.get(users, headers=tenant.headers)).status_code == 200
    _assert_no_tracebacks(caplog)
