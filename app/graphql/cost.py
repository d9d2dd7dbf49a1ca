"""What a GraphQL operation may cost, worked out before it runs: its depth, its aliases, and the nodes
its pages may return, each with a limit.

The depth, alias and token limits bound the *text* of a query, not its *result*: four nested pages of
100 (users → groups → members → groups) fit in 120 characters yet ask for 100 million rows. So,
like GitHub's node limit, every paginated field counts the nodes it may return: its page size
(`first`, or the default page when omitted, capped as the resolver caps it) times the page sizes of
every paginated field above it. The sum over the operation — fragments, inline fragments and
aliases included, variables resolved as execution will resolve them — must stay within the budget
(GRAPHQL_COST_BUDGET, by default 10,000 nodes; see app/settings.py).

Paginated fields are found in the schema (any field taking a `first` argument), so new connections
are costed without being listed here. The count is an upper bound: fields under `@skip`/`@include`
and selections that GraphQL would merge are counted every time they are written.

Depth and aliases are measured in the same walk. A fragment is measured once and reused wherever it
is spread, so forty fragments each spreading the next twice (2**40 paths, a few hundred characters)
take forty steps — walking every path, as strawberry's QueryDepthLimiter and MaxAliasesLimiter do,
would never finish. The walk recurses once per nesting level, which graphql-core caps at 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.language import DocumentNode
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from app.graphql.pagination import page_size

PAGE_ARGUMENT = "first"
TOO_COSTLY = "QUERY_TOO_COSTLY"
TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
_META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef, "__typename": TypeNameMetaFieldDef}


@dataclass(frozen=True, slots=True)
class Measure:
    """nodes: what the pages may return. depth: object fields nested in one another, introspection
    not counted (as strawberry's QueryDepthLimiter counts). aliases: aliased fields, as written."""

    nodes: int = 0
    depth: int = 0
    aliases: int = 0

    def __add__(self, other: Measure) -> Measure:
        """Two selections side by side: their nodes and aliases add up, the deeper one counts."""
        return Measure(self.nodes + other.nodes, max(self.depth, other.depth), self.aliases + other.aliases)


class _Walker:
    """Measures one validated document. Nodes are linear in the page sizes above a selection, so a
    fragment measured for a multiplier of one is valid wherever it is spread."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: VariableValues) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.measured: dict[str, Measure] = {}

    def selection_set(self, node: SelectionSetNode | None, parent: GraphQLNamedType | None) -> Measure:
        total = Measure()
        for selection in node.selections if node is not None else ():
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = self.schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
                total += self.selection_set(selection.selection_set, condition)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return total

    def _fragment(self, name: str) -> Measure:
        if name not in self.measured:
            self.measured[name] = Measure()  # validation refuses fragment cycles; this only keeps the walk finite
            definition = self.fragments.get(name)
            if definition is not None:
                condition = self.schema.get_type(definition.type_condition.name.value)
                self.measured[name] = self.selection_set(definition.selection_set, condition)
        return self.measured[name]

    def _field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        name = node.name.value
        definition = _META_FIELDS.get(name) or getattr(parent, "fields", {}).get(name)
        alias = 1 if node.alias else 0
        if definition is None:
            return Measure(aliases=alias)  # not in the schema: validation has already refused it
        below = self.selection_set(node.selection_set, get_named_type(definition.type))
        if name.startswith("__"):
            return Measure(aliases=alias + below.aliases)  # introspection: no pages, and its depth is the schema's
        depth = 1 + below.depth if node.selection_set else 0
        size = self._page_size(definition, node) if PAGE_ARGUMENT in definition.args else None
        nodes = below.nodes if size is None else size + size * below.nodes
        return Measure(nodes=nodes, depth=depth, aliases=alias + below.aliases)

    def _page_size(self, definition: GraphQLField, node: FieldNode) -> int:
        """The page the resolver will fetch: `first` read as execution reads it, then capped alike."""
        return page_size(get_argument_values(definition, node, self.variables).get(PAGE_ARGUMENT))


def measure_operation(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None = None, variables: dict[str, Any] | None = None
) -> Measure | None:
    """The measure of the operation a validated document runs (the named one, or its only one).
    None when there is nothing to measure: no such operation, or variables that do not coerce —
    execution refuses those itself, with its own error, before any field runs."""
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if not isinstance(coerced, VariableValues):
        return None
    return _Walker(schema, document, coerced).selection_set(operation.selection_set, schema.get_root_type(operation.operation))


# The measures of operations without variables, which depend on their document alone: an admin UI
# sends the same few documents again and again, and the document cache gives back the same object
# for the same text. Each entry holds its schema and document, so an id reused by another object
# never finds it; the whole table is dropped when it is full.
_MEASURED: dict[tuple[int, int, str | None], tuple[GraphQLSchema, DocumentNode, Measure | None]] = {}
MEASURED_DOCUMENTS = 256


def measure_once(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None = None, variables: dict[str, Any] | None = None
) -> Measure | None:
    """`measure_operation`, measured once per document when the operation is given no variables."""
    if variables:
        return measure_operation(schema, document, operation_name, variables)
    key = (id(schema), id(document), operation_name)
    kept = _MEASURED.get(key)
    if kept is not None and kept[0] is schema and kept[1] is document:
        return kept[2]
    measure = measure_operation(schema, document, operation_name)
    if len(_MEASURED) >= MEASURED_DOCUMENTS:
        _MEASURED.clear()
    _MEASURED[key] = (schema, document, measure)
    return measure


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    budget: int

    def errors(self, measure: Measure, operation_name: str | None) -> list[GraphQLError]:
        """One error per limit the operation goes over, each naming the measure and the limit."""
        errors = []
        if measure.depth > self.max_depth:
            errors.append(
                GraphQLError(
                    f"'{operation_name or 'anonymous'}' exceeds maximum operation depth of {self.max_depth}",
                    extensions={"code": TOO_DEEP, "depth": measure.depth, "maxDepth": self.max_depth},
                )
            )
        if measure.aliases > self.max_aliases:
            errors.append(
                GraphQLError(
                    f"{measure.aliases} aliases found. Allowed: {self.max_aliases}",
                    extensions={"code": TOO_MANY_ALIASES, "aliases": measure.aliases, "maxAliases": self.max_aliases},
                )
            )
        if measure.nodes > self.budget:
            errors.append(
                GraphQLError(
                    f"This operation may return up to {measure.nodes} nodes, over the budget of {self.budget}: "
                    "ask for smaller pages (first) or fewer nested connections.",
                    extensions={"code": TOO_COSTLY, "cost": measure.nodes, "budget": self.budget},
                )
            )
        return errors


class OperationLimiter(SchemaExtension):
    """Refuses an operation over a limit before any resolver runs (so before any SQL), and reports
    the cost of every operation under `extensions.cost` of the response."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.measure: Measure | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            self.measure = measure_once(context.schema._schema, context.graphql_document, context.operation_name, context.variables)
            if self.measure is not None and (errors := self.limits.errors(self.measure, context.operation_name)):
                # A result set before execution is used as is: graphql-core's execute is never called.
                context.result = GraphQLExecutionResult(data=None, errors=errors)
        yield

    def get_results(self) -> dict[str, Any]:
        if self.measure is None:
            return {}
        return {"cost": {"requested": self.measure.nodes, "budget": self.limits.budget}}
