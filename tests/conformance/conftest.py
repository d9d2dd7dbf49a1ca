"""A live server on the test database, for tools that speak HTTP over the network."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import migrate
from tests.served import free_port
from tests.support.clients import Tenant

ROOT = Path(__file__).resolve().parents[2]
# Bounded for `make test`; `make fuzz` raises it.
MAX_EXAMPLES = int(os.environ.get("CONFORMANCE_MAX_EXAMPLES", "8"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tools check the HTTP contract, which does not depend on the database: they run once, on
    PostgreSQL when it is configured (as in CI) and on SQLite otherwise. The rest of the suite runs
    on both."""
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('conformance') / 'test.db'}"
    migrate.upgrade(url)
    return url


@dataclass
class LiveServer:
    url: str
    tenant: Tenant

    @property
    def tenant_url(self) -> str:
        return f"{self.url}{self.tenant.base}"


@pytest.fixture
async def live_server(database_url: str, engine: AsyncEngine, tenant: Tenant, tmp_path: Path) -> AsyncIterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "PUBLIC_URL": url,
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
        # The suites send faster than any identity provider, and probe authentication hundreds of
        # times from one address: rate limits are off (tests/test_rate_limits.py checks them).
        "RATE_LIMIT_PER_TOKEN": "off",
        "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS": "off",
        "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT": "off",
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"the server did not start: {(tmp_path / 'server.log').read_text()}")
                time.sleep(0.1)
        yield LiveServer(url, tenant)
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
        # The server must never have answered 500: its log would say so.
        assert "unhandled error" not in (tmp_path / "server.log").read_text()


def schemathesis_command(location: str, server: LiveServer, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(ROOT / "tests" / "conformance" / "schemathesis.toml"),
        "run",
        location,
        "-H",
        f"Authorization: Bearer {server.tenant.token}",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        os.environ.get("CONFORMANCE_SEED", "20261128"),
        "--generation-database",
        "none",
        "--no-color",
        *extra,
    ]
