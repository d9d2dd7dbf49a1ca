"""SCIM error responses (RFC 7644 §3.12): one table from domain errors to status and scimType."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from app.errors import (
    Conflict,
    DomainError,
    InvalidFilter,
    InvalidInput,
    InvalidPath,
    InvalidSyntax,
    ManagedByIdentityProvider,
    Mutability,
    NoTarget,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from app.scim.schema import ERROR

SCIM_MEDIA_TYPE = "application/scim+json"

# Most specific first: the first matching class wins.
ERROR_TABLE: tuple[tuple[type[DomainError], int, str | None], ...] = (
    (InvalidFilter, 400, "invalidFilter"),
    (InvalidPath, 400, "invalidPath"),
    (Mutability, 400, "mutability"),
    (NoTarget, 400, "noTarget"),
    (InvalidSyntax, 400, "invalidSyntax"),
    (InvalidInput, 400, "invalidValue"),
    (Unauthenticated, 401, None),
    (PermissionDenied, 403, None),
    (ManagedByIdentityProvider, 403, None),
    (NotFound, 404, None),
    (Conflict, 409, "uniqueness"),
    (PreconditionFailed, 412, None),
    (RateLimited, 429, None),
    (Unavailable, 503, None),
)


class ScimProtocolError(Exception):
    """An error of the protocol itself (method not allowed, unsupported media type…)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type, self.headers = status, detail, scim_type, headers or {}


def scim_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A SCIM body. Datetimes in it (a resource's `meta`) are written in UTC as RFC 3339 with `Z`,
    with microseconds (none when they are zero)."""
    return Response(orjson.dumps(payload, option=orjson.OPT_UTC_Z), status_code=status, media_type=SCIM_MEDIA_TYPE, headers=headers)


def error_response(status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return scim_json(body, status, headers)


def _headers(exc: DomainError, status: int) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": 'Bearer realm="scim"'}
    if isinstance(exc, Unavailable | RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    return None


def from_domain_error(exc: DomainError) -> Response:
    for cls, status, scim_type in ERROR_TABLE:
        if isinstance(exc, cls):
            headers = _headers(exc, status)
            return error_response(status, exc.message, scim_type, headers)
    return error_response(400, exc.message)
