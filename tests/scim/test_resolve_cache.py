"""Attribute names are resolved once and remembered, within a bound: a client that sends endless
distinct names (in filters, bodies or PATCH paths) cannot grow the process."""

from __future__ import annotations

from app.scim import schema
from app.scim.schema import GROUP, USER


def test_remembered_answers_are_the_answers() -> None:
    for path in (
        "userName",
        "USERNAME",
        "name.givenName",
        "emails",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "nope",
    ):
        first = schema.resolve(path, USER)
        assert schema.resolve(path, USER) == first == schema._resolve(path, USER)
    assert schema.resolve("members", GROUP) is not None and schema.resolve("members", USER) is None


def test_the_memory_of_names_is_bounded() -> None:
    for n in range(schema._RESOLVED_LIMIT + 500):
        assert schema.resolve(f"unknownAttribute{n}", USER) is None
    assert len(schema._RESOLVED) <= schema._RESOLVED_LIMIT
    assert schema.resolve("userName", USER) is not None  # still answered, remembered or not
