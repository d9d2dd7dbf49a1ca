"""Case-insensitive matching of non-ASCII names gives the same answers on SQLite and PostgreSQL.

Every test here runs on each database; the expectations are written once, so a database that
answered differently would fail. SQLite's built-in lower() folds ASCII only, and Python's
str.lower() differs from PostgreSQL's lower() for "İ" and the final sigma — the names below
exercise exactly those characters.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db import migrate
from app.db.casefold import unicode_lower
from tests.support.clients import ENTERPRISE, GraphQLClient, ScimClient, Tenant

# (stored name, the same name in other letter cases as people type them, substrings in other cases
# for co / sw / ew). The Greek substring "ΝΑΣ" ends in a final sigma once lower-cased, while the
# stored name has a medial one there.
NAMES: list[tuple[str, list[str], dict[str, str]]] = [
    ("Émile Zoë", ["ÉMILE ZOË", "émile zoë"], {"co": "LE ZO", "sw": "ÉMI", "ew": "ZOË"}),
    ("Øyvind Ødegård", ["ØYVIND ØDEGÅRD", "øyvind ødegård"], {"co": "D ØDE", "sw": "ØYV", "ew": "GÅRD"}),
    ("Łukasz Żółć", ["ŁUKASZ ŻÓŁĆ", "łukasz żółć"], {"co": "SZ ŻÓ", "sw": "ŁUK", "ew": "ŻÓŁĆ"}),
    ("İlkay Gündoğan", ["İLKAY GÜNDOĞAN"], {"co": "Y GÜNDOĞ", "sw": "İLK", "ew": "DOĞAN"}),
    ("Straße Weiß", ["STRAẞE WEIẞ", "straße weiß"], {"co": "E WEIẞ", "sw": "STRAẞ", "ew": "WEIẞ"}),
    ("Σωκράτης Αναστασίου", ["ΣΩΚΡΆΤΗΣ ΑΝΑΣΤΑΣΊΟΥ", "σωκράτης αναστασίου"], {"co": "ΝΑΣ", "sw": "ΣΩΚΡΆΤΗΣ", "ew": "ΣΊΟΥ"}),
    ("Дмитрий Шостакович", ["ДМИТРИЙ ШОСТАКОВИЧ", "дмитрий шостакович"], {"co": "ИЙ ШОСТ", "sw": "ДМИТ", "ew": "КОВИЧ"}),
]


def _queries(value: str, variants: list[str], parts: dict[str, str], suffix: str = "") -> list[tuple[str, str]]:
    """(operator, value) pairs that must all find `value` (+ `suffix`, the rest of an email
    address): the exact value, each other-case spelling, and each substring operator."""
    ends = {**parts, "ew": parts["ew"] + suffix.upper()}
    return [("eq", value + suffix), *[("eq", v + suffix.upper()) for v in variants], *ends.items()]


async def _found(scim: ScimClient, resource: str, attribute: str, op: str, value: str) -> list[dict[str, Any]]:
    response = await scim.get(f"/{resource}", params={"filter": f'{attribute} {op} "{value}"'})
    assert response.status_code == 200, response.text
    return response.json()["Resources"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("attribute", ["displayName", "name.givenName", "title", f"{ENTERPRISE}:department", "emails.value", "userName"])
async def test_users_are_found_by_non_ascii_names_in_any_case(scim: ScimClient, attribute: str) -> None:
    """displayName, name.givenName, title and department have no lower-cased copy (folded in SQL on
    both sides); userName and emails have one (compared with the value lower-cased the same way)."""
    ids = {}
    for name, _, _ in NAMES:
        user = await scim.create_user(
            f"{name}@example.com",
            displayName=name,
            title=name,
            name={"givenName": name},
            emails=[{"value": f"{name}@example.com", "type": "work"}],
            **{ENTERPRISE: {"department": name}},
        )
        ids[name] = user["id"]
    suffix = "@example.com" if attribute in ("emails.value", "userName") else ""
    for name, variants, parts in NAMES:
        for op, value in _queries(name, variants, parts, suffix):
            found = await _found(scim, "Users", attribute, op, value)
            assert [u["id"] for u in found] == [ids[name]], f"{attribute} {op} {value!r} found {[u['userName'] for u in found]}"


async def test_groups_and_members_are_found_by_non_ascii_names_in_any_case(scim: ScimClient) -> None:
    """Group displayName has a lower-cased copy; members.display is the member's display name."""
    groups = {}
    for name, _, _ in NAMES:
        user = await scim.create_user(f"{name}@example.com", displayName=name)
        groups[name] = (await scim.create_group(name, members=[{"value": user["id"]}]))["id"]
    for name, variants, parts in NAMES:
        for attribute in ("displayName", "members.display"):
            for op, value in _queries(name, variants, parts):
                found = await _found(scim, "Groups", attribute, op, value)
                assert [g["id"] for g in found] == [groups[name]], f"{attribute} {op} {value!r} found {[g['displayName'] for g in found]}"


async def test_admin_search_finds_non_ascii_names_in_any_case(scim: ScimClient, client: httpx.AsyncClient, tenant: Tenant) -> None:
    """The GraphQL user search (userName, email, display name) folds like the SCIM filters."""
    gql = GraphQLClient(client, tenant)
    ids = {}
    for n, (name, _, _) in enumerate(NAMES):
        ids[name] = (await scim.create_user(f"user{n}@example.com", displayName=name))["id"]
    query = "query($s: String) { users(filter: {search: $s}) { nodes { id } } }"
    for name, variants, parts in NAMES:
        for search in [name, *variants, *parts.values()]:
            nodes = (await gql(query, s=search))["users"]["nodes"]
            assert [n["id"] for n in nodes] == [ids[name]], f"search {search!r} found {nodes}"


async def test_user_names_differing_only_in_non_ascii_case_are_one_user_name(scim: ScimClient) -> None:
    await scim.create_user("Σωκράτης Ødegård@example.com")
    response = await scim.post("/Users", {"userName": "ΣΩΚΡΆΤΗΣ ØDEGÅRD@EXAMPLE.COM"})
    assert response.status_code == 409, response.text
    assert response.json()["scimType"] == "uniqueness"


@pytest.mark.parametrize(
    ("text", "lowered"),
    [
        ("ÉMILE ZOË", "émile zoë"),
        ("İLKAY", "ilkay"),
        ("ΣΩΚΡΆΤΗΣ", "σωκράτησ"),
        ("ẞ", "ß"),
        ("ДМИТРИЙ", "дмитрий"),
        (None, None),
        (42, "42"),
    ],
)
def test_sqlite_lower_maps_each_character_as_postgresql_does(text: Any, lowered: Any) -> None:
    """One character in, one character out: never "i" + U+0307 for "İ", never a final sigma by
    context — the per-character mapping PostgreSQL's lower() applies."""
    assert unicode_lower(text) == lowered


def test_no_sqlite_index_is_built_on_lower(tmp_path: Path) -> None:
    """Each connection replaces SQLite's lower(); an index on a lower() expression would then hold
    keys that another SQLite client (with the built-in lower()) computes differently."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    migrate.upgrade(url)
    with closing(sqlite3.connect(tmp_path / "schema.db")) as connection:
        definitions = [sql for (sql,) in connection.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    assert definitions and not [sql for sql in definitions if "lower(" in sql.lower()]
