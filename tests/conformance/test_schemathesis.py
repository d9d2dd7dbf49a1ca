"""schemathesis against the live server: every built-in check, positive and negative data, and
stateful runs that follow the OpenAPI links. Any failure fails the test with schemathesis's report."""

from __future__ import annotations

import asyncio
import subprocess

from tests.conformance.conftest import LiveServer, schemathesis_command


async def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=900)


async def test_scim_surface_passes_every_schemathesis_check(live_server: LiveServer) -> None:
    result = await _run(
        schemathesis_command(f"{live_server.url}/openapi.json", live_server, "--url", live_server.tenant_url, "--mode", "all")
    )
    assert result.returncode == 0, result.stdout[-20000:]


async def test_graphql_passes_every_schemathesis_check(live_server: LiveServer) -> None:
    result = await _run(schemathesis_command(f"{live_server.url}/graphql", live_server))
    assert result.returncode == 0, result.stdout[-20000:]
