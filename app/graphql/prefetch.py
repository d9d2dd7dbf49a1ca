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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values
from strawberry.dataloader import DataLoader

from app.graphql.context import Info
from app.graphql.loaders import Loaders

R = TypeVar("R")

# A field of a node served by DataLoaders: for the request's loaders, a row and the field's arguments
# (by their GraphQL names), the loads its resolver makes — each loader with the key it loads.
Loads = Callable[[Loaders, Any, Mapping[str, Any]], Iterable[tuple[DataLoader[Any, Any], Any]]]


async def prefetch(info: Info, rows: Sequence[Any], fields: Mapping[str, Loads]) -> None:
    """For every row of the page that `info`'s field returns (a connection), the loads of each field of
    `fields` its nodes select, under `nodes` or `edges { node }`. A load that fails is left to the
    row's field, which loads its key itself, meets the failure and reports it at its own path."""
    wanted: dict[int, tuple[DataLoader[Any, Any], list[Any]]] = {}
    for name, arguments in _node_fields(info._raw_info):
        loads = fields.get(name)
        if loads is None:
            continue
        for row in rows:
            for loader, key in loads(info.context.loaders, row, arguments):
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


def _node_fields(info: GraphQLResolveInfo) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each field that the nodes of the connection `info`'s field returns select."""
    connection = get_named_type(info.return_type)
    if not isinstance(connection, GraphQLObjectType) or "nodes" not in connection.fields:
        return
    node = get_named_type(connection.fields["nodes"].type)
    edge = get_named_type(connection.fields["edges"].type) if "edges" in connection.fields else None
    walk = _Selections(info)
    for field in walk.fields([n.selection_set for n in info.field_nodes], connection):
        if field.name.value == "nodes":
            node_sets = [field.selection_set]
        elif field.name.value == "edges" and edge is not None:
            node_sets = [f.selection_set for f in walk.fields([field.selection_set], edge) if f.name.value == "node"]
        else:
            continue
        for selected in walk.fields(node_sets, node):
            arguments = walk.arguments(node, selected)
            if arguments is not None:
                yield selected.name.value, arguments


class _Selections:
    """The fields of selection sets as execution collects them: fragments spread where their type
    condition holds, @skip and @include applied, arguments coerced with the operation's variables."""

    def __init__(self, info: GraphQLResolveInfo) -> None:
        self.info = info
        # Strawberry gives resolvers the coerced values alone (graphql-core its whole container), and
        # argument coercion reads nothing else of them.
        given: Any = info.variable_values
        self.variables = VariableValues({}, getattr(given, "coerced", given))

    def fields(self, selection_sets: Iterable[SelectionSetNode | None], parent: GraphQLNamedType) -> Iterator[FieldNode]:
        for selection_set in selection_sets:
            for selection in selection_set.selections if selection_set is not None else ():
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    yield selection
                elif isinstance(selection, InlineFragmentNode):
                    if self._applies(selection.type_condition.name.value if selection.type_condition else None, parent):
                        yield from self.fields([selection.selection_set], parent)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.info.fragments.get(selection.name.value)
                    if fragment is not None and self._applies(fragment.type_condition.name.value, parent):
                        yield from self.fields([fragment.selection_set], parent)

    def arguments(self, parent: GraphQLNamedType, field: FieldNode) -> dict[str, Any] | None:
        definition = getattr(parent, "fields", {}).get(field.name.value)
        if definition is None:
            return None  # __typename
        try:
            return get_argument_values(definition, field, self.variables)
        except GraphQLError:
            return None  # execution refuses them itself, with its own error

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip["if"] is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return include is None or include["if"] is not False

    def _applies(self, condition: str | None, parent: GraphQLNamedType) -> bool:
        if condition is None or condition == parent.name:
            return True
        named = self.info.schema.get_type(condition)
        return is_abstract_type(named) and self.info.schema.is_sub_type(named, parent)
