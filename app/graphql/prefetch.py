"""A page's nested fields loaded before its nodes are resolved.

A field of a node that a DataLoader serves (a user's groups, a group's memberCount) is one statement
for a whole page, yet every row still awaits a future of its own: for a page of 50, fifty awaitables
that graphql-core completes one by one, and the larger part of such a field's cost (bench/README.md).
A list resolver that knows which of those fields its nodes select, and with which arguments, loads
them for all its rows first (`prefetch`); each row's resolver then finds its value there and returns
it at once (`settled`). A value not loaded ahead — a node reached another way, a field the table
does not name — is loaded and awaited as before: this changes when values are fetched, never which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from graphql import FieldNode, GraphQLResolveInfo, get_named_type
from strawberry.dataloader import DataLoader

from app.graphql import projection
from app.graphql.context import Info
from app.graphql.loaders import Loaders
from app.services.common import Columns

R = TypeVar("R")

# A field of a node served by DataLoaders: for the request's loaders, a row, the field's arguments (by
# their GraphQL names) and, for a list of users or groups, the columns its nodes read (app/graphql/
# projection.py), the loads its resolver makes — each loader with the key it loads.
Loads = Callable[[Loaders, Any, Mapping[str, Any], Columns], Iterable[tuple[DataLoader[Any, Any], Any]]]


async def prefetch(info: Info, rows: Sequence[Any], fields: Mapping[str, Loads]) -> None:
    """For every row of the page that `info`'s field returns (a connection), the loads of each field of
    `fields` its nodes select, under `nodes` or `edges { node }`. A load that fails is left to the
    row's field, which loads its key itself, meets the failure and reports it at its own path."""
    wanted: dict[int, tuple[DataLoader[Any, Any], list[Any]]] = {}
    for name, arguments, columns in _node_fields(info._raw_info, info.context.projections, fields):
        loads = fields[name]
        for row in rows:
            for loader, key in loads(info.context.loaders, row, arguments, columns):
                wanted.setdefault(id(loader), (loader, []))[1].append(key)
    for loader, keys in wanted.values():
        # Each loader's batch function called at once and its values primed into the loader: a load
        # per row would give every key a future, a task and a callback of the DataLoader's batch, a
        # tenth of a page's CPU for nothing, since all the keys are known here.
        missing = list(dict.fromkeys(key for key in keys if loader.cache_map.get(key) is None))
        if not missing:
            continue
        try:
            values = await loader.load_fn(missing)
        except Exception:  # the rows' fields load these keys themselves, and report the failure
            continue
        loader.prime_many(dict(zip(missing, values, strict=True)))


def settled(*loaded: Any, then: Callable[..., R]) -> R:
    """`then` of the values of DataLoader futures: at once when all of them are there (see `prefetch`),
    else an awaitable of it, which GraphQL awaits — typed as `R`, since a resolver's annotation is the
    GraphQL type of its field. A future that failed raises its error here, as awaiting it would."""
    if all(isinstance(future, asyncio.Future) and future.done() for future in loaded):
        return _then(loaded, then)

    async def later() -> R:
        await asyncio.gather(*loaded, return_exceptions=True)
        return _then(loaded, then)

    return cast(R, later())


def _then(loaded: Sequence[asyncio.Future[Any]], then: Callable[..., R]) -> R:
    """`then` of the settled futures' values, or the first one's failure. Every failure is looked at,
    so that asyncio does not report the others as never retrieved."""
    failures = [future.exception() for future in loaded]
    for failure in failures:
        if failure is not None:
            raise failure
    return then(*(future.result() for future in loaded))


def _node_fields(
    info: GraphQLResolveInfo, cache: dict[Any, Columns], names: Container[str]
) -> Iterator[tuple[str, dict[str, Any], Columns]]:
    """(name, arguments, the columns its nodes read when it is a list of users or groups) of each field
    among `names` that the nodes of the connection `info`'s field returns select, as its resolver will
    see it: the field nodes of one response name merged."""
    connection = get_named_type(info.return_type)
    node = projection.node_type(connection)
    if node is None:
        return
    walk = projection.Selections(info)
    merged: dict[str, list[FieldNode]] = {}
    for selected in projection.node_fields(walk, connection, info.field_nodes):
        if selected.name.value in names:
            merged.setdefault(selected.alias.value if selected.alias else selected.name.value, []).append(selected)
    for field_nodes in merged.values():
        name = field_nodes[0].name.value
        arguments = walk.arguments(node, field_nodes[0])
        if arguments is not None:
            yield name, arguments, projection.columns_of(info, cache, node.fields[name].type, field_nodes)
