"""Who is calling: the account, the token, its permissions and the channel the call came through."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.db.models import Channel
from app.errors import PermissionDenied


class Permission(enum.StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    GROUPS_READ = "groups:read"
    GROUPS_WRITE = "groups:write"
    # Reads the activity log and nothing else of the admin's: an auditor's token, which cannot mint
    # tokens or change settings.
    AUDIT_READ = "audit:read"
    ADMIN = "admin"


ALL_PERMISSIONS: tuple[str, ...] = tuple(p.value for p in Permission)


@dataclass(frozen=True, slots=True)
class Caller:
    account_id: int
    account_identifier: str
    principal: str  # token id, or "system" for the CLI
    permissions: frozenset[str]
    channel: Channel
    # The app integration the token is bound to: what it provisions is recorded as that
    # integration's, and it sees only the groups that integration owns (see services.integrations).
    integration_id: str | None = None

    def require(self, permission: Permission) -> None:
        if permission.value not in self.permissions:
            raise PermissionDenied(permission.value)

    def has(self, permission: Permission) -> bool:
        return permission.value in self.permissions

    def require_any(self, *permissions: Permission) -> None:
        """One of `permissions`; a refusal names the first."""
        if not any(p.value in self.permissions for p in permissions):
            raise PermissionDenied(permissions[0].value)

    @property
    def is_identity_provider(self) -> bool:
        """The call came over SCIM: the identity provider making its own changes, which the rules
        of what it owns (Harness's Limitations) do not hold back."""
        return self.channel == Channel.SCIM


def system_caller(account_id: int, account_identifier: str, channel: Channel = Channel.CLI) -> Caller:
    return Caller(account_id, account_identifier, "system", frozenset(ALL_PERMISSIONS), channel)
