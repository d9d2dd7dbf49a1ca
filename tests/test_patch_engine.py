"""The PATCH engine on documents, without HTTP (RFC 7644 §3.5.2)."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InvalidPath, InvalidSyntax, Mutability, NoTarget
from app.scim.patch import apply_patch, parse_path
from app.scim.schema import ENTERPRISE_USER, GROUP, USER
from app.services.groups import MemberChange


def patch(doc: dict[str, Any], *ops: dict[str, Any], resource: Any = USER, collect: str | None = None) -> Any:
    return apply_patch(doc, {"Operations": list(ops)}, resource, collect=collect)


BASE = {
    "userName": "bjensen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [{"value": "b@work", "type": "work", "primary": True}, {"value": "b@home", "type": "home"}],
}


def test_replace_simple_and_sub_attribute() -> None:
    doc = patch(
        BASE, {"op": "replace", "path": "name.familyName", "value": "Smith"}, {"op": "add", "path": "nickName", "value": "Babs"}
    ).document
    assert doc["name"] == {"givenName": "Barbara", "familyName": "Smith"}
    assert doc["nickName"] == "Babs"
    assert BASE["name"]["familyName"] == "Jensen"  # the input is not mutated


def test_replace_on_filtered_path_changes_only_matching_elements() -> None:
    doc = patch(BASE, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@work"}).document
    assert [e["value"] for e in doc["emails"]] == ["new@work", "b@home"]


def test_remove_filtered_element_and_whole_attribute() -> None:
    doc = patch(BASE, {"op": "remove", "path": 'emails[type eq "home"]'}).document
    assert [e["type"] for e in doc["emails"]] == ["work"]
    assert "emails" not in patch(BASE, {"op": "remove", "path": "emails"}).document


def test_add_to_multi_valued_appends_and_moves_primary() -> None:
    doc = patch(BASE, {"op": "add", "path": "emails", "value": [{"value": "c@x", "type": "other", "primary": True}]}).document
    assert len(doc["emails"]) == 3
    assert [e.get("primary") for e in doc["emails"]] == [False, None, True]


def test_complex_replace_keeps_unnamed_sub_attributes() -> None:
    doc = patch(BASE, {"op": "replace", "path": "name", "value": {"givenName": "Babs"}}).document
    assert doc["name"] == {"givenName": "Babs", "familyName": "Jensen"}


def test_pathless_whole_extension_object() -> None:
    doc = patch(BASE, {"op": "add", "value": {ENTERPRISE_USER: {"department": "R&D", "employeeNumber": "7"}}}).document
    assert doc[ENTERPRISE_USER] == {"department": "R&D", "employeeNumber": "7"}


@pytest.mark.parametrize("path", ["id", "meta", "groups", "meta.created"])
def test_read_only_attributes_raise_mutability(path: str) -> None:
    with pytest.raises(Mutability):
        patch(BASE, {"op": "replace", "path": path, "value": "x"})


def test_unknown_path_is_invalid_path() -> None:
    with pytest.raises(InvalidPath):
        patch(BASE, {"op": "replace", "path": "shoeSize", "value": "44"})
    with pytest.raises(InvalidPath):
        parse_path('emails[type eq "work"', USER)
    with pytest.raises(InvalidPath):
        parse_path('emails[type eq "work"].nope', USER)


def test_remove_without_path_is_no_target() -> None:
    with pytest.raises(NoTarget):
        patch(BASE, {"op": "remove"})


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"Operations": []}, {"Operations": "x"}, {"Operations": ["x"]}, {"Operations": [{"op": "move", "path": "title"}]}],
)
def test_malformed_bodies_are_invalid_syntax(body: Any) -> None:
    with pytest.raises(InvalidSyntax):
        apply_patch(BASE, body, USER)


def test_members_become_member_changes_not_document_edits() -> None:
    result = patch(
        {"displayName": "G"},
        {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
        {"op": "remove", "path": 'members[value eq "u1"]'},
        {"op": "remove", "path": "members", "value": [{"value": "u2"}]},
        {"op": "replace", "path": "members", "value": [{"value": "u3"}]},
        {"op": "remove", "path": "members"},
        resource=GROUP,
        collect="members",
    )
    assert result.document == {"displayName": "G"}
    assert result.member_changes == [
        MemberChange("add", ("u1", "u2")),
        MemberChange("remove", ("u1",)),
        MemberChange("remove", ("u2",)),
        MemberChange("replace", ("u3",)),
        MemberChange("clear"),
    ]


def test_member_filter_must_select_by_value() -> None:
    with pytest.raises(InvalidPath):
        patch({"displayName": "G"}, {"op": "remove", "path": 'members[display eq "x"]'}, resource=GROUP, collect="members")


def test_path_naming_a_whole_extension() -> None:
    doc = {**BASE, ENTERPRISE_USER: {"department": "Sales", "costCenter": "1"}}
    added = patch(doc, {"op": "add", "path": ENTERPRISE_USER, "value": {"department": "Ops"}}).document
    assert added[ENTERPRISE_USER] == {"department": "Ops", "costCenter": "1"}
    replaced = patch(doc, {"op": "replace", "path": ENTERPRISE_USER, "value": {"division": "EMEA"}}).document
    assert replaced[ENTERPRISE_USER] == {"division": "EMEA"}
    assert ENTERPRISE_USER not in patch(doc, {"op": "remove", "path": ENTERPRISE_USER}).document
    with pytest.raises(InvalidSyntax):
        patch(doc, {"op": "add", "path": ENTERPRISE_USER, "value": "x"})
