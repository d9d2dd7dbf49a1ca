"""Lists of users and groups read only the columns their nodes show (app/graphql/projection.py): each
field, selected alone in every list that returns such nodes, answers what the node read whole answers;
fragments, @include and edges are followed; a field set beyond the bound still answers right."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.graphql import projection
from tests.support.clients import GraphQLClient, ScimClient, Tenant
from tests.support.statements import StatementCounter
from tests.test_app_integrations import connect

# Fields with a selection of their own: what each shows of them. A field of an object type must be named
# here, so that a new one is checked with a selection that reads something.
SUBSELECTIONS = {
    "groups": "(first: 5) { totalCount nodes { id } }",
    "members": "(first: 5) { totalCount nodes { id } }",
    "appIntegrations": " { id }",
    "appIntegration": " { id }",
}


async def _fields(gql: GraphQLClient, type_name: str) -> dict[str, str]:
    """The fields of a type, by name, each as a selection of it alone."""
    data = await gql(
        "query($name: String!) { __type(name: $name) { fields { name type { kind ofType { kind ofType { kind ofType { kind } } } } } } }",
        name=type_name,
    )
    out = {}
    for field in data["__type"]["fields"]:
        name, kind = field["name"], field["type"]
        while kind["kind"] in ("NON_NULL", "LIST"):
            kind = kind["ofType"]
        if kind["kind"] not in ("SCALAR", "ENUM"):
            assert name in SUBSELECTIONS, f"{type_name}.{name}: name what the test selects of it"
        out[name] = name + SUBSELECTIONS.get(name, "")
    return out


@pytest.fixture
async def directory(gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, scim: ScimClient) -> dict[str, list[str]]:
    """Users and groups with every kind of value: from an app integration's token, from a plain one and
    from the admin UI, with and without a formatted name, active and not; a group of the admin UI with
    a description."""
    integration = await connect(gql, client, tenant, "Entra", "NEXTGEN")
    ann = await integration.scim.create_user(
        "ann@example.com",
        externalId="ext-ann",
        displayName="Ann D",
        name={"formatted": "Ann Formatted", "givenName": "Ann", "familyName": "Dee"},
        emails=[{"value": "ann@example.com", "primary": True}],
    )
    bob = await scim.create_user("bob@example.com", displayName="Bob B", active=False, name={"givenName": "Bob"})
    carol = await scim.create_user("carol@example.com")
    users = [str(u["id"]) for u in (ann, bob, carol)]
    synced = await integration.scim.create_group("Synced", externalId="ext-synced", members=[{"value": u} for u in users])
    plain = await scim.create_group("Plain", members=[{"value": users[0]}])
    native = await gql(
        "mutation($input: CreateUserInput!) { createUser(input: $input) { ... on User { id } } }",
        input={"email": "dan@example.com", "name": "Dan Native"},
    )
    users.append(native["createUser"]["id"])
    made = await gql(
        "mutation($input: CreateUserGroupInput!) { createUserGroup(input: $input) { ... on UserGroup { id } } }",
        input={"name": "Made here", "description": "For reviews", "userIds": users[3:]},
    )
    groups = [str(synced["id"]), str(plain["id"]), made["createUserGroup"]["id"]]
    return {"users": users, "groups": groups}


def _by_id(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {node.pop("key"): node for node in nodes}


# Per node type: the field reading one node whole, the list of them, and the list that holds them
# nested in the nodes of another (a group's members, a user's groups).
LISTS = {"User": ("users", "user", "users", "userGroups", "members"), "UserGroup": ("groups", "userGroup", "userGroups", "users", "groups")}


@pytest.mark.parametrize("type_name", sorted(LISTS))
async def test_every_field_alone_answers_in_each_list_what_the_whole_node_answers(
    gql: GraphQLClient, directory: dict[str, list[str]], type_name: str
) -> None:
    ids, one, page, outer, nested = LISTS[type_name]
    for field in (await _fields(gql, type_name)).values():
        whole = {}
        for node_id in directory[ids]:
            whole[node_id] = (await gql(f"query($id: ID!) {{ {one}(id: $id) {{ {field} }} }}", id=node_id))[one]
        listed = _by_id((await gql(f"{{ {page} {{ nodes {{ key: id {field} }} }} }}"))[page]["nodes"])
        assert listed == whole, field
        query = f"{{ {outer}(first: 10) {{ nodes {{ {nested}(first: 10) {{ nodes {{ key: id {field} }} }} }} }} }}"
        for holder in (await gql(query))[outer]["nodes"]:
            held = _by_id(holder[nested]["nodes"])
            assert held == {node_id: whole[node_id] for node_id in held}, field


async def test_each_field_of_the_node_types_names_its_columns(gql: GraphQLClient) -> None:
    for type_name in ("User", "UserGroup"):
        assert set(projection.registered(type_name)) == {*await _fields(gql, type_name), "__typename"}, type_name


async def test_a_page_reads_the_columns_of_the_fields_it_shows_through_fragments_and_include(
    gql: GraphQLClient, engine: AsyncEngine, directory: dict[str, list[str]]
) -> None:
    query = """query($email: Boolean!) {
      users { edges { node { id ...names email @include(if: $email) groups { nodes { name } } } } }
    }
    fragment names on User { ... on User { userName } }"""
    with StatementCounter(engine) as narrow:
        data = await gql(query, email=False)
    assert [e["node"]["userName"] for e in data["users"]["edges"]] == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "dan@example.com",
    ]
    assert all("email" not in e["node"] for e in data["users"]["edges"])
    assert [g["name"] for g in data["users"]["edges"][0]["node"]["groups"]["nodes"]] == ["Plain", "Synced"]
    page, groups = _statement(narrow, "FROM users"), _statement(narrow, "group_memberships")
    # What no field shows is not read.
    assert "user_name" in _selected(page) and _selected(page).isdisjoint({"email", "extensions", "multi_valued"})
    assert "display_name" in _selected(groups) and _selected(groups).isdisjoint({"description", "extensions"})

    with StatementCounter(engine) as wider:
        data = await gql(query, email=True)
    assert [e["node"]["email"] for e in data["users"]["edges"]] == ["ann@example.com", None, None, "dan@example.com"]
    assert "email" in _selected(_statement(wider, "FROM users"))


async def test_field_sets_beyond_the_bound_read_whole_rows_and_answer_the_same(
    gql: GraphQLClient, engine: AsyncEngine, directory: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection, "MAX_SHAPES", 2)
    monkeypatch.setattr(projection, "_SHAPES", {name: set() for name in projection._SHAPES})
    answers = []
    for field in ("userName", "email", "displayName"):
        with StatementCounter(engine) as counted:
            answers.append((await gql(f"{{ users {{ nodes {{ {field} }} }} }}"))["users"]["nodes"])
        page = _statement(counted, "FROM users")
        assert ("extensions" in _selected(page)) is (field == "displayName"), field  # the third shape: whole rows
    assert [n["displayName"] for n in answers[2]] == ["Ann D", "Bob B", None, "Dan Native"]
    assert [n["email"] for n in answers[1]] == ["ann@example.com", None, None, "dan@example.com"]


def _selected(sql: str) -> set[str]:
    """The names of the columns a statement's outermost SELECT reads."""
    head = re.split(r"\bFROM\b", sql, maxsplit=1)[0].removeprefix("SELECT")
    return {re.split(r"[. ]", item.strip())[-1] for item in head.split(",")}


def _statement(counter: StatementCounter, marker: str) -> str:
    found = [s for s in counter.statements if marker in s and "count(" not in s.lower()]
    assert len(found) == 1, counter.statements
    return found[0]
