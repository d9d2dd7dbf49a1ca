"""Our own resolvers, called without Strawberry's wrapper around each call.

Strawberry wraps every resolver in a function that, on each call, makes an `Info`, converts every
argument from its GraphQL value to its Python one (looking up the argument's GraphQL name, walking
its type), runs the field's extensions and exception handlers, and only then calls the function. For
a field whose arguments are plain scalars (`first: Int`, `after: String`) the conversion gives back
the very values graphql-core passed in, and our fields have no extensions; yet on a page of 50 users
that each select `groups(first: 5)`, the wrapper was about a fifth of the request's CPU
(bench/README.md).

`call_directly` gives such fields a resolver that makes the `Info` and calls the function itself,
with the arguments renamed to their Python names: what the wrapper does for them, without the rest.
Any field it cannot vouch for keeps Strawberry's resolver: one with extensions (permission classes,
the mutations' `Mutating`), an argument of any other type (enums, inputs, lists, Relay's global
ids, which Strawberry decodes), a resolver asking for `root` or `parent`, the fields of the root types, and every field of
a schema with exception handlers. graphql-core still runs the resolver as it runs any other:
middleware (tracing) wraps it, and its errors are reported at the field as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import strawberry
from graphql import GraphQLObjectType
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryOptional
from strawberry.types.field import StrawberryField

# Marks a direct resolver whose function is not a coroutine function: app/graphql/execution.py may
# call it within a plan (a read of our own, which gives back a value, or an awaitable the plan leaves).
SYNCHRONOUS = "_synchronous_direct_resolver"

# Argument types whose Python value is the value graphql-core gives (Strawberry's conversion returns it unchanged).
_PLAIN_ARGUMENTS: tuple[object, ...] = (int, str, bool, float, strawberry.ID)


def call_directly(schema: strawberry.Schema) -> None:
    """Give each field of `schema` that qualifies (see the module's docstring) a direct resolver."""
    if schema.exception_handlers:
        return
    core = schema._schema
    roots = {root for root in (core.query_type, core.mutation_type, core.subscription_type) if root is not None}
    for graphql_type in core.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type in roots or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if isinstance(definition, StrawberryField):
                resolve = _direct(definition, schema)
                if resolve is not None:
                    field.resolve = resolve


def _direct(field: StrawberryField, schema: strawberry.Schema) -> Callable[..., Any] | None:
    resolver = field.base_resolver
    if resolver is None or field.extensions or resolver.root_parameter is not None or resolver.parent_parameter is not None:
        return None
    if not all(_plain(argument.type) for argument in field.arguments):
        return None
    names = {schema.config.name_converter.from_argument(argument): argument.python_name for argument in field.arguments}
    function = cast(Callable[..., Any], resolver.wrapped_func)
    with_self = resolver.self_parameter is not None
    info_parameter = resolver.info_parameter
    info_name = info_parameter.name if info_parameter is not None else None
    info_class = cast(Callable[..., Any], schema.config.info_class)  # Info(_raw_info=…, _field=…)

    def resolve(source: Any, info: Any, **arguments: Any) -> Any:
        kwargs = {names[name]: value for name, value in arguments.items()}
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return function(source, **kwargs) if with_self else function(**kwargs)

    setattr(resolve, SYNCHRONOUS, not field.is_async)
    return resolve


def _plain(argument_type: object) -> bool:
    if isinstance(argument_type, StrawberryOptional):
        argument_type = argument_type.of_type
    return any(argument_type is plain for plain in _PLAIN_ARGUMENTS)
