"""App integrations: provenance and assignments of what their tokens provision, groups kept apart per
integration, health, disconnecting, and SSO login resolution exactly as Harness's page "Provision
Users and Groups using Azure AD (SCIM)" states it for FirstGen and NextGen app integrations."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.support.clients import GraphQLClient, ScimClient, Tenant

INTEGRATION = "id name generation provider status disconnectedAt"


@pytest.fixture
def gql(client: httpx.AsyncClient, tenant: Tenant) -> GraphQLClient:
    return GraphQLClient(client, tenant)


class Integration:
    """An app integration of the tenant, and a SCIM client with a token bound to it."""

    def __init__(self, data: dict[str, Any], scim: ScimClient, token_id: str) -> None:
        self.id: str = data["id"]
        self.name: str = data["name"]
        self.scim = scim
        self.token_id = token_id


async def connect(gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, name: str, generation: str) -> Integration:
    """Create an integration and a token bound to it, as an admin would in the UI."""
    created = await gql(
        "mutation($input: CreateAppIntegrationInput!) { createAppIntegration(input: $input) { "
        f"... on AppIntegration {{ {INTEGRATION} }} }} }}",
        input={"name": name, "generation": generation, "provider": "Azure AD"},
    )
    integration = created["createAppIntegration"]
    token = await gql(
        "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { "
        "... on CreatedApiToken { secret token { tokenId appIntegrationId } } } }",
        input={
            "name": f"{name} token",
            "permissions": ["users:read", "users:write", "groups:read", "groups:write"],
            "appIntegrationId": integration["id"],
        },
    )
    made = token["createApiToken"]
    assert made["token"]["appIntegrationId"] == integration["id"]
    bound = replace(tenant, token=made["secret"], token_id=made["token"]["tokenId"])
    return Integration(integration, ScimClient(client, bound), made["token"]["tokenId"])


async def entra_assigns(scim: ScimClient, user_name: str, **attributes: Any) -> str:
    """What Entra does for an assigned user: look them up by userName; when found, send what differs
    (here `active`), otherwise create them. The user's id."""
    found = await scim.find("Users", f'userName eq "{user_name}"')
    if found:
        user_id = str(found[0]["id"])
        response = await scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "active", "value": True}])
        assert response.status_code == 200, response.text
        return user_id
    return str((await scim.create_user(user_name, **attributes))["id"])


PREFLIGHT = (
    "query($email: String!) { ssoLoginPreflight(email: $email) { allowed reason authenticatingIntegration { name } user { userName } } }"
)
RISKS = (
    "query($after: String) { ssoLoginRisks(first: 1, after: $after) { totalCount "
    "pageInfo { hasNextPage endCursor } nodes { reason user { userName } assignedBy { name } } } }"
)


async def preflight(gql: GraphQLClient, email: str) -> dict[str, Any]:
    return (await gql(PREFLIGHT, email=email))["ssoLoginPreflight"]  # type: ignore[no-any-return]


async def risks(gql: GraphQLClient) -> list[dict[str, Any]]:
    """Every page of ssoLoginRisks, one user a page."""
    found, after = [], None
    while True:
        page = (await gql(RISKS, after=after))["ssoLoginRisks"]
        found += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            assert page["totalCount"] == len(found)
            return found
        after = page["pageInfo"]["endCursor"]


async def test_harness_firstgen_and_nextgen_example_end_to_end(client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient) -> None:
    """The page's example: the FirstGen app assigns user1 and user3, the NextGen app user1 and
    user2. Every SSO login goes through the FirstGen integration, so user2 is provisioned and
    cannot log in — until the FirstGen integration is disconnected."""
    firstgen = await connect(gql, client, tenant, "Harness FirstGen", "FIRSTGEN")
    nextgen = await connect(gql, client, tenant, "Harness NextGen", "NEXTGEN")
    for user in ("user1@example.com", "user3@example.com"):
        await entra_assigns(firstgen.scim, user)
    for user in ("user1@example.com", "user2@example.com"):
        await entra_assigns(nextgen.scim, user)

    for user in ("user1@example.com", "USER3@example.com"):
        verdict = await preflight(gql, user)
        assert verdict["allowed"] is True, verdict
        assert verdict["reason"] is None
        assert verdict["authenticatingIntegration"]["name"] == "Harness FirstGen"
    refused = await preflight(gql, "user2@example.com")
    assert refused == {
        "allowed": False,
        "reason": "NOT_ASSIGNED_TO_AUTHENTICATING_INTEGRATION",
        "authenticatingIntegration": {"name": "Harness FirstGen"},
        "user": {"userName": "user2@example.com"},
    }
    assert await risks(gql) == [
        {
            "reason": "NOT_ASSIGNED_TO_AUTHENTICATING_INTEGRATION",
            "user": {"userName": "user2@example.com"},
            "assignedBy": [{"name": "Harness NextGen"}],
        }
    ]
    listed = await gql("{ users { nodes { userName appIntegrations { name } } } }")
    assigned = {u["userName"]: [i["name"] for i in u["appIntegrations"]] for u in listed["users"]["nodes"]}
    assert assigned == {
        "user1@example.com": ["Harness FirstGen", "Harness NextGen"],
        "user3@example.com": ["Harness FirstGen"],
        "user2@example.com": ["Harness NextGen"],
    }

    # The admin retires the FirstGen app: logins now go through the NextGen one.
    done = await gql(
        "mutation($id: ID!) { disconnectAppIntegration(input: {id: $id, release: false}) { "
        "... on DisconnectedAppIntegration { revokedTokenIds appIntegration { status } } } }",
        id=firstgen.id,
    )
    assert done["disconnectAppIntegration"] == {"revokedTokenIds": [firstgen.token_id], "appIntegration": {"status": "DISCONNECTED"}}
    for user, allowed in (("user1@example.com", True), ("user2@example.com", True), ("user3@example.com", False)):
        verdict = await preflight(gql, user)
        assert verdict["allowed"] is allowed, (user, verdict)
        assert verdict["authenticatingIntegration"]["name"] == "Harness NextGen"
    assert [r["user"]["userName"] for r in await risks(gql)] == ["user3@example.com"]

    # An inactive user is refused whoever assigns them; an unknown address is not a user.
    user2 = (await nextgen.scim.find("Users", 'userName eq "user2@example.com"'))[0]
    assert (await nextgen.scim.patch(f"/Users/{user2['id']}", [{"op": "replace", "path": "active", "value": False}])).status_code == 200
    assert (await preflight(gql, "user2@example.com"))["reason"] == "USER_INACTIVE"
    assert [r["user"]["userName"] for r in await risks(gql)] == ["user3@example.com"]  # inactive users are no risk
    unknown = await preflight(gql, "nobody@example.com")
    assert unknown["reason"] == "USER_UNKNOWN"
    assert unknown["user"] is None


async def test_no_active_integration_refuses_every_login(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient, scim: ScimClient
) -> None:
    await scim.create_user("legacy@example.com")
    verdict = await preflight(gql, "legacy@example.com")
    assert verdict == {
        "allowed": False,
        "reason": "NO_INTEGRATION",
        "authenticatingIntegration": None,
        "user": {"userName": "legacy@example.com"},
    }
    assert [r["reason"] for r in await risks(gql)] == ["NO_INTEGRATION"]
    # Two NextGen integrations: the oldest authenticates.
    await connect(gql, client, tenant, "first nextgen", "NEXTGEN")
    await connect(gql, client, tenant, "second nextgen", "NEXTGEN")
    assert (await preflight(gql, "legacy@example.com"))["authenticatingIntegration"]["name"] == "first nextgen"


async def test_provenance_and_assignment_through_bound_tokens(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient, scim: ScimClient
) -> None:
    entra = await connect(gql, client, tenant, "Entra", "NEXTGEN")
    created = await entra.scim.create_user("ada@example.com")
    group = await entra.scim.create_group("Engineering", members=[{"value": created["id"]}])
    unbound_user = await scim.create_user("bob@example.com")  # a token bound to no integration: as before
    unbound_group = await scim.create_group("Legacy")
    query = (
        "query($u: ID!, $v: ID!, $g: ID!, $h: ID!) { a: user(id: $u) { appIntegrations { name } } "
        "b: user(id: $v) { appIntegrations { name } } "
        "g: userGroup(id: $g) { appIntegration { name } } h: userGroup(id: $h) { appIntegration { name } } }"
    )
    ids = {"u": created["id"], "v": unbound_user["id"], "g": group["id"], "h": unbound_group["id"]}
    assert await gql(query, **ids) == {
        "a": {"appIntegrations": [{"name": "Entra"}]},
        "b": {"appIntegrations": []},
        "g": {"appIntegration": {"name": "Entra"}},
        "h": {"appIntegration": None},
    }
    # An update through the integration assigns the user it did not create.
    assert (await entra.scim.patch(f"/Users/{unbound_user['id']}", [{"op": "replace", "path": "title", "value": "Eng"}])).status_code == 200
    assert (await gql(query, **ids))["b"] == {"appIntegrations": [{"name": "Entra"}]}
    # Assignments are recorded once, however many changes.
    assert (await entra.scim.patch(f"/Users/{unbound_user['id']}", [{"op": "replace", "path": "title", "value": "Ops"}])).status_code == 200
    assert (await gql(query, **ids))["b"] == {"appIntegrations": [{"name": "Entra"}]}


async def test_another_integrations_groups_are_invisible_and_a_same_named_group_is_created_beside(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient, scim: ScimClient
) -> None:
    okta = await connect(gql, client, tenant, "Okta", "NEXTGEN")
    entra = await connect(gql, client, tenant, "Entra", "NEXTGEN")
    member = await okta.scim.create_user("ada@example.com")
    okta_group = await okta.scim.create_group("Engineering", members=[{"value": member["id"]}])
    legacy = await scim.create_group("Everyone")  # no integration: every integration's tokens see it

    assert (await entra.scim.get(f"/Groups/{okta_group['id']}")).status_code == 404
    assert await entra.scim.find("Groups", 'displayName eq "Engineering"') == []
    assert [g["displayName"] for g in (await entra.scim.get("/Groups")).json()["Resources"]] == ["Everyone"]
    patched = await entra.scim.patch(f"/Groups/{okta_group['id']}", [{"op": "add", "path": "members", "value": [{"value": member["id"]}]}])
    assert patched.status_code == 404
    assert (await entra.scim.delete(f"/Groups/{okta_group['id']}")).status_code == 404
    # A user's groups show only the groups the caller's integration sees.
    assert "groups" not in (await entra.scim.get(f"/Users/{member['id']}")).json()
    assert await entra.scim.find("Users", f'groups.value eq "{okta_group["id"]}"') == []
    assert [g["value"] for g in (await okta.scim.get(f"/Users/{member['id']}")).json()["groups"]] == [okta_group["id"]]

    # Entra pushes a group of the same name: its own, beside Okta's.
    entra_group = await entra.scim.create_group("Engineering")
    assert entra_group["id"] != okta_group["id"]
    assert [g["id"] for g in await entra.scim.find("Groups", 'displayName eq "engineering"')] == [entra_group["id"]]
    assert [g["id"] for g in await okta.scim.find("Groups", 'displayName eq "Engineering"')] == [okta_group["id"]]
    # Within one integration the name stays unique, and a name a visible group holds is taken.
    assert (await entra.scim.post("/Groups", {"displayName": "ENGINEERING"})).status_code == 409
    assert (await entra.scim.post("/Groups", {"displayName": "everyone"})).status_code == 409
    assert (await entra.scim.get(f"/Groups/{legacy['id']}")).status_code == 200
    # A token bound to no integration sees every identity-provider group, as before integrations.
    names = sorted(g["displayName"] for g in (await scim.get("/Groups")).json()["Resources"])
    assert names == ["Engineering", "Engineering", "Everyone"]
    groups = await gql("{ userGroups { nodes { name appIntegration { name } } } }")
    assert sorted((g["name"], (g["appIntegration"] or {}).get("name")) for g in groups["userGroups"]["nodes"]) == [
        ("Engineering", "Entra"),
        ("Engineering", "Okta"),
        ("Everyone", None),
    ]


async def test_delete_through_an_integration_ends_only_its_assignment(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient
) -> None:
    firstgen = await connect(gql, client, tenant, "FirstGen", "FIRSTGEN")
    nextgen = await connect(gql, client, tenant, "NextGen", "NEXTGEN")
    user_id = await entra_assigns(firstgen.scim, "ada@example.com")
    assert await entra_assigns(nextgen.scim, "ada@example.com") == user_id
    # Unassigned in the FirstGen app: it deletes the user, whom the NextGen app still assigns.
    assert (await firstgen.scim.delete(f"/Users/{user_id}")).status_code == 204
    assert (await nextgen.scim.get(f"/Users/{user_id}")).status_code == 200
    user = await gql("query($id: ID!) { user(id: $id) { deprovisionedAt appIntegrations { name } } }", id=user_id)
    assert user["user"] == {"deprovisionedAt": None, "appIntegrations": [{"name": "NextGen"}]}
    events = await gql('{ auditEvents(filter: {resourceType: "User"}) { nodes { action detail } } }')
    unassigned = [e for e in events["auditEvents"]["nodes"] if e["action"] == "user.unassigned"]
    assert unassigned[0]["detail"]["stillAssignedBy"] == [nextgen.id]
    # The last integration that assigns them deletes them: now they are deprovisioned.
    assert (await nextgen.scim.delete(f"/Users/{user_id}")).status_code == 204
    assert (await nextgen.scim.get(f"/Users/{user_id}")).status_code == 404
    gone = await gql("query($id: ID!) { user(id: $id) { deprovisionedAt appIntegrations { name } } }", id=user_id)
    assert gone["user"]["deprovisionedAt"] is not None
    assert gone["user"]["appIntegrations"] == []


DISCONNECT = (
    "mutation($id: ID!, $release: Boolean!) { disconnectAppIntegration(input: {id: $id, release: $release}) { "
    "... on DisconnectedAppIntegration { revokedTokenIds releasedUserIds releasedUserGroupIds } ... on NotFoundError { resourceType } } }"
)
UPDATE_USER = (
    'mutation($id: ID!) { updateUser(input: {id: $id, name: "Renamed"}) { __typename ... on IdentityProviderManagedError { operation } } }'
)


async def _provisioned_by_two(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient
) -> tuple[Integration, Integration, dict[str, Any]]:
    leaving = await connect(gql, client, tenant, "Okta", "NEXTGEN")
    staying = await connect(gql, client, tenant, "Entra", "NEXTGEN")
    only = await entra_assigns(leaving.scim, "only@example.com")
    shared = await entra_assigns(leaving.scim, "shared@example.com")
    await entra_assigns(staying.scim, "shared@example.com")
    group = await leaving.scim.create_group("Sales", members=[{"value": only}, {"value": shared}])
    return leaving, staying, {"only": only, "shared": shared, "group": group["id"]}


async def test_disconnect_with_release_hands_groups_and_sole_users_back(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient
) -> None:
    leaving, staying, ids = await _provisioned_by_two(client, tenant, gql)
    done = (await gql(DISCONNECT, id=leaving.id, release=True))["disconnectAppIntegration"]
    assert done == {"revokedTokenIds": [leaving.token_id], "releasedUserIds": [ids["only"]], "releasedUserGroupIds": [ids["group"]]}
    assert (await leaving.scim.get("/Users")).status_code == 401  # its token is revoked
    group = await gql("query($id: ID!) { userGroup(id: $id) { managedBy appIntegration { name } } }", id=ids["group"])
    assert group["userGroup"] == {"managedBy": "MANAGER", "appIntegration": {"name": "Okta"}}
    assert (await gql(UPDATE_USER, id=ids["only"]))["updateUser"]["__typename"] == "User"
    # A user the other integration still assigns stays the identity provider's.
    assert (await gql(UPDATE_USER, id=ids["shared"]))["updateUser"] == {
        "__typename": "IdentityProviderManagedError",
        "operation": "UPDATE_PROFILE",
    }
    assert (await staying.scim.get(f"/Users/{ids['shared']}")).status_code == 200
    events = (await gql("{ auditEvents(first: 100) { nodes { action resourceId } } }"))["auditEvents"]["nodes"]
    released = sorted((e["action"], e["resourceId"]) for e in events if e["action"].endswith(".released"))
    assert released == sorted([("user.released", ids["only"]), ("group.released", ids["group"])])


async def test_disconnect_without_release_keeps_everything_locked_until_reconnected(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient
) -> None:
    leaving, _, ids = await _provisioned_by_two(client, tenant, gql)
    done = (await gql(DISCONNECT, id=leaving.id, release=False))["disconnectAppIntegration"]
    assert done == {"revokedTokenIds": [leaving.token_id], "releasedUserIds": [], "releasedUserGroupIds": []}
    assert (await gql("query($id: ID!) { userGroup(id: $id) { managedBy } }", id=ids["group"]))["userGroup"][
        "managedBy"
    ] == "IDENTITY_PROVIDER"
    assert (await gql(UPDATE_USER, id=ids["only"]))["updateUser"]["__typename"] == "IdentityProviderManagedError"
    # A disconnected integration takes no new token until it is reconnected.
    bind = (
        'mutation($id: ID!) { createApiToken(input: {name: "again", permissions: ["users:read"], appIntegrationId: $id}) { '
        "__typename ... on ValidationError { field } } }"
    )
    assert (await gql(bind, id=leaving.id))["createApiToken"] == {"__typename": "ValidationError", "field": "appIntegrationId"}
    reconnect = (
        "mutation($id: ID!) { updateAppIntegration(input: {id: $id, status: ACTIVE}) { ... on AppIntegration { status disconnectedAt } } }"
    )
    assert (await gql(reconnect, id=leaving.id))["updateAppIntegration"] == {"status": "ACTIVE", "disconnectedAt": None}
    assert (await gql(bind, id=leaving.id))["createApiToken"]["__typename"] == "CreatedApiToken"
    # Deciding later not to reconnect: disconnecting again with release releases what was kept.
    again = (await gql(DISCONNECT, id=leaving.id, release=True))["disconnectAppIntegration"]
    assert again["releasedUserIds"] == [ids["only"]] and again["releasedUserGroupIds"] == [ids["group"]]


HEALTH = (
    "query($id: ID!) { appIntegration(id: $id) { tokenExpiresSoon tokens { tokenId expiresAt revokedAt } health { "
    "lastSuccessAt requests24h clientFailures24h serverFailures24h lastFailure { status scimType detail } } } }"
)


async def test_health_counts_good_and_bad_requests_and_names_the_last_failure(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient, scim: ScimClient
) -> None:
    entra = await connect(gql, client, tenant, "Entra", "NEXTGEN")
    fresh = (await gql(HEALTH, id=entra.id))["appIntegration"]
    assert fresh["health"] == {"lastSuccessAt": None, "requests24h": 0, "clientFailures24h": 0, "serverFailures24h": 0, "lastFailure": None}
    assert fresh["tokenExpiresSoon"] is False
    user = await entra.scim.create_user("ada@example.com")  # 201
    assert (await entra.scim.get(f"/Users/{user['id']}")).status_code == 200
    assert (await entra.scim.post("/Users", {"userName": "ada@example.com"})).status_code == 409
    assert (await entra.scim.get("/Users", params={"filter": "nosuch eq 1"})).status_code == 400
    await scim.get("/Users")  # another token's requests are not this integration's
    health = (await gql(HEALTH, id=entra.id))["appIntegration"]["health"]
    assert health["requests24h"] == 4
    assert health["clientFailures24h"] == 2
    assert health["serverFailures24h"] == 0
    assert health["lastSuccessAt"] is not None
    assert health["lastFailure"]["status"] == 400
    assert health["lastFailure"]["scimType"] == "invalidFilter"
    # What the detail quotes came from the request (here a filter's text; a 409 quotes a userName): blanked.
    assert health["lastFailure"]["detail"] == "unknown attribute '…' for User"
    # The token expires: the client gets the one answer for every failed authentication, the
    # admin reads why in the health.
    expiring = await gql(
        'mutation($id: ID!) { createApiToken(input: {name: "short", permissions: ["users:read"], expiresInDays: 3, '
        "appIntegrationId: $id}) { "
        "... on CreatedApiToken { secret token { tokenId } } } }",
        id=entra.id,
    )
    assert (await gql(HEALTH, id=entra.id))["appIntegration"]["tokenExpiresSoon"] is True
    assert await gql("mutation($id: String!) { revokeApiToken(input: {tokenId: $id}) { __typename } }", id=entra.token_id)
    revoked = ScimClient(client, replace(tenant, token=entra.scim.tenant.token))
    answer = await revoked.get("/Users")
    assert answer.status_code == 401
    assert "revoked" not in answer.text
    after = (await gql(HEALTH, id=entra.id))["appIntegration"]
    assert after["health"]["requests24h"] == 5
    assert after["health"]["lastFailure"] == {"status": 401, "scimType": None, "detail": "the token has been revoked"}
    assert [t["tokenId"] for t in after["tokens"]] == [expiring["createApiToken"]["token"]["tokenId"], entra.token_id]
    # A made-up secret for the same token id is nobody's failure.
    forged = ScimClient(client, replace(tenant, token=entra.scim.tenant.token.rsplit(".", 1)[0] + ".forged"))
    assert (await forged.get("/Users")).status_code == 401
    assert (await gql(HEALTH, id=entra.id))["appIntegration"]["health"]["requests24h"] == 5


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (
            'createAppIntegration(input: {name: " ", generation: NEXTGEN, provider: "Okta"})',
            {"__typename": "ValidationError", "field": "name"},
        ),
        (
            'createAppIntegration(input: {name: "x", generation: NEXTGEN, provider: ""})',
            {"__typename": "ValidationError", "field": "provider"},
        ),
        (
            'createAppIntegration(input: {name: "DEFAULT", generation: FIRSTGEN, provider: "Okta"})',
            {"__typename": "ConflictError", "field": "name"},
        ),
        ('updateAppIntegration(input: {id: "nope", name: "x"})', {"__typename": "NotFoundError"}),
        ('updateAppIntegration(input: {id: "$OTHER", name: "Default"})', {"__typename": "ConflictError", "field": "name"}),
        ('updateAppIntegration(input: {id: "$ID", name: null})', {"__typename": "ValidationError", "field": "name"}),
        ('updateAppIntegration(input: {id: "$ID", status: DISCONNECTED})', {"__typename": "ValidationError", "field": "status"}),
        ('disconnectAppIntegration(input: {id: "nope", release: true})', {"__typename": "NotFoundError"}),
        ('createApiToken(input: {name: "t", permissions: ["users:read"], appIntegrationId: "nope"})', {"__typename": "NotFoundError"}),
    ],
)
async def test_integration_mutations_answer_bad_input_with_typed_errors(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient, mutation: str, expected: dict[str, Any]
) -> None:
    existing = await connect(gql, client, tenant, "default", "NEXTGEN")
    other = await connect(gql, client, tenant, "other", "FIRSTGEN")
    before = await gql("{ appIntegrations { id name generation provider status } }")
    fields = "__typename ... on ValidationError { field } ... on ConflictError { field }" if "field" in expected else "__typename"
    result = await gql(f"mutation {{ r: {mutation.replace('$ID', existing.id).replace('$OTHER', other.id)} {{ {fields} }} }}")
    assert result["r"] == expected
    assert await gql("{ appIntegrations { id name generation provider status } }") == before  # nothing changed


async def test_integrations_need_the_admin_permission(
    client: httpx.AsyncClient, sessionmaker: Any, gql: GraphQLClient, tenant: Tenant
) -> None:
    from tests.support.clients import make_tenant

    await connect(gql, client, tenant, "Entra", "NEXTGEN")
    reader = GraphQLClient(client, await make_tenant(sessionmaker, tenant.identifier, ["users:read", "groups:read"]))
    body = (await reader.raw("{ appIntegrations { name } }")).json()
    assert body["errors"][0]["extensions"]["code"] == "PermissionDenied"
    created = await reader(
        'mutation { createAppIntegration(input: {name: "x", generation: NEXTGEN, provider: "Okta"}) { '
        "... on PermissionDeniedError { permission } } }"
    )
    assert created["createAppIntegration"] == {"permission": "admin"}
    # Users' integrations are part of the users: users:read sees them, and the SSO verdicts.
    assert (await reader('{ ssoLoginPreflight(email: "x@example.com") { reason } }'))["ssoLoginPreflight"]["reason"] == "USER_UNKNOWN"


@pytest.mark.parametrize("key", ['["\\ud800", "x"]', '["a\\u0000", "x"]', '["only one"]', "[1, 2]", "not json"])
async def test_a_risk_cursor_that_is_not_ours_reads_as_from_the_start(gql: GraphQLClient, scim: ScimClient, key: str) -> None:
    await scim.create_user("ada@example.com")
    cursor = base64.urlsafe_b64encode(f"r:{key}".encode()).decode()
    page = await gql("query($a: String) { ssoLoginRisks(after: $a) { totalCount nodes { user { userName } } } }", a=cursor)
    assert page["ssoLoginRisks"]["nodes"] == [{"user": {"userName": "ada@example.com"}}]


async def test_a_name_pushed_at_once_with_and_without_an_integration_makes_one_group(
    client: httpx.AsyncClient, tenant: Tenant, gql: GraphQLClient, scim: ScimClient
) -> None:
    """The unique indexes keep names apart per integration and among groups of none; a create of one
    name by each at the same moment must still leave the bound token one group of that name (on
    PostgreSQL an advisory lock of the name serializes the two checks; this harness seldom
    interleaves them, so the test states the outcome rather than forcing the race)."""
    entra = await connect(gql, client, tenant, "Entra", "NEXTGEN")
    for round_ in range(4):
        name = f"Race {round_}"
        answers = await asyncio.gather(scim.post("/Groups", {"displayName": name}), entra.scim.post("/Groups", {"displayName": name}))
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        assert len(await entra.scim.find("Groups", f'displayName eq "{name}"')) == 1
