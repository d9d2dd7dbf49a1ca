"""The domain error hierarchy. Transports map these to their own wire formats at the edge.

    DomainError
    ├── InvalidInput          a value is malformed or breaks a rule of its attribute
    │   ├── InvalidSyntax     the request body is not well-formed (bad JSON, wrong shape)
    │   ├── InvalidFilter     a SCIM filter does not parse or names an unknown attribute
    │   ├── InvalidPath       a PATCH path does not parse or names an unknown attribute
    │   ├── Mutability        an attempt to change a read-only attribute
    │   └── NoTarget          a PATCH path matched nothing where the operation needs a target
    ├── NotFound              the resource does not exist in the caller's account
    ├── Conflict              a uniqueness rule would be broken
    ├── PreconditionFailed    If-Match did not match the current version
    ├── PermissionDenied      the caller's token lacks a permission
    ├── ManagedByIdentityProvider  the identity provider owns what the caller tried to change
    ├── Unauthenticated       no usable credentials (deliberately without detail)
    └── Unavailable           the database cannot serve the request now; retry later

No HTTP status codes live here.
"""

from __future__ import annotations

import enum


class DomainError(Exception):
    """Base class; `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """A value is malformed or breaks a rule of its attribute; `field` names it when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidSyntax(InvalidInput):
    """The request body is not well-formed: malformed JSON or the wrong shape."""


class InvalidFilter(InvalidInput):
    """A SCIM filter expression is malformed or names an unknown attribute."""


class InvalidPath(InvalidInput):
    """A PATCH path is malformed or names an unknown attribute."""


class Mutability(InvalidInput):
    """An attempt to modify a read-only attribute."""


class NoTarget(InvalidInput):
    """A PATCH path matched nothing where the operation needs a target."""


class NotFound(DomainError):
    """The resource does not exist in the caller's account."""

    def __init__(self, resource_type: str, resource_id: str) -> None:
        # An id with NUL (which PostgreSQL text cannot hold) names nothing; it is shown without it.
        resource_id = resource_id.replace("\x00", "")
        super().__init__(f"{resource_type} {resource_id} not found")
        self.resource_type = resource_type
        self.resource_id = resource_id


class Conflict(DomainError):
    """A uniqueness rule would be broken; `field` names the attribute."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PreconditionFailed(DomainError):
    """The resource changed since the version the caller named in If-Match."""


class PermissionDenied(DomainError):
    """The caller's token lacks `permission`."""

    def __init__(self, permission: str) -> None:
        super().__init__(f"the token lacks the permission {permission}")
        self.permission = permission


class GuardedOperation(enum.Enum):
    """A change that the identity provider may own (Harness's Limitations), as a refusal names it."""

    UPDATE_PROFILE = "update_profile"  # a user's email or name
    DELETE = "delete"  # a user or a group
    CHANGE_GROUPS = "change_groups"  # a user's group assignments
    RENAME = "rename"  # a group's name
    CHANGE_MEMBERS = "change_members"  # a group's members


class ManagedByIdentityProvider(DomainError):
    """The identity provider owns the resource (or the attribute) the caller tried to change."""

    def __init__(self, message: str, *, resource_type: str, resource_id: str, operation: GuardedOperation) -> None:
        super().__init__(message)
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.operation = operation


class Unauthenticated(DomainError):
    """Missing, malformed, unknown, revoked, expired or other-account credentials — all alike."""

    def __init__(self) -> None:
        super().__init__("authentication failed: a valid bearer token for this account is required")


class RateLimited(DomainError):
    """Too many requests (of one token, or failed authentications); `retry_after` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry after {retry_after} second{'' if retry_after == 1 else 's'}")
        self.retry_after = retry_after


class Unavailable(DomainError):
    """The database is unreachable, too slow or too busy right now; `retry_after` is a hint in seconds."""

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__("the service is temporarily unavailable; retry later")
        self.retry_after = retry_after
