"""What a caller may write on a user is declared once (services.users.UserValues); every column of
`users` is either one of those or derived by the service, so a new column cannot be dropped unnoticed."""

from __future__ import annotations

import pytest

from app.db.models import User
from app.scim.mapping import USER_COLUMNS
from app.services import users


def test_every_users_column_is_writable_or_derived_and_never_both() -> None:
    columns = set(User.__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(users.WRITABLE) | set(users.DERIVED) == columns
    assert set(users.WRITABLE) & set(users.DERIVED) == set()


def test_every_scim_attribute_lands_in_a_writable_column() -> None:
    assert set(USER_COLUMNS.values()) <= set(users.WRITABLE)


def test_a_column_that_is_not_writable_is_refused_not_dropped() -> None:
    with pytest.raises(TypeError):
        users.UserValues(user_name="a@x", version=7)  # type: ignore[call-arg]
    assert users.UserValues(user_name="a@x", title=None).given() == {"user_name": "a@x", "title": None}
