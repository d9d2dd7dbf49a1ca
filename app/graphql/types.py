"""GraphQL object types. Nested lists go through the request's DataLoaders (no N+1)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.graphql import projection
from app.graphql.context import Info
from app.graphql.loaders import Window
from app.graphql.pagination import Connection, offset_connection, offset_window
from app.graphql.prefetch import Loads, settled
from app.services import integrations
from app.services.audit import Shown
from app.services.caller import Permission
from app.services.common import Columns

E = TypeVar("E", bound=enum.Enum)


def _by_value(enum_type: type[E]) -> Callable[[Any], E]:
    """`enum_type(value)` for a column's value, as a lookup: the Enum call was about 40 % of converting
    a row of a page (bench/README.md). A value it does not know goes through the call, which gives a
    member or raises as before."""
    members = {member.value: member for member in enum_type}
    return lambda value: members.get(value) or enum_type(value)


_provisioned_by = _by_value(models.ProvisionedBy)
_managed_by = _by_value(models.ManagedBy)
_channel = _by_value(models.Channel)
_outcome = _by_value(models.Outcome)
_generation = _by_value(models.IntegrationGeneration)
_status = _by_value(models.IntegrationStatus)

ProvisionedBy = strawberry.enum(models.ProvisionedBy, description="Who created the user.")
ManagedBy = strawberry.enum(models.ManagedBy, description="Who owns the group's name, members and existence.")
AuditChannel = strawberry.enum(models.Channel, name="AuditChannel", description="Where a change came from.")
AuditOutcome = strawberry.enum(models.Outcome, name="AuditOutcome", description="What became of a change.")
AppIntegrationGeneration = strawberry.enum(
    models.IntegrationGeneration,
    name="AppIntegrationGeneration",
    description="Which Harness app of the identity provider: FirstGen or NextGen. An ACTIVE FIRSTGEN integration authenticates SSO.",
)
AppIntegrationStatus = strawberry.enum(
    models.IntegrationStatus, name="AppIntegrationStatus", description="DISCONNECTED: its tokens are revoked and it assigns nobody."
)
SsoLoginRefusal = strawberry.enum(integrations.LoginRefusal, name="SsoLoginRefusal", description="Why an SSO login would be refused.")


@strawberry.type(description="A user of the account, whether provisioned by the identity provider or created here.")
class User:
    id: strawberry.ID
    user_name: str
    email: str | None
    name: str | None = strawberry.field(description="The full name.")
    given_name: str | None
    family_name: str | None
    display_name: str | None
    active: bool
    external_id: str | None
    provisioned_by: ProvisionedBy  # type: ignore[valid-type]
    created_at: datetime
    updated_at: datetime
    deprovisioned_at: datetime | None = strawberry.field(
        description=(
            "When the identity provider deleted the user, who is kept until the account's retention ends (see "
            "accountSettings) and comes back with this id if provisioned again; null for every user in lists."
        )
    )
    row: strawberry.Private[Any]  # the user's row: a record (services.users.UserRecord) or a plain row

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(
            id=strawberry.ID(row.id),
            user_name=row.user_name,
            email=row.email,
            name=row.name_formatted or row.display_name,
            given_name=row.name_given,
            family_name=row.name_family,
            display_name=row.display_name,
            active=row.active is not False,
            external_id=row.external_id,
            provisioned_by=_provisioned_by(row.provisioned_by),
            created_at=row.created_at,
            updated_at=row.updated_at,
            deprovisioned_at=row.deprovisioned_at,
            row=row,
        )

    @strawberry.field(
        description=(
            "True when the identity provider owns this user's email, name, group assignments or existence, "
            "so some changes here are refused."
        )
    )
    def managed_by_identity_provider(self, info: Info) -> bool:
        return settled(info.context.loaders.ownership.load(self.row.id), then=bool)

    @strawberry.field(description="The groups the user belongs to, by name.")
    def groups(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[UserGroup, strawberry.lazy("app.graphql.types")]]:
        key = window(self.row, first, after, projection.columns(info._raw_info, info.context.projections))
        return settled(
            info.context.loaders.groups_of_user.load(key),
            then=lambda page: offset_connection([UserGroup.from_row(r) for r in page[1]], page[0], key.offset),
        )

    @strawberry.field(
        description=(
            "The app integrations that assign the user (their tokens created, changed or adopted them), oldest first. "
            "SSO lets the user in only if the authenticating one is among them (see ssoLoginPreflight)."
        )
    )
    async def app_integrations(self, info: Info) -> list[Annotated[AppIntegration, strawberry.lazy("app.graphql.types")]]:
        return [AppIntegration.from_row(r) for r in await info.context.loaders.assigning_integrations.load(self.row.id)]


# What each field of User is made of, for the lists that read only what their nodes show
# (app/graphql/projection.py): the columns `from_row` and the resolvers read for it. Every node reads
# its id (the loaders' key), its provisioned_by (which `from_row` converts) and created_at (a page's
# cursor).
projection.register(
    "User",
    {
        "__typename": (),
        "id": (),
        "userName": ("user_name",),
        "email": ("email",),
        "name": ("name_formatted", "display_name"),
        "givenName": ("name_given",),
        "familyName": ("name_family",),
        "displayName": ("display_name",),
        "active": ("active",),
        "externalId": ("external_id",),
        "provisionedBy": (),
        "createdAt": (),
        "updatedAt": ("updated_at",),
        "deprovisionedAt": ("deprovisioned_at",),
        "managedByIdentityProvider": (),
        "groups": (),
        "appIntegrations": (),
    },
    always=("id", "provisioned_by", "created_at"),
)


@strawberry.type(description="A user group at account, organization or project scope.")
class UserGroup:
    id: strawberry.ID
    identifier: str
    name: str
    description: str | None
    org_identifier: str | None
    project_identifier: str | None
    managed_by: ManagedBy  # type: ignore[valid-type]
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[Any]  # the group's row: a record (services.groups.GroupRecord) or a plain row

    @classmethod
    def from_row(cls, row: Any) -> UserGroup:
        return cls(
            id=strawberry.ID(row.id),
            identifier=row.identifier,
            name=row.display_name,
            description=row.description,
            org_identifier=row.org_identifier,
            project_identifier=row.project_identifier,
            managed_by=_managed_by(row.managed_by),
            external_id=row.external_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )

    @strawberry.field(
        description=(
            "The app integration whose token created the group, which owns it: only its tokens see the group over SCIM. "
            "Null for groups from before integrations, created with a token bound to none, or created here."
        )
    )
    async def app_integration(self, info: Info) -> Annotated[AppIntegration, strawberry.lazy("app.graphql.types")] | None:
        integration_id = self.row.app_integration_id
        if integration_id is None:
            return None
        row = await info.context.loaders.integration.load(integration_id)
        return None if row is None else AppIntegration.from_row(row)

    @strawberry.field
    def member_count(self, info: Info) -> int:
        return settled(info.context.loaders.member_count.load(self.row.id), then=int)

    @strawberry.field(description="Members in the order they joined.")
    def members(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[User]:
        loaders = info.context.loaders
        key = window(self.row, first, after, projection.columns(info._raw_info, info.context.projections))
        return settled(
            loaders.member_count.load(self.row.id),
            loaders.members.load(key),
            then=lambda total, rows: offset_connection([User.from_row(r) for r in rows], total, key.offset),
        )


# As for User above: every group reads its id, its managed_by (converted) and created_at (a cursor).
projection.register(
    "UserGroup",
    {
        "__typename": (),
        "id": (),
        "identifier": ("identifier",),
        "name": ("display_name",),
        "description": ("description",),
        "orgIdentifier": ("org_identifier",),
        "projectIdentifier": ("project_identifier",),
        "managedBy": (),
        "externalId": ("external_id",),
        "createdAt": (),
        "updatedAt": ("updated_at",),
        "appIntegration": ("app_integration_id",),
        "memberCount": (),
        "members": (),
    },
    always=("id", "managed_by", "created_at"),
)


def window(row: Any, first: int | None, after: str | None, columns: Columns) -> Window:
    """The key of a row's page of a nested connection (its groups, its members) for `first` and
    `after`, whose rows read `columns`."""
    return Window(row.id, *offset_window(first, after), columns)


# The fields of users and groups that their resolvers load (`settled`), with the loads each makes for
# a row: a page of users or groups loads them for all its rows at once (`prefetch`).
USER_LOADS: dict[str, Loads] = {
    "managedByIdentityProvider": lambda loaders, row, _, __: [(loaders.ownership, row.id)],
    "groups": lambda loaders, row, arguments, columns: [
        (loaders.groups_of_user, window(row, arguments.get("first"), arguments.get("after"), columns))
    ],
}
GROUP_LOADS: dict[str, Loads] = {
    "memberCount": lambda loaders, row, _, __: [(loaders.member_count, row.id)],
    "members": lambda loaders, row, arguments, columns: [
        (loaders.member_count, row.id),
        (loaders.members, window(row, arguments.get("first"), arguments.get("after"), columns)),
    ],
}


@strawberry.type
class Viewer:
    account_identifier: str
    account_name: str
    permissions: list[str]


@strawberry.type
class Organization:
    identifier: str
    name: str

    @classmethod
    def from_row(cls, row: models.Organization) -> Organization:
        return cls(identifier=row.identifier, name=row.name)


@strawberry.type
class Project:
    identifier: str
    org_identifier: str
    name: str

    @classmethod
    def from_row(cls, row: models.Project) -> Project:
        return cls(identifier=row.identifier, org_identifier=row.org_identifier, name=row.name)


@strawberry.type(
    description=(
        "One entry of the provisioning activity log: a change, a refusal, or (action scim.request) one SCIM request and its "
        "answer. Personal data — the values before and after a change, what an error's detail quotes — is shown to admins only."
    )
)
class AuditEvent:
    id: strawberry.ID
    occurred_at: datetime
    caller: str = strawberry.field(description="The token id, 'system', or '-' for a request that authenticated nobody.")
    channel: AuditChannel  # type: ignore[valid-type]
    action: str
    resource_type: str
    resource_id: str | None
    outcome: AuditOutcome  # type: ignore[valid-type]
    detail: JSON
    request_id: str | None = strawberry.field(description="The X-Request-ID of a SCIM request's record.")
    method: str | None
    route: str | None = strawberry.field(description="The route template; never the query string.")
    status: int | None
    scim_type: str | None
    error_detail: str | None
    app_integration_id: strawberry.ID | None
    requests: int = strawberry.field(
        description=(
            "How many SCIM requests the record stands for: 1, or for successful reads, those of one token to one route "
            "with one status between two writes of the log (about a second) — the first's time and requestId, "
            "the last's in detail.lastRequestId, and the resourceId while they all named one."
        )
    )

    @classmethod
    def from_row(cls, row: models.AuditEvent, shown: Shown) -> AuditEvent:
        """The event as `shown` to the caller (services.audit.shown_to: personal data for admins only)."""
        return cls(
            id=strawberry.ID(str(row.id)),
            occurred_at=row.occurred_at,
            caller=row.caller,
            channel=_channel(row.channel),
            action=row.action,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            outcome=_outcome(row.outcome),
            detail=JSON(shown.detail),
            request_id=row.request_id,
            method=row.method,
            route=row.route,
            status=row.status,
            scim_type=row.scim_type,
            error_detail=shown.error_detail,
            app_integration_id=None if row.integration_id is None else strawberry.ID(row.integration_id),
            requests=row.requests,
        )


@strawberry.type
class OutcomeCount:
    outcome: AuditOutcome  # type: ignore[valid-type]
    count: int


@strawberry.type(description="SCIM requests that failed alike: their detail with its quoted values (user names, filters) blanked.")
class FailureCount:
    status: int
    scim_type: str | None
    detail: str
    count: int


@strawberry.type
class ActivitySummary:
    since: datetime = strawberry.field(description="The moment asked for, or 31 days ago if that is later.")
    total: int = strawberry.field(description="Events since then, of every kind (a summary of reads: each request it stands for).")
    outcomes: list[OutcomeCount] = strawberry.field(description="Events per outcome, most first (READ: successful reads).")
    top_failures: list[FailureCount] = strawberry.field(description="The five SCIM failures most often met, most first.")


@strawberry.type(description="An attribute of a declared custom schema extension.")
class SchemaExtensionAttribute:
    name: str
    type: str = strawberry.field(description="string, boolean, integer, decimal, dateTime, reference or binary")
    multi_valued: bool
    required: bool
    case_exact: bool
    description: str


@strawberry.type(
    description=(
        "A custom schema extension the account declared: advertised in SCIM /Schemas, its attributes' values type-checked. "
        "Needs the admin permission."
    )
)
class SchemaExtension:
    id: str = strawberry.field(description="The extension's URN, e.g. urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User")
    name: str
    description: str
    resource_type: str = strawberry.field(description="User or Group")
    attributes: list[SchemaExtensionAttribute]

    @classmethod
    def of(cls, declaration: Any) -> SchemaExtension:
        return cls(
            id=declaration.urn,
            name=declaration.name,
            description=declaration.description,
            resource_type=declaration.resource_type,
            attributes=[
                SchemaExtensionAttribute(
                    name=a.name,
                    type=a.type,
                    multi_valued=a.multi_valued,
                    required=a.required,
                    case_exact=a.case_exact,
                    description=a.description,
                )
                for a in declaration.attributes
            ],
        )


@strawberry.type(description="Settings of the account. Reading and changing them needs the admin permission.")
class AccountSettings:
    deprovision_retention_days: int = strawberry.field(
        description=(
            "Days a user deleted by the identity provider is kept, restorable with the same id and native groups; "
            "0 deletes at once. `python -m app purge` removes those past it."
        )
    )
    activity_retention_days: int = strawberry.field(
        description="Days the activity log keeps its records of SCIM requests (90 by default); `python -m app purge` removes older ones."
    )


@strawberry.type
class FeatureFlag:
    name: str
    enabled: bool
    description: str


@strawberry.type(description="An API token. The secret is never readable after creation.")
class ApiToken:
    token_id: str
    name: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    app_integration_id: strawberry.ID | None = strawberry.field(
        description="The app integration the token provisions for; null: bound to none (nothing it provisions records one)."
    )

    @classmethod
    def from_row(cls, row: Any) -> ApiToken:
        return cls(
            token_id=row.token_id,
            name=row.name,
            permissions=list(row.permissions),
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            app_integration_id=None if row.app_integration_id is None else strawberry.ID(row.app_integration_id),
        )


@strawberry.type
class CreatedApiToken:
    token: ApiToken
    secret: str = strawberry.field(description="The bearer token. Shown once; store it now.")


@strawberry.type
class DeletedUserGroup:
    id: strawberry.ID


@strawberry.type
class DeletedUser:
    id: strawberry.ID


@strawberry.type(description="A failed SCIM request of an app integration's tokens (never its body).")
class IntegrationFailure:
    at: datetime
    status: int
    scim_type: str | None
    detail: str


@strawberry.type(description="How an app integration's provisioning is going, as its tokens' SCIM requests show it.")
class AppIntegrationHealth:
    last_success_at: datetime | None
    requests_24h: int = strawberry.field(name="requests24h", description="SCIM requests in the last 24 hours (whole hours).")
    client_failures_24h: int = strawberry.field(name="clientFailures24h", description="Of those, answered 4xx.")
    server_failures_24h: int = strawberry.field(name="serverFailures24h", description="Of those, answered 5xx.")
    last_failure: IntegrationFailure | None


@strawberry.type(
    description=(
        "An app of the identity provider connected to the account (Harness's FirstGen or NextGen app integration). "
        "Its health and tokens need the admin permission."
    )
)
class AppIntegration:
    id: strawberry.ID
    name: str
    generation: AppIntegrationGeneration  # type: ignore[valid-type]
    provider: str = strawberry.field(description='The identity provider, as the admin named it: "Azure AD", "Okta", …')
    status: AppIntegrationStatus  # type: ignore[valid-type]
    created_at: datetime
    disconnected_at: datetime | None
    row: strawberry.Private[Any]

    @classmethod
    def from_row(cls, row: Any) -> AppIntegration:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            generation=_generation(row.generation),
            provider=row.provider,
            status=_status(row.status),
            created_at=row.created_at,
            disconnected_at=row.disconnected_at,
            row=row,
        )

    @strawberry.field
    async def health(self, info: Info) -> AppIntegrationHealth:
        info.context.caller.require(Permission.ADMIN)
        found = await info.context.loaders.integration_health.load(self.row.id)
        failure = found.last_failure
        return AppIntegrationHealth(
            last_success_at=found.last_success_at,
            requests_24h=found.requests,
            client_failures_24h=found.client_failures,
            server_failures_24h=found.server_failures,
            last_failure=None
            if failure is None
            else IntegrationFailure(at=failure.at, status=failure.status, scim_type=failure.scim_type, detail=failure.detail),
        )

    @strawberry.field(description="Its tokens, newest first, revoked ones included.")
    async def tokens(self, info: Info) -> list[ApiToken]:
        info.context.caller.require(Permission.ADMIN)
        return [ApiToken.from_row(r) for r in await info.context.loaders.integration_tokens.load(self.row.id)]

    @strawberry.field(
        description=(
            "Its newest token that is not revoked expires within 14 days, or has expired: provisioning stops then, "
            "unless a new token is put in the identity provider's app."
        )
    )
    async def token_expires_soon(self, info: Info) -> bool:
        info.context.caller.require(Permission.ADMIN)
        return integrations.token_expires_soon(await info.context.loaders.integration_tokens.load(self.row.id), info.context.now)


@strawberry.type(description="Whether the account's SSO would let a user in, and through which app integration.")
class SsoLoginPreflight:
    allowed: bool
    authenticating_integration: AppIntegration | None = strawberry.field(
        description="The integration SSO logins go through: the oldest ACTIVE FIRSTGEN one, else the oldest ACTIVE NEXTGEN one."
    )
    reason: SsoLoginRefusal | None  # type: ignore[valid-type]
    user: User | None


@strawberry.type(description="An active user the account's SSO would refuse.")
class SsoLoginRisk:
    user: User
    reason: SsoLoginRefusal  # type: ignore[valid-type]
    assigned_by: list[AppIntegration] = strawberry.field(description="The app integrations that do assign the user.")


@strawberry.type
class DisconnectedAppIntegration:
    app_integration: AppIntegration
    revoked_token_ids: list[str]
    released_user_ids: list[strawberry.ID] = strawberry.field(description="Users now editable in the admin UI (provisionedBy MANAGER).")
    released_user_group_ids: list[strawberry.ID] = strawberry.field(description="Groups now native (managedBy MANAGER).")
