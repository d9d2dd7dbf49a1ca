"""SCIM HTTP endpoints (RFC 7644 §3). Handlers are thin: parse, call services, render.

Every request runs in one database transaction, authenticated against the account in the path.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from app import activity, auth, jsonbody
from app.activity import ActivityLog
from app.batching import Batched
from app.db.models import Channel
from app.db.transactions import run_read, run_transaction, run_write
from app.errors import DomainError, InvalidFilter, InvalidInput, InvalidSyntax, PreconditionFailed
from app.integration_activity import IntegrationActivity
from app.metrics import route_of
from app.observability import request_id_var
from app.scim import compat, discovery
from app.scim.errors import SCIM_MEDIA_TYPE, ScimProtocolError, error_response, from_domain_error, scim_json
from app.scim.parsing import group_values, normalize_document, user_values
from app.scim.patch import apply_patch
from app.scim.projection import Projection
from app.scim.query import bind_filter, sort_column
from app.scim.rendering import USER_RESOURCE_COLUMNS, Links, etag, group_document, render_group, render_user, user_document
from app.scim.schema import ENTERPRISE_USER, GROUP, LIST_RESPONSE, RESOURCE_TYPES, USER, ResourceType
from app.services import audit, extensions, groups, tokens, users
from app.services.caller import Caller
from app.services.common import PageQuery
from app.settings import Settings
from app.validation import contains_nul

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass
class Scim:
    """What a handler needs: the request, its decoded body, its transaction, the caller, and URL building.

    The transaction is an ORM session for requests that write, and a bare connection for read-only
    ones (see `run_read`), whose handlers call only the services' read functions."""

    request: Request
    body: Any
    session: AsyncSession | AsyncConnection
    caller: Caller
    links: Links

    @property
    def writing(self) -> AsyncSession:
        """The transaction of a request that writes: an ORM session, or an attempt's in one statement
        (`db.transactions.OneStatement`); read-only requests have a bare connection, see `dispatch`."""
        if isinstance(self.session, AsyncConnection):
            raise TypeError("a read-only request cannot write")
        return self.session

    @functools.cached_property
    def query(self) -> dict[str, str]:
        # Parameter names are matched without regard to case; unknown ones (aadOptscim062020…) are ignored.
        return {k.lower(): v for k, v in self.request.query_params.items()}


Handler = Callable[[Scim], Awaitable[Response]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MEDIA_TYPES = frozenset({SCIM_MEDIA_TYPE, "application/json"})


def _decode_body(request: Request, raw: bytes) -> Any:
    """RFC 7644 §3.1: SCIM bodies are application/scim+json (application/json is accepted too),
    in UTF-8; anything else is 415. The JSON itself is decoded strictly (see app.jsonbody)."""
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() not in MEDIA_TYPES:
        raise ScimProtocolError(415, f"Content-Type must be {SCIM_MEDIA_TYPE} or application/json, got {media_type.strip()[:100]!r}")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ScimProtocolError(415, "the request body must be UTF-8 (charset=utf-8)")
    return jsonbody.decode(raw, fold_key_case=True)


def _read_only(request: Request) -> bool:
    return request.method == "GET" or request.scope["path"].endswith("/.search")


# The audit action of a request refused on a resource type (see `_refused`), by method.
_ACTIONS = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def dispatch(handlers: dict[str, Handler], resource: ResourceType | None = None) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint per path, of `resource` (None: discovery). In order: read the whole body of a POST,
    PUT or PATCH (bounded in size and time by the middleware) before any database work (another
    method's body means nothing: it is not read, and the server discards it after the answer);
    authenticate; decode the body; run the handler in one transaction and commit before answering —
    a read-only one on a bare connection (`run_read`), which never takes SQLite's write lock, and one
    of `_ONE_STATEMENT_FIRST` first without a transaction, its write one statement that commits by
    itself (`run_write`). Methods without a handler answer 405 with a SCIM body; a refusal (403) is
    recorded in the audit log."""
    allow = ", ".join(handlers)

    async def endpoint(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            refused = error_response(405, f"{request.method} is not supported here; allowed: {allow}", headers={"Allow": allow})
            return _recorded(request, refused, resource, None)
        settings: Settings = request.app.state.settings
        account = request.path_params["account"]
        if contains_nul(dict(request.path_params)):
            return _recorded(request, error_response(404, "no resource has an id with a NUL character"), resource, None)
        raw = await request.body() if request.method in BODY_METHODS else None
        verified: tokens.Verified | None = None
        try:
            verified = await auth.authenticate(request, channel=Channel.SCIM, account_identifier=account)
            body = None if raw is None else _decode_body(request, raw)
            links = Links(settings.tenant_url(account))
            caller = verified.caller
            if _read_only(request):
                response = await run_read(
                    request.app.state.read_connections, lambda connection: handler(Scim(request, body, connection, caller, links))
                )
            else:
                response = await run_write(
                    request.app.state.sessionmaker,
                    request.app.state.one_statement_connections if handler in _ONE_STATEMENT_FIRST else None,
                    lambda session: handler(Scim(request, body, session, caller, links)),
                )
        except tokens.StaleToken as exc:  # the right secret of a revoked or expired token: its integration hears why
            response = from_domain_error(exc)
            if exc.record.integration_id is not None:
                _note(request, exc.record.account_id, exc.record.integration_id, response, exc.reason)
            return _recorded(request, response, resource, None, stale=exc)
        except audit.REFUSALS as exc:
            assert verified is not None  # refusals come from the services, after authentication
            response = await _refused(request, verified.caller, exc, resource)
        except DomainError as exc:
            response = from_domain_error(exc)
        except ScimProtocolError as exc:
            response = error_response(exc.status, exc.detail, exc.scim_type, exc.headers)
        except Exception:
            if verified is not None:
                failed = error_response(500, "internal error")
                if verified.caller.integration_id is not None:
                    _note(request, verified.caller.account_id, verified.caller.integration_id, failed)
                _recorded(request, failed, resource, verified.caller)
            raise
        if verified is None:
            return _recorded(request, response, resource, None)
        if verified.caller.integration_id is not None:
            _note(request, verified.caller.account_id, verified.caller.integration_id, response)
        if verified.record_use_due:
            _after(response, auth.record_use, request, verified)
        return _recorded(request, response, resource, verified.caller)

    return endpoint


def _recorded(
    request: Request, response: Response, resource: ResourceType | None, caller: Caller | None, *, stale: tokens.StaleToken | None = None
) -> Response:
    """Note the request in the activity log (app/activity.py) and return its response. Successful
    reads are summarized per token, route and status; a request that authenticated nobody is
    recorded at most once a minute per account and status; every other request has its own record."""
    log: ActivityLog = request.app.state.activity
    status = response.status_code
    route = route_of(request.scope["path"])[0]
    resource_type = _RESOURCE_TYPES.get(resource, "Resource")
    read_only, resource_id, request_id = _read_only(request), request.path_params.get("id"), request_id_var.get()
    if status < 400 and caller is not None and read_only:
        key = (caller.account_id, caller.principal, caller.integration_id, request.method, route, status, resource_type)
        log.note_read(key, resource_id, request_id)
    else:
        scim_type, detail = activity.error_of(response)
        record = activity.record(
            account_id=None if caller is None else caller.account_id,
            caller=activity.ANONYMOUS if caller is None else caller.principal,
            integration_id=None if caller is None else caller.integration_id,
            request_id=request_id,
            method=request.method,
            route=route,
            status=status,
            read_only=read_only,
            resource_type=resource_type,
            resource_id=resource_id,
            scim_type=scim_type,
            detail=detail,
        )
        if stale is not None:  # a known token, with the right secret: recorded as its own, with why
            log.note(
                {
                    **record,
                    "account_id": stale.record.account_id,
                    "caller": stale.record.token_id,
                    "integration_id": stale.record.integration_id,
                    "error_detail": stale.reason,
                }
            )
        elif caller is None:
            log.note_anonymous(request.path_params.get("account", ""), str(status), record)
        else:
            log.note(record)
    _write_when_due(request, response, log)
    return response


# The audit log's name of a resource type (a group is a UserGroup there, as in GraphQL).
_RESOURCE_TYPES: dict[ResourceType | None, str] = {USER: "User", GROUP: "UserGroup"}


def _note(request: Request, account_id: int, integration_id: str, response: Response, reason: str | None = None) -> None:
    """The request's outcome, for its integration's health; written after the response when due."""
    activity: IntegrationActivity = request.app.state.integration_activity
    activity.note(account_id, integration_id, response, reason)
    _write_when_due(request, response, activity)


def _write_when_due(request: Request, response: Response, batched: Batched) -> None:
    """Once an interval, the batch's write runs after `response` is sent (app/batching.py)."""
    if batched.due():
        _after(response, batched.write, request.app.state.sessionmaker)


def _after(response: Response, task: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run `task(*args)` once the response has been sent, after the tasks it has already."""
    tasks = response.background if isinstance(response.background, BackgroundTasks) else BackgroundTasks()
    if response.background is not None and response.background is not tasks:
        tasks.tasks.append(response.background)
    tasks.add_task(task, *args)
    response.background = tasks


async def _refused(request: Request, caller: Caller, refusal: audit.Refusal, resource: ResourceType | None) -> Response:
    """The refusal's answer, once a DENIED event says who was refused what (in a transaction of its
    own: the refused request's was undone)."""
    name = "resources" if resource is None else resource.name.lower()
    action = f"{name}.{'read' if _read_only(request) else _ACTIONS[request.method]}"
    resource_type = _RESOURCE_TYPES.get(resource, "Resource")
    resource_id = request.path_params.get("id")

    async def record(session: AsyncSession) -> None:
        await audit.record_refusal(session, caller, refusal, action=action, resource_type=resource_type, resource_id=resource_id)

    try:
        await run_transaction(request.app.state.sessionmaker, record)
    except DomainError as exc:  # the database cannot take the event now (503): the client asks again
        return from_domain_error(exc)
    return from_domain_error(refusal)


# --- listing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListParams:
    filter: str | None
    start_index: int
    count: int
    sort_by: str | None
    descending: bool
    attributes: Any
    excluded: Any


def _int_param(raw: Any, name: str, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise InvalidInput(f"{name} must be an integer", field=name)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an integer, got {raw!r}", field=name) from None


def list_params(source: dict[str, Any]) -> ListParams:
    """RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0; count is capped."""
    lowered = {k.lower(): v for k, v in source.items()}
    filter_text = lowered.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise InvalidFilter("filter must be a string")
    order = lowered.get("sortorder")
    order = "ascending" if order is None else order
    if not isinstance(order, str) or order.lower() not in ("ascending", "descending"):
        raise InvalidInput("sortOrder must be ascending or descending", field="sortOrder")
    sort_by = lowered.get("sortby")
    if sort_by is not None and (not isinstance(sort_by, str) or not sort_by):
        raise InvalidInput("sortBy must name an attribute", field="sortBy")
    return ListParams(
        filter=filter_text,
        start_index=max(1, _int_param(lowered.get("startindex"), "startIndex", 1)),
        count=min(discovery.MAX_RESULTS, max(0, _int_param(lowered.get("count"), "count", discovery.DEFAULT_COUNT))),
        sort_by=sort_by or None,
        descending=order.lower() == "descending",
        attributes=lowered.get("attributes"),
        excluded=lowered.get("excludedattributes"),
    )


def _order(resource: ResourceType, params: ListParams) -> list[Any]:
    stable = list(users.LIST_ORDER if resource is USER else groups.LIST_ORDER)
    if params.sort_by is None:
        return stable
    column = sort_column(params.sort_by, resource)
    return [(column.desc() if params.descending else column.asc()).nulls_last(), *stable]


async def _render_users(
    scim: Scim, rows: Sequence[Any], projection: Projection, memberships: dict[str, list[tuple[str, str]]]
) -> list[dict[str, Any]]:
    """Users (records or plain rows) as SCIM documents, with the groups read with them (`memberships`:
    see `groups.read_user_with_groups`; a user not there is shown in no group)."""
    managers = [u.manager_id for u in rows if u.manager_id]
    names = (
        await users.display_names(scim.session, scim.caller.account_id, managers) if managers and projection.wants(ENTERPRISE_USER) else {}
    )
    return [
        projection.apply(render_user(u, scim.links, groups=memberships.get(u.id), manager_display=names.get(u.manager_id or "")))
        for u in rows
    ]


async def _render_groups(scim: Scim, rows: Sequence[Any], projection: Projection) -> list[dict[str, Any]]:
    """Groups (entities or plain rows) as SCIM documents, with their members when wanted."""
    ids = [g.id for g in rows]
    members = await groups.member_references(scim.session, scim.caller, ids) if projection.wants("members") and ids else {}
    return [projection.apply(render_group(g, scim.links, members=members.get(g.id))) for g in rows]


async def _query(scim: Scim, resource: ResourceType, params: ListParams, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    bound = bind_filter(params.filter, resource)
    order = _order(resource, params)
    projection = Projection.parse(params.attributes, params.excluded, resource)
    # The filter's shape and the order name the SQL, so its statements are built once per key.
    query = PageQuery(bound.condition, order, offset, limit, bound.params, key=(bound.shape, params.sort_by, params.descending))
    if resource is USER and projection.wants("groups"):
        total, found = await groups.list_users_with_groups(scim.session, scim.caller, query, columns=USER_RESOURCE_COLUMNS)
        memberships = {user.id: groups_of_user for user, groups_of_user in found}
        return total, await _render_users(scim, [user for user, _ in found], projection, memberships)
    if resource is USER:
        total, user_rows = await users.list_users(scim.session, scim.caller, query, columns=USER_RESOURCE_COLUMNS)
        return total, await _render_users(scim, user_rows, projection, {})
    total, group_rows = await groups.list_groups(scim.session, scim.caller, query)
    return total, await _render_groups(scim, group_rows, projection)


def _list_response(total: int, resources: list[dict[str, Any]], start_index: int) -> Response:
    return scim_json(
        {
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "itemsPerPage": len(resources),
            "startIndex": start_index,
            "Resources": resources,
        }
    )


async def _list(scim: Scim, resource: ResourceType, params: ListParams) -> Response:
    total, resources = await _query(scim, resource, params, params.start_index - 1, params.count)
    return _list_response(total, resources, params.start_index)


async def _search_body(scim: Scim) -> ListParams:
    body = scim.body
    if not isinstance(body, dict):
        raise InvalidSyntax("a search request must be a JSON object")
    compat.check_schemas_list(body)
    return list_params(body)


def lister(resource: ResourceType) -> Handler:
    async def handler(scim: Scim) -> Response:
        return await _list(scim, resource, list_params(scim.query))

    return handler


def searcher(resource: ResourceType) -> Handler:
    async def handler(scim: Scim) -> Response:  # RFC 7644 §3.4.3
        return await _list(scim, resource, await _search_body(scim))

    return handler


async def search_all(scim: Scim) -> Response:
    """POST /.search at the root: users then groups, one page across both (RFC 7644 §3.4.3).
    A filter that names an attribute of only one type matches nothing of the other."""
    params = await _search_body(scim)
    offset, remaining = params.start_index - 1, params.count
    total, page_resources, errors = 0, [], []
    for resource in RESOURCE_TYPES:
        try:
            count, found = await _query(scim, resource, params, offset, remaining)
        except InvalidFilter as exc:
            errors.append(exc)
            continue
        total += count
        page_resources += found
        remaining -= len(found)
        offset = max(0, offset - count)
    if len(errors) == len(RESOURCE_TYPES):
        raise errors[0]
    return _list_response(total, page_resources, params.start_index)


# --- single resources ----------------------------------------------------------------------------


def _entity_tags(request: Request, header: str) -> set[str] | None:
    """The entity tags of an If-Match / If-None-Match header (RFC 7232 §3), None when absent. A tag
    that is not one of ours simply does not match."""
    value = request.headers.get(header)
    return None if value is None else {t.strip() for t in value.split(",")}


def _check_if_match(request: Request, version: int) -> None:
    """RFC 7644 §3.14: a stale If-Match makes PUT, PATCH and DELETE fail with 412. Handlers call it
    after the request body has been validated, so a malformed request is a 400 first."""
    tags = _entity_tags(request, "if-match")
    if tags is None or "*" in tags or etag(version) in tags or f'"{version}"' in tags:
        return
    raise PreconditionFailed(f"the resource has changed: its version is {etag(version)}")


def _not_modified(request: Request, version: int) -> bool:
    tags = _entity_tags(request, "if-none-match")
    return tags is not None and bool(tags & {etag(version), f'"{version}"', "*"})


def _resource_response(doc: dict[str, Any], version: int, status: int = 200, location: str | None = None) -> Response:
    headers = {"ETag": etag(version)}
    if location:
        headers["Location"] = location
    return scim_json(doc, status, headers)


def _projection(scim: Scim, resource: ResourceType) -> Projection:
    query = scim.query
    return Projection.parse(query.get("attributes"), query.get("excludedattributes"), resource)


async def _user_response(
    scim: Scim, user: Any, status: int = 200, *, projection: Projection | None = None, groups_of_user: list[tuple[str, str]] | None = None
) -> Response:
    """One user (a record or a plain row) as the response, with `groups_of_user` as read with it
    (None when the answer does not show them)."""
    projection = projection or _projection(scim, USER)
    [doc] = await _render_users(scim, [user], projection, {user.id: groups_of_user or []})
    return _resource_response(doc, user.version, status, scim.links.user(user.id) if status == 201 else None)


async def _group_response(scim: Scim, group: Any, status: int = 200) -> Response:
    """One group (an entity or a plain row) as the response."""
    [doc] = await _render_groups(scim, [group], _projection(scim, GROUP))
    return _resource_response(doc, group.version, status, scim.links.group(group.id) if status == 201 else None)


async def create_user(scim: Scim) -> Response:
    values = user_values(normalize_document(scim.body, USER))
    created = await users.create_user(scim.writing, scim.caller, values)
    projection = _projection(scim, USER)
    groups_of_user: list[tuple[str, str]] = []  # a new user is in no group yet; an adopted or restored one may be
    if (created.adopted or created.restored) and projection.wants("groups"):
        _, groups_of_user = await groups.get_user_with_groups(scim.writing, scim.caller, created.user.id)
    return await _user_response(scim, created.user, 201, projection=projection, groups_of_user=groups_of_user)


async def get_user(scim: Scim) -> Response:
    user_id = scim.request.path_params["id"]
    projection = _projection(scim, USER)
    groups_of_user: list[tuple[str, str]] = []
    if projection.wants("groups"):
        user, groups_of_user = await groups.read_user_with_groups(scim.session, scim.caller, user_id)
    else:
        user = await users.read_user(scim.session, scim.caller, user_id)
    if _not_modified(scim.request, user.version):
        return Response(status_code=304, headers={"ETag": etag(user.version)})
    return await _user_response(scim, user, projection=projection, groups_of_user=groups_of_user)


async def _user_to_change(scim: Scim, projection: Projection) -> tuple[Any, list[tuple[str, str]] | None]:
    """The user a PUT or PATCH changes, locked, with their groups when the answer shows them (a
    change of the user leaves their groups as they are): one statement either way."""
    user_id = scim.request.path_params["id"]
    if projection.wants("groups"):
        return await groups.get_user_with_groups(scim.writing, scim.caller, user_id)
    return await users.get_user(scim.writing, scim.caller, user_id, for_update=True), None


async def replace_user(scim: Scim) -> Response:
    values = user_values(normalize_document(scim.body, USER))
    projection = _projection(scim, USER)
    user, groups_of_user = await _user_to_change(scim, projection)
    _check_if_match(scim.request, user.version)
    await users.update_user(scim.writing, scim.caller, user, values)
    return await _user_response(scim, user, projection=projection, groups_of_user=groups_of_user)


async def patch_user(scim: Scim) -> Response:
    projection = _projection(scim, USER)
    user, groups_of_user = await _user_to_change(scim, projection)
    values = user_values(apply_patch(user_document(user), scim.body, USER).document)
    _check_if_match(scim.request, user.version)
    await users.update_user(scim.writing, scim.caller, user, values)
    return await _user_response(scim, user, projection=projection, groups_of_user=groups_of_user)


# Handlers whose usual case is a read and one write: tried first without a transaction (see
# `run_write`; their services raise NeedsTransaction for the rest).
_ONE_STATEMENT_FIRST = frozenset({create_user, replace_user, patch_user})


async def delete_user(scim: Scim) -> Response:
    user = await users.get_user_for_delete(scim.writing, scim.caller, scim.request.path_params["id"])
    _check_if_match(scim.request, user.version)
    await users.delete_user(scim.writing, scim.caller, user)
    return Response(status_code=204)


async def create_group(scim: Scim) -> Response:
    body = scim.body
    doc = normalize_document(body, GROUP)
    values = group_values(doc)
    member_ids = compat.member_values(doc.get("members"))
    group, _ = await groups.create_group(scim.writing, scim.caller, values, member_ids=member_ids)
    return await _group_response(scim, group, 201)


async def get_group(scim: Scim) -> Response:
    group = await groups.read_group(scim.session, scim.caller, scim.request.path_params["id"])
    if _not_modified(scim.request, group.version):
        return Response(status_code=304, headers={"ETag": etag(group.version)})
    return await _group_response(scim, group)


async def replace_group(scim: Scim) -> Response:
    doc = normalize_document(scim.body, GROUP)
    values = group_values(doc)
    member_ids = compat.member_values(doc.get("members"))
    group = await groups.get_group(scim.writing, scim.caller, scim.request.path_params["id"], for_update=True)
    _check_if_match(scim.request, group.version)
    await groups.update_group(scim.writing, scim.caller, group, values)
    await groups.change_members(scim.writing, scim.caller, group, [groups.MemberChange("replace", tuple(member_ids))])
    return await _group_response(scim, group)


async def patch_group(scim: Scim) -> Response:
    body = scim.body
    group_id = scim.request.path_params["id"]
    # Adds and removes of members alone, the identity provider's usual PATCH, take the group's lock
    # last (see `groups.change_members`). Any other PATCH, and any with a precondition, locks the
    # group first: one that turns out to change more than members reads it again, locked.
    if "if-match" not in scim.request.headers:
        group = await groups.get_group_for_members(scim.writing, scim.caller, group_id)
        before = group_document(group)
        result = apply_patch(before, body, GROUP, collect="members")
        if result.document == before and groups.may_lock_last(scim.caller, result.member_changes):
            await groups.change_members(scim.writing, scim.caller, group, result.member_changes, locked=False)
            return await _patched_group(scim, group)
    group = await groups.get_group(scim.writing, scim.caller, group_id, for_update=True)
    before = group_document(group)
    result = apply_patch(before, body, GROUP, collect="members")
    values = group_values(result.document)
    _check_if_match(scim.request, group.version)
    if result.document != before:
        await groups.update_group(scim.writing, scim.caller, group, values)
    await groups.change_members(scim.writing, scim.caller, group, result.member_changes)
    return await _patched_group(scim, group)


async def _patched_group(scim: Scim, group: Any) -> Response:
    query = scim.query
    if "attributes" in query or "excludedattributes" in query:
        return await _group_response(scim, group)
    # Microsoft's guidance: group PATCH answers 204 rather than echo every member.
    return Response(status_code=204, headers={"ETag": etag(group.version)})


async def delete_group(scim: Scim) -> Response:
    group = await groups.get_group(scim.writing, scim.caller, scim.request.path_params["id"], for_update=True)
    _check_if_match(scim.request, group.version)
    await groups.delete_group(scim.writing, scim.caller, group)
    return Response(status_code=204)


# --- discovery -----------------------------------------------------------------------------------


async def service_provider_config(scim: Scim) -> Response:
    return scim_json(discovery.service_provider_config(scim.links.base))


async def _declared(scim: Scim) -> list[extensions.Declaration]:
    """The custom extensions the caller's account declared, which discovery advertises too."""
    return await extensions.declared(scim.session, scim.caller.account_id)


async def resource_types(scim: Scim) -> Response:
    items = discovery.all_resource_types(scim.links.base, await _declared(scim))
    return _list_response(len(items), items, 1)


async def resource_type(scim: Scim) -> Response:
    name = scim.request.path_params["name"]
    for resource in RESOURCE_TYPES:
        if resource.name.lower() == name.lower():
            return scim_json(discovery.resource_type(resource, scim.links.base, await _declared(scim)))
    raise ScimProtocolError(404, f"resource type {name} not found")


async def schemas(scim: Scim) -> Response:
    items = [discovery.schema_document(s, scim.links.base) for s in discovery.all_schemas(await _declared(scim))]
    return _list_response(len(items), items, 1)


async def schema(scim: Scim) -> Response:
    urn = scim.request.path_params["urn"]
    for item in discovery.all_schemas(await _declared(scim)):
        if item.id.lower() == urn.lower():
            return scim_json(discovery.schema_document(item, scim.links.base))
    raise ScimProtocolError(404, f"schema {urn} not found")


async def not_found(request: Request) -> Response:
    return error_response(404, f"no SCIM endpoint at {request.url.path}")


# The first segment of every SCIM endpoint, by its lower-cased form.
_ENDPOINTS = {name.lower(): name for name in ("Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas", ".search")}


class CanonicalPaths:
    """Clients name SCIM's endpoints in any letter case and with a trailing slash (Microsoft's SCIM
    test collection sends `/users` and `/Users/?filter=…`); RFC 7644 spells them `/Users`, `/Groups`
    and so on. The first segment of the path below the Tenant URL is given its canonical case and
    a trailing slash is dropped before the routes match; ids and other segments stay as sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            below = scope["path"][len(root) :]
            canonical = _canonical(below)
            if canonical != below:
                scope = {**scope, "path": root + canonical}
        await self.app(scope, receive, send)


def _canonical(path: str) -> str:
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    _, first, *rest = path.split("/", 2) if path.startswith("/") else ("", path)
    name = _ENDPOINTS.get(first.lower())
    if name is None or name == first:
        return path
    return "/".join(["", name, *rest])


def scim_app() -> ASGIApp:
    """The SCIM endpoints below the Tenant URL."""
    return CanonicalPaths(Router(routes=scim_routes()))


def scim_routes() -> list[BaseRoute]:
    def route(path: str, handlers: dict[str, Handler], resource: ResourceType | None = None) -> Route:
        return Route(path, dispatch(handlers, resource), methods=ALL_METHODS)

    # Tried in this order, the busiest first (an identity provider's sync is mostly requests for one
    # user or group); `.search` before the `{id}` it would otherwise match.
    return [
        route("/Users/.search", {"POST": searcher(USER)}, USER),
        route("/Users/{id}", {"GET": get_user, "PUT": replace_user, "PATCH": patch_user, "DELETE": delete_user}, USER),
        route("/Users", {"GET": lister(USER), "POST": create_user}, USER),
        route("/Groups/.search", {"POST": searcher(GROUP)}, GROUP),
        route("/Groups/{id}", {"GET": get_group, "PUT": replace_group, "PATCH": patch_group, "DELETE": delete_group}, GROUP),
        route("/Groups", {"GET": lister(GROUP), "POST": create_group}, GROUP),
        route("/.search", {"POST": search_all}),
        route("/ServiceProviderConfig", {"GET": service_provider_config}),
        route("/ResourceTypes", {"GET": resource_types}),
        route("/ResourceTypes/{name}", {"GET": resource_type}),
        route("/Schemas", {"GET": schemas}),
        route("/Schemas/{urn}", {"GET": schema}),
        Route("/{rest:path}", not_found, methods=ALL_METHODS),
    ]
