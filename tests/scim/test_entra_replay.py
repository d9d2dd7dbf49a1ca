from __future__ import annotations

import httpx

from app.tools import entra_replay
from tests.support.clients import ENTERPRISE, ScimClient, Tenant


async def test_entra_initial_and_incremental_sync_has_no_unexpected_status(
    client: httpx.AsyncClient, tenant: Tenant, scim: ScimClient
) -> None:
    replay = await entra_replay.run(client, tenant.base, tenant.token)
    assert replay.unexpected == []
    assert replay.requests > 300
    users = (await scim.get("/Users", params={"count": "0"})).json()["totalResults"]
    groups = (await scim.get("/Groups", params={"excludedAttributes": "members"})).json()
    assert users == 90
    assert groups["totalResults"] == 9
    assert len(await scim.find("Users", "active eq false")) == 5
    renamed = await scim.find("Users", f'{ENTERPRISE}:department eq "Ops"')
    assert len(renamed) == 10
    team0 = next(g for g in groups["Resources"] if g["displayName"] == "Team 0")
    members = (await scim.get(f"/Groups/{team0['id']}")).json()["members"]
    assert len(members) == 8  # 10 assigned, one removed, one deleted with its user
