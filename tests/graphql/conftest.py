from __future__ import annotations

import httpx
import pytest

from tests.support.clients import GraphQLClient, Tenant


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)
