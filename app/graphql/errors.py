"""Expected errors are part of the schema: each mutation returns a union of its success type and
these. One table maps domain errors to them; refusals are written to the audit log as DENIED."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from strawberry.extensions import FieldExtension

from app import errors
from app.errors import Conflict, DomainError, InvalidInput, ManagedByIdentityProvider, NotFound, PermissionDenied
from app.graphql.context import Context
from app.services import audit

T = TypeVar("T")


@strawberry.interface(description="Every expected error result has a message for the admin.")
class Error:
    message: str


@strawberry.type(description="An input value is invalid; `field` names it.")
class ValidationError(Error):
    field: str | None


@strawberry.type(description="The change would break a uniqueness rule.")
class ConflictError(Error):
    field: str | None


@strawberry.type(description="Something named in the input does not exist in this account.")
class NotFoundError(Error):
    resource_type: str
    resource_id: str


@strawberry.type(description="The token lacks a permission.")
class PermissionDeniedError(Error):
    permission: str


GuardedOperation = strawberry.enum(
    errors.GuardedOperation, description="A change that the identity provider owns for some users and groups."
)


@strawberry.type(description="The identity provider owns what the mutation tried to change; make the change there.")
class IdentityProviderManagedError(Error):
    resource_type: str
    resource_id: str
    operation: GuardedOperation  # type: ignore[valid-type]


def to_error_type(exc: DomainError) -> Error:
    if isinstance(exc, ManagedByIdentityProvider):
        return IdentityProviderManagedError(
            message=exc.message, resource_type=exc.resource_type, resource_id=exc.resource_id, operation=exc.operation
        )
    if isinstance(exc, PermissionDenied):
        return PermissionDeniedError(message=exc.message, permission=exc.permission)
    if isinstance(exc, NotFound):
        return NotFoundError(message=exc.message, resource_type=exc.resource_type, resource_id=exc.resource_id)
    if isinstance(exc, Conflict):
        return ConflictError(message=exc.message, field=_camel(exc.field))
    if isinstance(exc, InvalidInput):
        return ValidationError(message=exc.message, field=_camel(exc.field))
    raise exc


def _camel(name: str | None) -> str | None:
    if name is None:
        return None
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


async def run_mutation(
    context: Context, *, action: str, resource_type: str, resource_id: str | None, work: Callable[[], Awaitable[T]]
) -> T | Any:
    """Run `work` in a savepoint. A domain error undoes everything it did and becomes the matching
    error result; refusals (permission, identity-provider ownership) are audited as DENIED."""
    async with context.exclusive():
        try:
            async with context.session.begin_nested():
                return await work()
        except DomainError as exc:
            if isinstance(exc, audit.REFUSALS):
                context.request.app.state.metrics.denied_mutations.inc()
                await audit.record_refusal(
                    context.session, context.caller, exc, action=action, resource_type=resource_type, resource_id=resource_id
                )
            return to_error_type(exc)


class Mutating(FieldExtension):
    """How every mutation runs: its resolver returns the success type and raises domain errors;
    this runs it through `run_mutation` (a savepoint, the error as a member of the result union, a
    refusal audited), with the audit action, the resource type, and the id the input names in its
    field `resource_id` (None: the mutation creates the resource)."""

    def __init__(self, action: str, resource_type: str, resource_id: str | None = None) -> None:
        super().__init__()
        self.action, self.resource_type, self.resource_id = action, resource_type, resource_id

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        raise TypeError("mutations are async")  # pragma: no cover - every resolver here is

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any) -> Any:
        named = None if self.resource_id is None else str(getattr(kwargs["input"], self.resource_id))
        return await run_mutation(
            info.context,
            action=self.action,
            resource_type=self.resource_type,
            resource_id=named,
            work=lambda: next_(source, info, **kwargs),
        )
