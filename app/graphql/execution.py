"""The executor of GraphQL operations: graphql-core's, with a short way for plain leaf fields.

A page of 50 users with 5 groups each is some 700 fields, and most of them are leaves read straight
off an object (`id`, `name`): no resolver of ours, no arguments, a scalar or an enum. graphql-core
runs each of them through its whole field machinery — a path, a resolve-info object of 15 entries,
the resolver wrapper, the awaitable checks, the completion's type dispatch. Here a plain leaf is read
and coerced directly, with the very resolver and output coercion the long way uses, so the answer is
the same; anything else about it (a null where the schema forbids one, a value the scalar refuses, an
exception) goes the long way, which reports it as it always has. It saves a few per cent of a list's
CPU (bench/README.md); the fields with resolvers are the rest of graphql-core's share.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLField, GraphQLLeafType, GraphQLNonNull, GraphQLObjectType, get_nullable_type, is_leaf_type
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_NOT_PLAIN: tuple[GraphQLLeafType | None, bool] = (None, False)


class Executor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per field of the schema met in this operation, by identity (the schema holds every field
        # for as long as the operation runs): its leaf type and whether it may be null, or
        # (None, False) when it is not a plain leaf.
        self._plain: dict[int, tuple[GraphQLLeafType | None, bool]] = {}

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any, position_context: Any) -> Any:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        if field_def is not None:
            leaf, nullable = self._plain.get(id(field_def)) or self._classify(field_def)
            if leaf is not None:
                try:
                    value = field_def.resolve(source, None)  # type: ignore[misc]
                    if value is None:
                        if nullable:
                            return None
                    elif not isinstance(value, Exception):
                        return self.complete_leaf_value(leaf, value)
                except Exception:
                    pass  # the long way below meets it again, and reports it with its path and location
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _classify(self, field_def: GraphQLField) -> tuple[GraphQLLeafType | None, bool]:
        """A plain leaf: Strawberry's attribute read (a field without a resolver, marked `_is_default`),
        no arguments, a scalar or enum type, and no extension that wraps resolvers in this operation."""
        kind: tuple[GraphQLLeafType | None, bool] = _NOT_PLAIN
        resolve = field_def.resolve
        if resolve is not None and getattr(resolve, "_is_default", False) and not field_def.args and not self._wrapped(resolve):
            nullable = not isinstance(field_def.type, GraphQLNonNull)
            leaf = get_nullable_type(field_def.type)
            if is_leaf_type(leaf):
                kind = (leaf, nullable)
        self._plain[id(field_def)] = kind
        return kind

    def _wrapped(self, resolve: Any) -> bool:
        """Whether an extension of this operation wraps resolvers (OpenTelemetry's, say)."""
        return self.middleware_manager is not None and self.middleware_manager.get_field_resolver(resolve) is not resolve
