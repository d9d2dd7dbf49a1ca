"""The GraphQL schema: queries, mutations, and the guards around them (depth, aliases, tokens,
masking of unexpected errors)."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext

from app.errors import DomainError
from app.graphql.errors import ConflictError, IdentityProviderManagedError, NotFoundError, PermissionDeniedError, ValidationError
from app.graphql.mutations import Mutation
from app.graphql.queries import Query

logger = logging.getLogger("scimgraph.graphql")

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


def _expected(error: GraphQLError) -> bool:
    """Errors the caller may see: GraphQL's own (syntax, validation, limits) and domain errors
    such as a missing read permission. Anything else is a bug and is masked."""
    original = error.original_error
    return original is None or isinstance(original, (DomainError, GraphQLError))


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _expected(error):
                continue
            logger.error("unexpected GraphQL error at %s", error.path, exc_info=error.original_error)


def _add_codes(error: GraphQLError) -> bool:
    original = error.original_error
    if isinstance(original, DomainError) and error.extensions is not None:
        error.extensions.setdefault("code", type(original).__name__)
    return not _expected(error)


schema = _Schema(
    query=Query,
    mutation=Mutation,
    types=[ValidationError, ConflictError, NotFoundError, PermissionDeniedError, IdentityProviderManagedError],
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=_add_codes, error_message="Internal error; it has been logged with the request id."),
    ],
)
