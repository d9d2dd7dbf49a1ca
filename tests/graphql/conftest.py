from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant | None) -> None:
        self.client = client
        self.tenant = tenant

    async def raw(self, query: str, **variables: Any) -> httpx.Response:
        headers = self.tenant.headers if self.tenant else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.raw(query, **variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]  # type: ignore[no-any-return]


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)
