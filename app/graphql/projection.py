"""The columns a list of users or groups reads: those that the fields its nodes select are made of.

A page of users or groups, a user's groups and a group's members are read as rows of every column,
and most of a row's values are often never shown: `users(first: 50) { nodes { id userName groups(first: 5)
{ nodes { id name } } } }` shows 2 of a user's 37 values and 2 of a group's 16, and the driver decoded
all of them (timestamps, JSON documents): about half of the driver's work for such a page, and a fifth
to a half of the database's (bench/README.md). A list resolver reads of its rows only the columns named here for the fields
its nodes select, with the fragments, @skip and @include of the operation applied; its rows answer the
other columns with None (`services.common.as_whole_rows`), so every row keeps its shape and `from_row`
reads it as before.

Each node type names, per GraphQL field, the columns its value is made of (`register`, next to the type's
`from_row`), and the columns every node needs whatever it selects (its key, what `from_row` converts, the
list's order for its cursors). A field without an entry, or a node type without a table of fields, reads
every column: a field added without its entry is still served right, only without the saving.

The shapes kept per node type are bounded (`MAX_SHAPES`): each shape is statements of its own, prepared
on every connection, and clients choose the fields; a shape beyond the bound reads every column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

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

from app.services.common import Columns

MAX_SHAPES = 16  # column sets kept per node type; beyond them a list reads whole rows

# Node type name -> (GraphQL field -> the columns its value is made of, the columns every node reads).
_FIELDS: dict[str, tuple[Mapping[str, tuple[str, ...]], frozenset[str]]] = {}
_SHAPES: dict[str, set[frozenset[str]]] = {}
_UNKNOWN: Any = object()  # not in the request's cache yet (None is an answer: every column)


def register(type_name: str, fields: Mapping[str, tuple[str, ...]], always: Iterable[str]) -> None:
    """Declare the columns of each field of the node type `type_name`, and those every node reads."""
    _FIELDS[type_name] = (fields, frozenset(always))
    _SHAPES.setdefault(type_name, set())


def registered(type_name: str) -> Mapping[str, tuple[str, ...]]:
    """The fields' columns that `register` gave for `type_name` (empty when none)."""
    return _FIELDS.get(type_name, ({}, frozenset()))[0]


def node_type(connection: GraphQLNamedType) -> GraphQLObjectType | None:
    """The node type of a connection type (one with `nodes`), else None."""
    if not isinstance(connection, GraphQLObjectType) or "nodes" not in connection.fields:
        return None
    node = get_named_type(connection.fields["nodes"].type)
    return node if isinstance(node, GraphQLObjectType) else None


def columns(info: GraphQLResolveInfo, cache: dict[Any, Columns]) -> Columns:
    """The columns that the nodes of the connection `info`'s field returns read, or None for every
    column. `cache` is the request's: each row of a page asks again for its own nested list, with the
    same field nodes."""
    return columns_of(info, cache, info.return_type, info.field_nodes)


def columns_of(info: GraphQLResolveInfo, cache: dict[Any, Columns], connection: Any, field_nodes: Sequence[FieldNode]) -> Columns:
    """`columns` of the connection type `connection` (wrapped or not) that `field_nodes` select within
    `info`'s operation. The field nodes tell the field, and so its type: they alone are the key."""
    key = tuple(map(id, field_nodes))
    found = cache.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        found = cache[key] = _columns(Selections(info), get_named_type(connection), field_nodes)
    return found


def _columns(walk: Selections, connection: GraphQLNamedType, field_nodes: Sequence[FieldNode]) -> Columns:
    node = node_type(connection)
    if node is None or node.name not in _FIELDS:
        return None
    fields, always = _FIELDS[node.name]
    needed = set(always)
    for selected in node_fields(walk, connection, field_nodes):
        made_of = fields.get(selected.name.value)
        if made_of is None:
            return None
        needed.update(made_of)
    shape = frozenset(needed)
    shapes = _SHAPES[node.name]
    if shape not in shapes:
        if len(shapes) >= MAX_SHAPES:
            return None
        shapes.add(shape)
    return shape


def node_fields(walk: Selections, connection: GraphQLNamedType, field_nodes: Sequence[FieldNode]) -> Iterator[FieldNode]:
    """Each field that the nodes of the connection selected by `field_nodes` select, under `nodes` or
    `edges { node }`, as execution collects them."""
    node = node_type(connection)
    if node is None:
        return
    assert isinstance(connection, GraphQLObjectType)
    edge = get_named_type(connection.fields["edges"].type) if "edges" in connection.fields else None
    for field in walk.fields([n.selection_set for n in field_nodes], connection):
        if field.name.value == "nodes":
            node_sets = [field.selection_set]
        elif field.name.value == "edges" and edge is not None:
            node_sets = [f.selection_set for f in walk.fields([field.selection_set], edge) if f.name.value == "node"]
        else:
            continue
        yield from walk.fields(node_sets, node)


class Selections:
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
