"""Read side of the admin API."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import strawberry

from app.db import models
from app.errors import NotFound
from app.graphql import projection
from app.graphql.context import Info
from app.graphql.pagination import (
    Connection,
    decode_cursor,
    decode_key_cursor,
    decode_row_cursor,
    encode_cursor,
    encode_key_cursor,
    keyset_connection,
    page_size,
    row_cursor,
)
from app.graphql.prefetch import prefetch
from app.graphql.types import (
    GROUP_LOADS,
    USER_LOADS,
    AccountSettings,
    ActivitySummary,
    ApiToken,
    AppIntegration,
    AuditChannel,
    AuditEvent,
    AuditOutcome,
    FailureCount,
    FeatureFlag,
    ManagedBy,
    Organization,
    OutcomeCount,
    Project,
    ProvisionedBy,
    SchemaExtension,
    SsoLoginPreflight,
    SsoLoginRisk,
    User,
    UserGroup,
    Viewer,
)
from app.services import accounts, audit, extensions, flags, groups, integrations, tokens, users
from app.services.caller import Permission


@strawberry.input
class UserFilter:
    search: str | None = strawberry.field(default=None, description="Part of the userName, email or display name, any case.")
    active: bool | None = None
    provisioned_by: ProvisionedBy | None = None  # type: ignore[valid-type]


@strawberry.input
class UserGroupFilter:
    search: str | None = strawberry.field(default=None, description="Part of the name or identifier, any case.")
    managed_by: ManagedBy | None = None  # type: ignore[valid-type]
    org_identifier: str | None = None
    project_identifier: str | None = None


StatusClass = strawberry.enum(
    audit.StatusClass, description="The class of a SCIM request's status: SUCCESS (2xx, 3xx), CLIENT_ERROR (4xx), SERVER_ERROR (5xx)."
)


@strawberry.input
class AuditEventFilter:
    channel: AuditChannel | None = None  # type: ignore[valid-type]
    outcome: AuditOutcome | None = None  # type: ignore[valid-type]
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = strawberry.field(default=None, description="Events before this moment.")
    action: str | None = strawberry.field(default=None, description='e.g. "scim.request" for the records of SCIM requests, "user.update"')
    status_class: StatusClass | None = strawberry.field(default=None, description="SCIM requests answered so.")  # type: ignore[valid-type]
    caller: str | None = strawberry.field(default=None, description='A token id; "-" for requests that authenticated nobody.')
    include_requests: bool = strawberry.field(
        default=False, description="Also the records of SCIM requests (action scim.request), which an action or a statusClass asks for too."
    )


def _value(enum_value: object) -> str | None:
    return None if enum_value is None else str(getattr(enum_value, "value", enum_value))


@strawberry.type
class Query:
    @strawberry.field(description="Who is calling: the token's account and permissions.")
    async def viewer(self, info: Info) -> Viewer:
        caller = info.context.caller
        account = await info.context.call(accounts.get_account, caller.account_identifier)
        return Viewer(account_identifier=account.identifier, account_name=account.name, permissions=sorted(caller.permissions))

    @strawberry.field(description="One user, also while deprovisioned (see User.deprovisionedAt); null if there is none.")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        try:
            return User.from_row(await info.context.call(users.get_user, info.context.caller, str(id), deprovisioned=True))
        except NotFound:
            return None

    @strawberry.field
    async def user_by_email(self, info: Info, email: str) -> User | None:
        row = await info.context.call(users.get_user_by_email, info.context.caller, email)
        return None if row is None else User.from_row(row)

    @strawberry.field(
        description="Users, oldest first. Cursors are keys: a page neither skips nor repeats users while others are added or removed."
    )
    async def users(
        self, info: Info, filter: UserFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[User]:
        f = filter or UserFilter()
        matching = users.admin_filter(search=f.search, active=f.active, provisioned_by=_value(f.provisioned_by))
        limit = page_size(first)
        query = matching.page(users.LIST_ORDER, limit + 1, after=decode_row_cursor(after, "u"))
        context = info.context
        columns = projection.columns(info._raw_info, context.projections)
        rows = await context.call(users.page_of_users, context.caller, query, columns=columns)
        await prefetch(info, rows[:limit], USER_LOADS)
        total = functools.partial(context.call, users.count_users, context.caller, query, len(rows))
        return keyset_connection(rows, total, limit, row_cursor("u"), User.from_row)

    @strawberry.field
    async def user_group(self, info: Info, id: strawberry.ID) -> UserGroup | None:
        try:
            return UserGroup.from_row(await info.context.call(groups.get_group, info.context.caller, str(id)))
        except NotFound:
            return None

    @strawberry.field
    async def user_group_by_identifier(
        self, info: Info, identifier: str, org_identifier: str | None = None, project_identifier: str | None = None
    ) -> UserGroup | None:
        try:
            row = await info.context.call(
                groups.get_group_by_identifier, info.context.caller, identifier, org_identifier, project_identifier
            )
        except NotFound:
            return None
        return UserGroup.from_row(row)

    @strawberry.field(
        description="User groups, oldest first. Cursors are keys: a page neither skips nor repeats groups while others come or go."
    )
    async def user_groups(
        self, info: Info, filter: UserGroupFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[UserGroup]:
        f = filter or UserGroupFilter()
        matching = groups.admin_filter(
            search=f.search, managed_by=_value(f.managed_by), org_identifier=f.org_identifier, project_identifier=f.project_identifier
        )
        limit = page_size(first)
        query = matching.page(groups.LIST_ORDER, limit + 1, after=decode_row_cursor(after, "g"))
        context = info.context
        columns = projection.columns(info._raw_info, context.projections)
        rows = await context.call(groups.page_of_groups, context.caller, query, columns=columns)
        await prefetch(info, rows[:limit], GROUP_LOADS)
        total = functools.partial(context.call, groups.count_groups, context.caller, query, len(rows))
        return keyset_connection(rows, total, limit, row_cursor("g"), UserGroup.from_row)

    @strawberry.field
    async def organizations(self, info: Info) -> list[Organization]:
        rows = await info.context.call(accounts.list_organizations, info.context.caller)
        return [Organization.from_row(r) for r in rows]

    @strawberry.field
    async def projects(self, info: Info, org_identifier: str | None = None) -> list[Project]:
        rows = await info.context.call(accounts.list_projects, info.context.caller, org_identifier)
        return [Project.from_row(r) for r in rows]

    @strawberry.field(description="The provisioning activity log, newest first. Needs the audit:read or the admin permission.")
    async def audit_events(
        self, info: Info, filter: AuditEventFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[AuditEvent]:
        f = filter or AuditEventFilter()
        limit = page_size(first)
        before = decode_cursor(after, "a")
        where = audit.EventFilter(
            channel=_value(f.channel),
            outcome=_value(f.outcome),
            resource_type=f.resource_type,
            resource_id=f.resource_id,
            since=f.since,
            until=f.until,
            status_class=_value(f.status_class),
            caller=f.caller,
            action=f.action,
            requests=f.include_requests,
        )
        total, rows = await info.context.call(audit.list_events, info.context.caller, where, before_id=before, limit=limit + 1)
        caller = info.context.caller
        return keyset_connection(
            rows, total, limit, lambda r: encode_cursor("a", int(r.id or 0)), lambda r: AuditEvent.from_row(r, audit.shown_to(caller, r))
        )

    @strawberry.field(
        description=(
            "What happened since a moment (at most the last 31 days): events per outcome, and the SCIM failures most often "
            "met by status, scimType and detail, its quoted values blanked. Needs the audit:read or the admin permission."
        )
    )
    async def activity_summary(self, info: Info, since: datetime) -> ActivitySummary:
        found = await info.context.call(audit.summarize, info.context.caller, since)
        return ActivitySummary(
            since=found.since,
            total=found.total,
            outcomes=[OutcomeCount(outcome=models.Outcome(o), count=n) for o, n in found.outcomes],
            top_failures=[FailureCount(status=s, scim_type=t, detail=d, count=n) for s, t, d, n in found.failures],
        )

    @strawberry.field(description="The account's settings. Needs the admin permission.")
    async def account_settings(self, info: Info) -> AccountSettings:
        return AccountSettings(
            deprovision_retention_days=await info.context.call(accounts.deprovision_retention_days, info.context.caller),
            activity_retention_days=await info.context.call(accounts.activity_retention_days, info.context.caller),
        )

    @strawberry.field(description="The account's declared custom schema extensions. Needs the admin permission.")
    async def schema_extensions(self, info: Info) -> list[SchemaExtension]:
        info.context.caller.require(Permission.ADMIN)
        declared = await info.context.call(extensions.declared, info.context.caller.account_id)
        return [SchemaExtension.of(d) for d in declared]

    @strawberry.field(description="The account's feature flags. Needs the admin permission.")
    async def feature_flags(self, info: Info) -> list[FeatureFlag]:
        values = await info.context.call(flags.list_flags, info.context.caller)
        return [FeatureFlag(name=flag.name, enabled=on, description=flag.description) for flag, on in values]

    @strawberry.field(description="The account's app integrations, oldest first. Needs the admin permission.")
    async def app_integrations(self, info: Info) -> list[AppIntegration]:
        return [AppIntegration.from_row(r) for r in await info.context.call(integrations.list_integrations, info.context.caller)]

    @strawberry.field(description="One app integration; null if there is none. Needs the admin permission.")
    async def app_integration(self, info: Info, id: strawberry.ID) -> AppIntegration | None:
        try:
            return AppIntegration.from_row(await info.context.call(integrations.get_integration, info.context.caller, str(id)))
        except NotFound:
            return None

    @strawberry.field(
        description=(
            "Whether the account's SSO would let in the user who signs in with this address (their userName or primary "
            "email, any case): logins go through the oldest ACTIVE FIRSTGEN integration, else the oldest ACTIVE NEXTGEN "
            "one, and only users it assigns get in (Harness's FirstGen and NextGen app integrations)."
        )
    )
    async def sso_login_preflight(self, info: Info, email: str) -> SsoLoginPreflight:
        verdict = await info.context.call(integrations.preflight, info.context.caller, email)
        return SsoLoginPreflight(
            allowed=verdict.allowed,
            authenticating_integration=None if verdict.integration is None else AppIntegration.from_row(verdict.integration),
            reason=verdict.reason,
            user=None if verdict.user is None else User.from_row(verdict.user),
        )

    @strawberry.field(
        description=(
            "Every active user the account's SSO would refuse (see ssoLoginPreflight), by userName, with the app "
            "integrations that do assign them. Cursors are keys: a page neither skips nor repeats users while SCIM writes."
        )
    )
    async def sso_login_risks(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[SsoLoginRisk]:
        limit = page_size(first)
        start = decode_key_cursor(after, "r", 2)
        found = await info.context.call(
            integrations.risks, info.context.caller, after=None if start is None else (start[0], start[1]), limit=limit + 1
        )
        page = found.users[:limit]
        ids = [row.id for row in page]
        assigning = dict(zip(ids, await info.context.loaders.assigning_integrations.load_many(ids), strict=True))

        def risk(row: Any) -> SsoLoginRisk:
            assigned = integrations.active(assigning[row.id])
            return SsoLoginRisk(user=User.from_row(row), reason=found.reason, assigned_by=[AppIntegration.from_row(i) for i in assigned])

        return keyset_connection(found.users, found.total, limit, lambda row: encode_key_cursor("r", row.user_name_ci, row.id), risk)

    @strawberry.field(description="The account's API tokens (never their secrets). Needs the admin permission.")
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        return [ApiToken.from_row(r) for r in await info.context.call(tokens.list_tokens, info.context.caller)]
