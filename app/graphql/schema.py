"""The GraphQL schema: queries, mutations, and the guards around them (depth, aliases, tokens, cost,
optionally no introspection, masking of unexpected errors)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import SKIP, FieldNode, GraphQLError, ValidationRule, VisitorAction
from strawberry.extensions import AddValidationRules, MaskErrors, MaxTokensLimiter, ParserCache, SchemaExtension, ValidationCache
from strawberry.types import ExecutionContext

from app.db.engine import classify
from app.errors import DomainError
from app.graphql.context import Context
from app.graphql.cost import Limits, OperationLimiter
from app.graphql.direct import call_directly
from app.graphql.errors import ConflictError, IdentityProviderManagedError, NotFoundError, PermissionDeniedError, ValidationError
from app.graphql.execution import Executor
from app.graphql.mutations import Mutation
from app.graphql.queries import Query
from app.settings import DEFAULT_GRAPHQL_COST_BUDGET

logger = logging.getLogger("scimgraph.graphql")

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
# An admin UI sends the same few documents again and again: each is parsed and validated once.
DOCUMENT_CACHE_SIZE = 256


def _expected(error: GraphQLError) -> bool:
    """Errors the caller may see: GraphQL's own (syntax, validation, limits) and domain errors
    such as a missing read permission. Anything else is a bug and is masked."""
    original = error.original_error
    return original is None or isinstance(original, (DomainError, GraphQLError))


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log what is a bug; note a database failure on the request's context instead (before the
        errors are masked), so the endpoint retries the transaction or answers 503 — never commits
        what remains and answers 200 with a masked error."""
        context = execution_context.context if execution_context is not None else None
        for error in errors:
            if _expected(error):
                continue
            if isinstance(context, Context) and error.original_error is not None and classify(error.original_error) is not None:
                context.database_error = context.database_error or error.original_error
                continue
            logger.error("unexpected GraphQL error at %s", error.path, exc_info=error.original_error)


def _add_codes(error: GraphQLError) -> bool:
    original = error.original_error
    if isinstance(original, DomainError) and error.extensions is not None:
        error.extensions.setdefault("code", type(original).__name__)
    return not _expected(error)


class _NoIntrospection(ValidationRule):
    """Refuses `__schema` and `__type` with one error each (graphql-core's own rule reports every
    field below them too). `__typename` stays: clients rely on it to tell union members apart."""

    def enter_field(self, node: FieldNode, *_: object) -> VisitorAction:
        if node.name.value not in ("__schema", "__type"):
            return None
        message = f"Introspection is turned off on this server: {node.name.value} is not available."
        self.report_error(GraphQLError(message, node, extensions={"code": "INTROSPECTION_DISABLED"}))
        return SKIP


def build_schema(
    *, introspection: bool = True, cost_budget: int = DEFAULT_GRAPHQL_COST_BUDGET, tracer_provider: Any = None
) -> strawberry.Schema:
    """The schema with its guards. `introspection=False` refuses `__schema` and `__type`, for a
    production server whose clients are known; the SDL stays available from `export-schema`. With a
    `tracer_provider` (app/tracing.py), operations are traced — without their arguments, which carry
    emails and names."""
    limits = Limits(max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, budget=cost_budget)
    guards: list[Callable[[], SchemaExtension]] = [lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS)]
    if not introspection:
        guards.append(lambda: AddValidationRules([_NoIntrospection]))
    if tracer_provider is not None:
        from app.graphql.tracing import Tracing

        guards.append(lambda: Tracing(tracer_provider=tracer_provider, arg_filter=lambda args, info: {}))
    schema = _Schema(
        query=Query,
        mutation=Mutation,
        types=[ValidationError, ConflictError, NotFoundError, PermissionDeniedError, IdentityProviderManagedError],
        execution_context_class=Executor,
        extensions=[
            *guards,
            lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
            lambda: OperationLimiter(limits),
            lambda: MaskErrors(should_mask_error=_add_codes, error_message="Internal error; it has been logged with the request id."),
        ],
    )
    call_directly(schema)
    return schema


schema = build_schema()
