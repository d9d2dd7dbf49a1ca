"""The benchmark's data, the same on every run and for every server: users and groups as Microsoft
Entra ID provisions them, with identifiers derived from their position so that the load generator,
the PostgreSQL seed and the in-memory reference server agree on them without talking to each other.

- `members`: users 0..members-1, all in group 0 (the big group); small group j (1..groups-1) also
  holds `small_group_size` of them.
- `spare`: users in no group, the pool from which "add 50 members" requests take their members, 50
  per request, so that every such request adds 50 new members.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.tools.entra_replay import entra_user as entra_user_body

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
_NAMESPACE = uuid.UUID("6f1c8a52-3f7e-4d0b-9a51-2b8c0d4e7a19")
DOMAIN = "contoso.example"
BIG_GROUP_NAME = "All Employees"


def user_id(n: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"user-{n}"))


def group_id(n: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"group-{n}"))


def user_name(n: int, prefix: str = "u") -> str:
    return f"{prefix}{n:06}@{DOMAIN}"


def external_id(n: int, prefix: str = "u") -> str:
    return f"{prefix}{n:06}"


def group_name(n: int) -> str:
    return BIG_GROUP_NAME if n == 0 else f"Team {n:04}"


def entra_user(n: int, prefix: str = "u") -> dict[str, Any]:
    """A user as Entra's default attribute mappings POST it."""
    return entra_user_body(user_name(n, prefix), external_id(n, prefix), n)


def entra_group(name: str, external: str) -> dict[str, Any]:
    return {"schemas": [CORE_GROUP, ENTRA_GROUP], "externalId": external, "displayName": name, "meta": {"resourceType": "Group"}}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def add_members(ids: list[str]) -> dict[str, Any]:
    """Entra's member add: one operation, `$ref` null."""
    return patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": i} for i in ids]})


@dataclass(frozen=True)
class Dataset:
    members: int
    groups: int
    spare: int
    small_group_size: int = 10
    batch: int = 50  # members per "add members" request

    @property
    def users(self) -> int:
        return self.members + self.spare

    def small_group_members(self, group: int) -> list[int]:
        """The members of small group `group` (1..groups-1): a run of consecutive member users."""
        first = ((group - 1) * self.small_group_size) % max(1, self.members)
        return [(first + k) % self.members for k in range(min(self.small_group_size, self.members))]

    def memberships(self) -> Iterator[tuple[int, int]]:
        """(group, user) pairs."""
        for n in range(self.members):
            yield 0, n
        for group in range(1, self.groups):
            for n in self.small_group_members(group):
                yield group, n

    def spare_batch(self, k: int) -> list[str]:
        """The k-th batch of spare users (ids), for the k-th "add members" request."""
        first = self.members + k * self.batch
        if first + self.batch > self.users:
            raise IndexError(f"the spare pool holds {self.spare // self.batch} batches, asked for batch {k}")
        return [user_id(n) for n in range(first, first + self.batch)]

    @property
    def spare_batches(self) -> int:
        return self.spare // self.batch
