"""A scripted replay of what Microsoft Entra ID sends: an initial sync of 100 users and 10 groups
with members, then an incremental cycle that updates, disables and deletes. Every request states the
status Entra expects; the replay reports every deviation.

Against a running server:  SCIM_TOKEN=<Secret Token> python -m app entra-replay <Tenant URL>
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.scim.schema import CORE_GROUP, CORE_USER, PATCH_OP
from app.scim.schema import ENTERPRISE_USER as ENTERPRISE

ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
MAX_THROTTLED = 5  # 429s in a row for one request before it counts as unexpected


def _seconds(retry_after: str | None) -> float:
    try:
        return min(60.0, max(0.0, float(retry_after or 1)))
    except ValueError:
        return 1.0


def entra_user(user_name: str, external_id: str, number: int) -> dict[str, Any]:
    """A user as Entra's default attribute mappings POST it (`number` varies the other attributes)."""
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "displayName": f"User {number:06}",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"User {number:06}", "familyName": f"{number:06}", "givenName": "User"},
        "title": "Engineer" if number % 3 == 0 else None,
        "roles": [],
        ENTERPRISE: {"employeeNumber": str(100000 + number), "department": f"Dept {number % 20}"},
    }


@dataclass
class Replay:
    client: httpx.AsyncClient
    base: str
    headers: dict[str, str]
    requests: int = 0
    throttled: int = 0  # 429s waited out
    unexpected: list[str] = field(default_factory=list)

    async def call(self, method: str, path: str, expected: int | tuple[int, ...], body: Any = None, **params: str) -> httpx.Response:
        self.requests += 1
        for _ in range(MAX_THROTTLED):
            response = await self.client.request(method, f"{self.base}{path}", json=body, params=params or None, headers=self.headers)
            if response.status_code != 429:
                break
            # As Entra does when throttled: wait as long as Retry-After says, then send it again.
            self.throttled += 1
            await asyncio.sleep(_seconds(response.headers.get("retry-after")))
        allowed = expected if isinstance(expected, tuple) else (expected,)
        if response.status_code not in allowed:
            self.unexpected.append(f"{method} {path} -> {response.status_code} (expected {allowed}): {response.text[:200]}")
        return response

    def patch(self, *operations: dict[str, Any]) -> dict[str, Any]:
        return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def run(client: httpx.AsyncClient, base: str, token: str, users: int = 100, groups: int = 10) -> Replay:
    replay = Replay(client, base, {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    # Test Connection.
    await replay.call("GET", "/Users", 200, filter=f'userName eq "{uuid.uuid4()}"')
    await replay.call("GET", "/Groups", 200, filter=f'displayName eq "{uuid.uuid4()}"', excludedAttributes="members")

    # Initial cycle: users (query, then create), with the manager link in a later PATCH.
    user_ids: list[str] = []
    for i in range(users):
        body = entra_user(f"user{i:06}@contoso.example", f"user{i:06}", i)
        found = (await replay.call("GET", "/Users", 200, filter=f'userName eq "{body["userName"]}"')).json()
        if found.get("totalResults"):
            user_ids.append(found["Resources"][0]["id"])
            continue
        created = await replay.call("POST", "/Users", 201, body)
        user_ids.append(created.json().get("id", ""))
    for uid in user_ids[1:]:
        await replay.call(
            "PATCH", f"/Users/{uid}", (200, 204), replay.patch({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": user_ids[0]})
        )

    # Groups: query without members, create, add members several per operation.
    group_ids: list[str] = []
    for g in range(groups):
        name = f"Team {g}"
        await replay.call("GET", "/Groups", 200, filter=f'displayName eq "{name}"', excludedAttributes="members")
        created = await replay.call(
            "POST",
            "/Groups",
            201,
            {"schemas": [CORE_GROUP, ENTRA_GROUP], "externalId": str(uuid.uuid4()), "displayName": name, "meta": {"resourceType": "Group"}},
        )
        gid = created.json().get("id", "")
        group_ids.append(gid)
        members = user_ids[g::groups]
        for start in range(0, len(members), 5):
            value = [{"$ref": None, "value": m} for m in members[start : start + 5]]
            await replay.call("PATCH", f"/Groups/{gid}", (200, 204), replay.patch({"op": "Add", "path": "members", "value": value}))

    # Incremental cycle: attribute updates (both PATCH forms), a no-op, disable, member removal,
    # rename, re-enable, deletes.
    for uid in user_ids[:20]:
        await replay.call("GET", f"/Users/{uid}", 200)
        await replay.call(
            "PATCH",
            f"/Users/{uid}",
            (200, 204),
            replay.patch(
                {"op": "Replace", "path": "title", "value": "Senior Engineer"},
                {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 425 555 0100"},
            ),
        )
    for uid in user_ids[20:30]:
        await replay.call(
            "PATCH",
            f"/Users/{uid}",
            (200, 204),
            replay.patch(
                {"op": "replace", "value": {"displayName": "Renamed", "name.givenName": "Renamed", f"{ENTERPRISE}:department": "Ops"}}
            ),
        )
    for uid in user_ids[30:40]:
        await replay.call("PATCH", f"/Users/{uid}", (200, 204), replay.patch({"op": "Replace", "path": "active", "value": "True"}))
    for uid in user_ids[40:50]:
        await replay.call("PATCH", f"/Users/{uid}", (200, 204), replay.patch({"op": "Replace", "path": "active", "value": "False"}))
    await replay.call(
        "PATCH", f"/Groups/{group_ids[0]}", (200, 204), replay.patch({"op": "Remove", "path": "members", "value": [{"value": user_ids[0]}]})
    )
    await replay.call(
        "PATCH", f"/Groups/{group_ids[1]}", (200, 204), replay.patch({"op": "remove", "path": f'members[value eq "{user_ids[1]}"]'})
    )
    await replay.call(
        "PATCH", f"/Groups/{group_ids[2]}", (200, 204), replay.patch({"op": "Replace", "path": "displayName", "value": "Team 2 (EMEA)"})
    )
    for uid in user_ids[40:45]:
        await replay.call("PATCH", f"/Users/{uid}", (200, 204), replay.patch({"op": "Replace", "path": "active", "value": "True"}))
    for uid in user_ids[90:]:
        await replay.call("DELETE", f"/Users/{uid}", 204)
        await replay.call("GET", f"/Users/{uid}", 404)
    await replay.call("DELETE", f"/Groups/{group_ids[-1]}", 204)
    return replay


async def replay_against(tenant_url: str, token: str) -> int:
    """Replay against a running server; print what was sent and every unexpected status. Exit status
    0 when every answer was what Entra expects."""
    async with httpx.AsyncClient(timeout=30) as client:
        replay = await run(client, tenant_url.rstrip("/"), token)
    if replay.throttled:
        print(f"{replay.throttled} answers 429 (rate limited) waited out, as Entra does")
    print(f"{replay.requests} requests, {len(replay.unexpected)} unexpected status codes")
    for line in replay.unexpected:
        print(line)
    return 1 if replay.unexpected else 0
