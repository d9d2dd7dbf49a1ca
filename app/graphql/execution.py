"""The executor of GraphQL operations: graphql-core's, with short ways for what is read straight off objects.

A page of 50 users with 5 groups each is some 700 fields, and most of them are leaves read straight
off an object (`id`, `name`): no resolver of ours, no arguments, a scalar or an enum. graphql-core
runs each of them through its whole field machinery — a path, a resolve-info object of 15 entries,
the resolver wrapper, the awaitable checks, the completion's type dispatch — and each object and
list through its completion too. Two short ways, each reading and coercing as the long way does,
so that the answer is the same:

- a plain leaf (Strawberry's attribute read, no arguments, a scalar or an enum) is read and coerced
  directly (`execute_field`);
- a value whose whole selection is plain — leaves, `__typename`, objects and lists reached by plain
  attribute reads, and fields of our own synchronous resolvers (app/graphql/direct.py), such as a
  page of users with their `groups(first: 5) { nodes { id name } }` — is completed in one pass by a
  plan made once per selection (`complete_value`). A plan gives a string in a String or ID field
  as it is (what their serialisation gives back for one), and makes a field's path only where a
  resolver or an object below needs it.

Both read a plain field with the schema's default resolver itself (`getattr`, unless the schema has
another), not through Strawberry's wrapper around it (`_plain_reader`).

Anything else about a value (a null where the schema forbids one, a value a scalar refuses, a value
of the wrong shape, an exception, a resolver answering an awaitable) goes the long way, which reports
it as it always has. A plan reads attributes and calls resolvers of ours that only read (the loaders'
values of a page, loaded ahead), so the long way, calling them again, gets the same values: starting
over costs nothing but time. bench/README.md has what each saves.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Coroutine
from inspect import isawaitable
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    GraphQLString,
    get_nullable_type,
    is_leaf_type,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from app.graphql.direct import SYNCHRONOUS

_LONG_WAY: Any = object()  # what a plan answers for a value it leaves to graphql-core
Plan = Callable[[Any, Any], Any]  # (a value, its path) → its completed form, or _LONG_WAY
Read = Callable[[Any], Any]  # a plain field's value on an object
_NOT_PLAIN: tuple[GraphQLLeafType | None, bool, Read | None] = (None, False, None)


class Executor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core's helpers for resolvers are the executor's own bound methods, which it holds: a
        # cycle, which kept the executor — and through it the operation's context, session, loaders
        # and every row they read — until the cyclic garbage collector ran (bench/README.md). The same
        # helpers, holding the executor weakly: it is freed when the operation ends. (Anything that
        # calls them runs inside the operation, whose frames hold the executor.)
        executor = weakref.proxy(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: executor.gather_async_work(values), track=lambda values: executor.track_async_work(values)
        )
        # Per field of the schema met in this operation, by identity (the schema holds every field
        # for as long as the operation runs): its leaf type, whether it may be null and how it is
        # read, or (None, False, None) when it is not a plain leaf.
        self._plain: dict[int, tuple[GraphQLLeafType | None, bool, Read | None]] = {}
        # Per (type, selection) met in this operation: the selection (kept alive, so that its id is
        # not reused) and its plan, or None when some field of it is not plain.
        self._plans: dict[tuple[int, int], tuple[Any, Plan | None]] = {}

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any, position_context: Any) -> Any:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        if field_def is not None:
            leaf, nullable, read = self._plain.get(id(field_def)) or self._classify(field_def)
            if leaf is not None and read is not None:
                try:
                    value = read(source)
                    if value is None:
                        if nullable:
                            return None
                    elif not isinstance(value, Exception):
                        return self.complete_leaf_value(leaf, value)
                except Exception:
                    pass  # the long way below meets it again, and reports it with its path and location
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _classify(self, field_def: GraphQLField) -> tuple[GraphQLLeafType | None, bool, Read | None]:
        """A plain leaf: a plain read (see `_plain_reader`) of a scalar or enum type."""
        kind = _NOT_PLAIN
        read = self._plain_reader(field_def)
        if read is not None:
            nullable = not isinstance(field_def.type, GraphQLNonNull)
            leaf = get_nullable_type(field_def.type)
            if is_leaf_type(leaf):
                kind = (leaf, nullable, read)
        self._plain[id(field_def)] = kind
        return kind

    def _plain_reader(self, field_def: GraphQLField) -> Read | None:
        """How to read a field that is Strawberry's attribute read (a field without a resolver, marked
        `_is_default`), with no arguments and no extension that wraps resolvers in this operation; None
        for any other field. Strawberry's resolver of such a field calls the schema's default
        resolver, by default `getattr`, with the attribute's name: that one is called directly."""
        resolve = field_def.resolve
        if resolve is None or not getattr(resolve, "_is_default", False) or field_def.args or self._wrapped(resolve):
            return None
        definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if isinstance(definition, StrawberryField) and definition.default_resolver is getattr and definition.python_name:
            return attrgetter(definition.python_name)
        return lambda value: resolve(value, None)

    def _wrapped(self, resolve: Any) -> bool:
        """Whether an extension of this operation wraps resolvers (OpenTelemetry's, say)."""
        return self.middleware_manager is not None and self.middleware_manager.get_field_resolver(resolve) is not resolve

    def complete_value(
        self, return_type: GraphQLOutputType, field_details_list: Any, info: Any, path: Any, result: Any, position_context: Any
    ) -> Any:
        key = (id(return_type), id(field_details_list))
        planned = self._plans.get(key)
        if planned is None:
            planned = self._plans[key] = (field_details_list, self._plan(return_type, field_details_list))
        plan = planned[1]
        if plan is not None:
            try:
                completed = plan(result, path)
            except Exception:
                completed = _LONG_WAY  # the long way meets it again, and reports it with its path and location
            if completed is not _LONG_WAY:
                return completed
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)

    def _plan(self, return_type: GraphQLOutputType, field_details_list: Any) -> Plan | None:
        """How to complete a value of `return_type` selected by `field_details_list` in one pass, or
        None when its selection holds anything but plain fields and synchronous direct resolvers."""
        nullable = not isinstance(return_type, GraphQLNonNull)
        inner = get_nullable_type(return_type)
        if is_leaf_type(inner):
            complete_leaf = self.complete_leaf_value

            def leaf(value: Any, path: Any) -> Any:
                if value is None or isinstance(value, Exception):
                    return None if nullable and value is None else _LONG_WAY
                return complete_leaf(inner, value)

            if inner is not GraphQLString and inner is not GraphQLID:
                return leaf

            def text(value: Any, path: Any) -> Any:
                # What String's and ID's serialisation gives back for a string: the string itself.
                return value if type(value) is str else leaf(value, path)

            return text
        if isinstance(inner, GraphQLList):
            if any(directive.name.value == "stream" for details in field_details_list for directive in details.node.directives or ()):
                return None  # streamed item by item, which only the long way does
            item = self._plan(inner.of_type, field_details_list)
            if item is None:
                return None

            def items(value: Any, path: Any) -> Any:
                if not isinstance(value, (list, tuple)):
                    return None if nullable and value is None else _LONG_WAY
                completed = []
                for index, element in enumerate(value):
                    done = item(element, Path(path, index, None))
                    if done is _LONG_WAY:
                        return _LONG_WAY
                    completed.append(done)
                return completed

            return items
        if not isinstance(inner, GraphQLObjectType) or inner.is_type_of is not None:
            return None
        fields = self._planned_fields(inner, field_details_list)
        if fields is None:
            return None
        typename = inner.name

        def whole(value: Any, path: Any) -> Any:
            if value is None or isinstance(value, Exception):
                return None if nullable and value is None else _LONG_WAY
            # Every field read before any is completed: a resolver answering an awaitable (a list's
            # total, counted when asked) sends the value the long way before its nodes are completed.
            read = []
            for response_name, reader, sub, needs_path in fields:
                field_path = Path(path, response_name, typename) if needs_path else None
                read_value = reader(value, field_path)
                if read_value is _LONG_WAY:
                    return _LONG_WAY
                read.append((response_name, read_value, sub, field_path))
            completed = {}
            for response_name, read_value, sub, field_path in read:
                done = sub(read_value, field_path)
                if done is _LONG_WAY:
                    return _LONG_WAY
                completed[response_name] = done
            return completed

        return whole

    def _planned_fields(self, parent: GraphQLObjectType, field_details_list: Any) -> list[tuple[str, Plan, Plan, bool]] | None:
        """(response name, how to read the field off a value, how to complete what it reads, whether
        either needs the field's path) for each field the selection asks of `parent`, or None when one
        of them cannot be planned. A leaf read without a resolver of ours needs no path: only a
        resolver's info and the plans of objects below (for their resolvers) use it."""
        grouped, defers, forbidden = self.collect_subfields(parent, field_details_list)
        if defers or forbidden:
            return None
        fields: list[tuple[str, Plan, Plan, bool]] = []
        for response_name, details in grouped.items():
            node = details[0].node
            field_def = self.schema.get_field(parent, node.name.value)
            if field_def is None:
                return None
            read, calls = self._reader(parent, field_def, details)
            sub = self._plan(field_def.type, details) if read is not None else None
            if read is None or sub is None:
                return None
            fields.append((response_name, read, sub, calls or not is_leaf_type(get_nullable_type(field_def.type))))
        return fields

    def _reader(self, parent: GraphQLObjectType, field_def: GraphQLField, details: Any) -> tuple[Plan | None, bool]:
        """How a plan reads a field off a value — `__typename`, a plain read, or a synchronous resolver
        of app/graphql/direct.py called as the long way calls it, with the same resolve info (for the
        field's path in this row) and arguments — and whether it is such a call; (None, False) for
        any other field."""
        node = details[0].node
        if node.name.value == "__typename":
            typename = parent.name
            return (lambda value, path: typename), False
        resolve = field_def.resolve
        if resolve is None or self._wrapped(resolve):
            return None, False
        read = self._plain_reader(field_def)
        if read is not None:
            return (lambda value, path: read(value)), False
        if not getattr(resolve, SYNCHRONOUS, False):
            return None, False
        try:
            arguments = get_argument_values(
                field_def, node, self.variable_values, details[0].fragment_variable_values, self.hide_suggestions
            )
        except GraphQLError:
            return None, False  # the long way reports it
        nodes = [d.node for d in details]
        executor = weakref.proxy(self)  # the plan is the executor's: holding it strongly would make a cycle

        def call(value: Any, path: Any) -> Any:
            result = resolve(value, executor.build_resolve_info(field_def, nodes, parent, path), **arguments)
            if isinstance(result, Coroutine):
                result.close()  # not started: the long way calls the resolver again, and awaits what it gets
                return _LONG_WAY
            return _LONG_WAY if isawaitable(result) else result

        return call, True
