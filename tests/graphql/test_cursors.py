"""Cursors a client made up — huge or negative numbers, other digits, broken base64 — read as "from the
start" on every connection, never as an internal error."""

from __future__ import annotations

import base64

import pytest

from app.graphql.pagination import decode_cursor, encode_cursor
from tests.support.clients import GraphQLClient, ScimClient


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


HUGE = "99999999999999999999999"

# name -> (cursor text, as given to the `after` argument)
BAD_CURSORS = {
    "huge offset": _b64(f"o:{HUGE}"),
    "huge audit id": _b64(f"a:{HUGE}"),
    "just past 64 bits": _b64("o:9223372036854775808"),
    "int64 maximum": _b64("o:9223372036854775807"),
    "user prefix from the report": _b64(f"user:{HUGE}"),
    "negative": _b64("o:-1"),
    "plus sign": _b64("o:+1"),
    "spaces": _b64("o: 1 "),
    "underscores": _b64("o:1_0"),
    "arabic-indic digits": _b64("o:\u0661"),
    "fullwidth digits": _b64("o:\uff11"),
    "thousands of digits": _b64("o:" + "9" * 5000),
    "non-ascii cursor": "\u00e9t\u00e9",
    "emoji cursor": "\U0001f600",
    "padding garbage": "bzox===x",
    "only padding": "====",
    "bad length": "bzo",
    "not base64 alphabet": "bz*x",
    "not utf-8 inside": base64.urlsafe_b64encode(b"o:\xff\xfe").decode(),
    "plain text": "o:1",
    "no separator": _b64("o1"),
    "empty value": _b64("o:"),
}


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
def test_made_up_cursors_decode_as_the_start(cursor: str) -> None:
    assert decode_cursor(cursor, "o") is None
    assert decode_cursor(cursor, "a") is None


def test_cursors_of_ours_still_decode() -> None:
    assert decode_cursor(encode_cursor("o", 0), "o") == 0
    assert decode_cursor(encode_cursor("a", 123456789012), "a") == 123456789012
    assert decode_cursor(encode_cursor("o", 3), "a") is None  # another field's cursor


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
async def test_every_connection_starts_over_on_a_made_up_cursor(gql: GraphQLClient, scim: ScimClient, cursor: str) -> None:
    user = await scim.create_user("ann@x", emails=[{"value": "ann@x", "type": "work"}])
    await scim.create_group("Team", members=[{"value": user["id"]}])
    query = """query($a: String) {
        users(first: 1, after: $a) { nodes { userName groups(first: 1, after: $a) { nodes { name } } } }
        userGroups(first: 1, after: $a) { nodes { name members(first: 1, after: $a) { nodes { userName } } } }
        auditEvents(first: 1, after: $a) { nodes { action } }
    }"""
    data = await gql(query, a=cursor)
    assert data["users"]["nodes"] == [{"userName": "ann@x", "groups": {"nodes": [{"name": "Team"}]}}]
    assert data["userGroups"]["nodes"] == [{"name": "Team", "members": {"nodes": [{"userName": "ann@x"}]}}]
    assert data["auditEvents"]["nodes"] == [{"action": "group.create"}]  # the newest event


PAGE = "query($a: String) { users(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { userName } } }"


async def test_user_pages_neither_skip_nor_repeat_while_users_come_and_go(gql: GraphQLClient, scim: ScimClient) -> None:
    """Keyset cursors: users deleted before the cursor, and users created meanwhile, move no other
    user across a page boundary (an offset would skip one per deletion)."""
    made = [await scim.create_user(f"u{i}@example.com") for i in range(5)]
    first = (await gql(PAGE))["users"]
    assert [n["userName"] for n in first["nodes"]] == ["u0@example.com", "u1@example.com"]
    assert first["totalCount"] == 5 and first["pageInfo"]["hasNextPage"] is True
    # While the admin pages: the first user is deprovisioned and two more arrive.
    assert (await scim.delete(f"/Users/{made[0]['id']}")).status_code == 204
    for i in (5, 6):
        await scim.create_user(f"u{i}@example.com")
    seen, after = [n["userName"] for n in first["nodes"]], first["pageInfo"]["endCursor"]
    while after is not None:
        page = (await gql(PAGE, a=after))["users"]
        assert page["totalCount"] == 6
        seen += [n["userName"] for n in page["nodes"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert seen == [f"u{i}@example.com" for i in range(7)]


async def test_group_pages_use_keyset_cursors_too(gql: GraphQLClient) -> None:
    for name in ("A", "B", "C"):
        await gql("mutation($n: String!) { createUserGroup(input: {name: $n}) { __typename } }", n=name)
    query = "query($a: String) { userGroups(first: 1, after: $a) { pageInfo { hasNextPage endCursor } nodes { name } } }"
    first = (await gql(query))["userGroups"]
    groups = await gql("{ userGroups { nodes { id name } } }")
    a = next(g["id"] for g in groups["userGroups"]["nodes"] if g["name"] == "A")
    await gql("mutation($id: ID!) { deleteUserGroup(input: {id: $id}) { __typename } }", id=a)
    second = (await gql(query, a=first["pageInfo"]["endCursor"]))["userGroups"]
    assert [first["nodes"][0]["name"], second["nodes"][0]["name"]] == ["A", "B"]
