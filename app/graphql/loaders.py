"""Per-request DataLoaders: every nested list is fetched for a whole page in one query."""

from __future__ import annotations

import functools
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from strawberry.dataloader import DataLoader

from app.db.models import User, UserGroup
from app.services import groups, integrations, users
from app.services.common import Columns, total_if_known

if TYPE_CHECKING:
    from app.graphql.context import Context

K = TypeVar("K")
V = TypeVar("V")


class Window(NamedTuple):
    """The key of one row's page of a nested connection (a user's groups, a group's members)."""

    id: str
    offset: int
    limit: int
    columns: Columns  # the columns its rows read: app/graphql/projection.py


class Loaders:
    """The request's loaders, each made when a field first needs it: most operations use one or two
    of them, and a DataLoader costs as much to make as a small field to resolve.

    The context holds its loaders, and the loaders and their batch functions hold the context and
    the loaders only weakly: with no cycle among them, a request's loaders, the rows they cached and
    the context are freed by reference counting when the request ends, not left for the cyclic
    garbage collector, whose collections each stopped the worker for several milliseconds every few
    dozen GraphQL pages (bench/README.md)."""

    def __init__(self, context: Context) -> None:
        self.context = weakref.proxy(context)

    def _loader(self, batch: Callable[[Loaders, Sequence[K]], Awaitable[list[V]]]) -> DataLoader[K, V]:
        """A DataLoader whose batch function is `batch`, a method of this class, called on these loaders."""
        return DataLoader(load_fn=functools.partial(batch, weakref.proxy(self)))

    @cached_property
    def member_count(self) -> DataLoader[str, int]:
        return self._loader(Loaders._member_counts)

    @cached_property
    def members(self) -> DataLoader[Window, list[User]]:
        return self._loader(Loaders._members)

    @cached_property
    def groups_of_user(self) -> DataLoader[Window, tuple[int, list[UserGroup]]]:
        return self._loader(Loaders._groups_of_users)

    @cached_property
    def ownership(self) -> DataLoader[str, frozenset[users.Ownership]]:
        return self._loader(Loaders._ownership)

    @cached_property
    def integration(self) -> DataLoader[str, Any]:
        return self._loader(Loaders._integrations)

    @cached_property
    def assigning_integrations(self) -> DataLoader[str, list[Any]]:
        return self._loader(Loaders._assigning_integrations)

    @cached_property
    def integration_health(self) -> DataLoader[str, integrations.Health]:
        return self._loader(Loaders._integration_health)

    @cached_property
    def integration_tokens(self) -> DataLoader[str, list[Any]]:
        return self._loader(Loaders._integration_tokens)

    async def _member_counts(self, ids: Sequence[str]) -> list[int]:
        counts = await self.context.call(groups.member_counts, self.context.caller, list(ids))
        return [counts.get(i, 0) for i in ids]

    async def _members(self, keys: Sequence[Window]) -> list[list[User]]:
        found: dict[Window, list[User]] = {}
        for (offset, limit, columns), ids in _by_window(keys).items():
            pages = await self.context.call(groups.members_of_groups, self.context.caller, ids, offset=offset, limit=limit, columns=columns)
            found.update({Window(gid, offset, limit, columns): pages[gid] for gid in ids})
        return [found[k] for k in keys]

    async def _groups_of_users(self, keys: Sequence[Window]) -> list[tuple[int, list[UserGroup]]]:
        found: dict[Window, tuple[int, list[UserGroup]]] = {}
        for (offset, limit, columns), ids in _by_window(keys).items():
            pages = await self.context.call(groups.groups_of_users, self.context.caller, ids, offset=offset, limit=limit, columns=columns)
            # Only the users whose page does not tell their total are counted (most users are in
            # fewer groups than a page holds).
            known = {uid: total_if_known(offset, limit, len(pages[uid])) for uid in ids}
            totals = {uid: total for uid, total in known.items() if total is not None}
            uncounted = [uid for uid, total in known.items() if total is None]
            if uncounted:
                totals.update(await self.context.call(groups.group_counts, self.context.caller, uncounted))
            found.update({Window(uid, offset, limit, columns): (totals[uid], pages[uid]) for uid in ids})
        return [found[k] for k in keys]

    async def _ownership(self, ids: Sequence[str]) -> list[frozenset[users.Ownership]]:
        owned = await self.context.call(users.ownership, self.context.caller.account_id, list(ids))
        return [owned.get(i, frozenset()) for i in ids]

    async def _integrations(self, ids: Sequence[str]) -> list[Any]:
        found = await self.context.call(integrations.integrations_by_id, self.context.caller.account_id, list(ids))
        return [found.get(i) for i in ids]

    async def _assigning_integrations(self, user_ids: Sequence[str]) -> list[list[Any]]:
        found = await self.context.call(integrations.assigning_integrations, self.context.caller.account_id, list(user_ids))
        return [found[i] for i in user_ids]

    async def _integration_health(self, ids: Sequence[str]) -> list[integrations.Health]:
        found = await self.context.call(integrations.health, self.context.caller.account_id, list(ids), self.context.now)
        return [found[i] for i in ids]

    async def _integration_tokens(self, ids: Sequence[str]) -> list[list[Any]]:
        found = await self.context.call(integrations.tokens_of, self.context.caller.account_id, list(ids))
        return [found[i] for i in ids]


def _by_window(keys: Sequence[Window]) -> dict[tuple[int, int, Columns], list[str]]:
    grouped: dict[tuple[int, int, Columns], list[str]] = defaultdict(list)
    for key_id, offset, limit, columns in keys:  # DataLoader has already removed duplicate keys
        grouped[(offset, limit, columns)].append(key_id)
    return grouped
