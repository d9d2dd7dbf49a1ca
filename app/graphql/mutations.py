"""Write side of the admin API. Each mutation takes one `input` and returns a union of its success
type and the error types; the rules themselves live in the services."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import strawberry

from app.errors import InvalidInput
from app.graphql.context import Info
from app.graphql.errors import ConflictError, IdentityProviderManagedError, Mutating, NotFoundError, PermissionDeniedError, ValidationError
from app.graphql.types import (
    AccountSettings,
    ApiToken,
    AppIntegration,
    AppIntegrationGeneration,
    AppIntegrationStatus,
    CreatedApiToken,
    DeletedUser,
    DeletedUserGroup,
    DisconnectedAppIntegration,
    FeatureFlag,
    Organization,
    Project,
    SchemaExtension,
    User,
    UserGroup,
)
from app.services import accounts, extensions, flags, groups, integrations, tokens, users
from app.services.common import UNSET
from app.services.groups import MemberChange

CreateUserGroupResult = Annotated[
    UserGroup | ValidationError | ConflictError | NotFoundError | PermissionDeniedError | IdentityProviderManagedError,
    strawberry.union("CreateUserGroupResult"),
]
UserGroupResult = Annotated[
    UserGroup | ValidationError | ConflictError | NotFoundError | PermissionDeniedError | IdentityProviderManagedError,
    strawberry.union("UserGroupResult"),
]
DeleteUserGroupResult = Annotated[
    DeletedUserGroup | NotFoundError | PermissionDeniedError | IdentityProviderManagedError, strawberry.union("DeleteUserGroupResult")
]
UserResult = Annotated[
    User | ValidationError | ConflictError | NotFoundError | PermissionDeniedError | IdentityProviderManagedError,
    strawberry.union("UserResult"),
]
DeleteUserResult = Annotated[
    DeletedUser | NotFoundError | PermissionDeniedError | IdentityProviderManagedError, strawberry.union("DeleteUserResult")
]
SchemaExtensionResult = Annotated[SchemaExtension | ValidationError | PermissionDeniedError, strawberry.union("SchemaExtensionResult")]
PurgeUserResult = Annotated[DeletedUser | NotFoundError | ValidationError | PermissionDeniedError, strawberry.union("PurgeUserResult")]
AccountSettingsResult = Annotated[AccountSettings | ValidationError | PermissionDeniedError, strawberry.union("AccountSettingsResult")]
SetFeatureFlagResult = Annotated[FeatureFlag | ValidationError | PermissionDeniedError, strawberry.union("SetFeatureFlagResult")]
CreateApiTokenResult = Annotated[
    CreatedApiToken | ValidationError | NotFoundError | PermissionDeniedError, strawberry.union("CreateApiTokenResult")
]
RevokeApiTokenResult = Annotated[ApiToken | NotFoundError | PermissionDeniedError, strawberry.union("RevokeApiTokenResult")]
OrganizationResult = Annotated[
    Organization | ValidationError | ConflictError | PermissionDeniedError, strawberry.union("OrganizationResult")
]
AppIntegrationResult = Annotated[
    AppIntegration | ValidationError | ConflictError | NotFoundError | PermissionDeniedError, strawberry.union("AppIntegrationResult")
]
DisconnectAppIntegrationResult = Annotated[
    DisconnectedAppIntegration | NotFoundError | PermissionDeniedError, strawberry.union("DisconnectAppIntegrationResult")
]
ProjectResult = Annotated[
    Project | ValidationError | ConflictError | NotFoundError | PermissionDeniedError, strawberry.union("ProjectResult")
]


@strawberry.input
class CreateUserGroupInput:
    name: str
    identifier: str | None = strawberry.field(default=None, description="Derived from the name when omitted.")
    description: str | None = None
    org_identifier: str | None = None
    project_identifier: str | None = None
    user_ids: list[strawberry.ID] | None = None


@strawberry.input(description="What to change; a field left out stays as it is.")
class UpdateUserGroupInput:
    id: strawberry.ID
    name: strawberry.Maybe[str | None] = strawberry.field(description="The new name; null is refused (a ValidationError).")
    description: strawberry.Maybe[str | None] = strawberry.field(description="The new description; null clears it.")


@strawberry.input
class DeleteInput:
    id: strawberry.ID


@strawberry.input
class UserGroupMembersInput:
    user_group_id: strawberry.ID
    user_ids: list[strawberry.ID]


@strawberry.input(description="An attribute of a custom schema extension, as SCIM /Schemas describes one.")
class SchemaExtensionAttributeInput:
    name: str
    type: str = strawberry.field(default="string", description="string, boolean, integer, decimal, dateTime, reference or binary")
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    description: str = ""


@strawberry.input
class SchemaExtensionInput:
    id: str = strawberry.field(description="The URN, ending in :User or :Group")
    name: str | None = None
    description: str = ""
    attributes: list[SchemaExtensionAttributeInput]


@strawberry.input
class AccountSettingsInput:
    deprovision_retention_days: int | None = strawberry.field(default=None, description="Left out: unchanged.")
    activity_retention_days: int | None = strawberry.field(default=None, description="Left out: unchanged.")


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    user_group_ids: list[strawberry.ID] | None = None


@strawberry.input(description="What to change; a field left out stays as it is.")
class UpdateUserInput:
    id: strawberry.ID
    name: strawberry.Maybe[str | None] = strawberry.field(description="The new full name; null is refused (a ValidationError).")
    email: strawberry.Maybe[str | None] = strawberry.field(description="The new email address; null is refused (a ValidationError).")


@strawberry.input
class SetFeatureFlagInput:
    name: str
    enabled: bool


@strawberry.input
class CreateApiTokenInput:
    name: str
    permissions: list[str]
    expires_in_days: int | None = None
    app_integration_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "Bind the token to this active app integration: what it provisions records the integration, and it sees only "
            "the groups the integration owns."
        ),
    )


@strawberry.input
class CreateAppIntegrationInput:
    name: str
    generation: AppIntegrationGeneration  # type: ignore[valid-type]
    provider: str = strawberry.field(description='The identity provider: "Azure AD", "Okta", or any name.')


@strawberry.input(description="What to change; a field left out stays as it is.")
class UpdateAppIntegrationInput:
    id: strawberry.ID
    name: strawberry.Maybe[str | None] = strawberry.field(description="The new name; null is refused.")
    generation: strawberry.Maybe[AppIntegrationGeneration | None] = strawberry.field(  # type: ignore[valid-type]
        description="Correct the generation; it decides which integration authenticates SSO."
    )
    provider: strawberry.Maybe[str | None] = strawberry.field(description="The new provider name; null is refused.")
    status: strawberry.Maybe[AppIntegrationStatus | None] = strawberry.field(  # type: ignore[valid-type]
        description="ACTIVE reconnects a disconnected integration (bind a new token to it next); disconnect with disconnectAppIntegration."
    )


@strawberry.input
class DisconnectAppIntegrationInput:
    id: strawberry.ID
    release: bool = strawberry.field(
        description=(
            "true: its groups become native and its users that no other active integration assigns become editable here. "
            "false: everything it provisioned stays locked, as while reconnecting it."
        )
    )


@strawberry.input
class RevokeApiTokenInput:
    token_id: str


@strawberry.input
class CreateOrganizationInput:
    identifier: str
    name: str


@strawberry.input
class CreateProjectInput:
    org_identifier: str
    identifier: str
    name: str


def _ran(action: str, resource_type: str, resource_id: str | None = None) -> list[Any]:
    """The extension every mutation runs under (see `Mutating`); `resource_id` names the field of the
    input that holds the id of the resource it is about."""
    return [Mutating(action, resource_type, resource_id)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a native user group (managedBy MANAGER).", extensions=_ran("group.create", "UserGroup"))
    async def create_user_group(self, info: Info, input: CreateUserGroupInput) -> CreateUserGroupResult:
        ctx = info.context
        group, _ = await groups.create_group(
            ctx.session,
            ctx.caller,
            groups.GroupValues(display_name=input.name, description=input.description),
            identifier=input.identifier,
            org_identifier=input.org_identifier,
            project_identifier=input.project_identifier,
            member_ids=[str(i) for i in input.user_ids or []],
        )
        return UserGroup.from_row(group)

    @strawberry.mutation(
        description="Rename a native group or change any group's description.", extensions=_ran("group.update", "UserGroup", "id")
    )
    async def update_user_group(self, info: Info, input: UpdateUserGroupInput) -> UserGroupResult:
        ctx = info.context
        group = await groups.get_group(ctx.session, ctx.caller, str(input.id), for_update=True)
        changes = groups.GroupValues(
            display_name=input.name.value if input.name else UNSET, description=input.description.value if input.description else UNSET
        )
        await groups.update_group(ctx.session, ctx.caller, group, changes)
        return UserGroup.from_row(group)

    @strawberry.mutation(extensions=_ran("group.delete", "UserGroup", "id"))
    async def delete_user_group(self, info: Info, input: DeleteInput) -> DeleteUserGroupResult:
        ctx = info.context
        group = await groups.get_group(ctx.session, ctx.caller, str(input.id), for_update=True)
        await groups.delete_group(ctx.session, ctx.caller, group)
        return DeletedUserGroup(id=input.id)

    @strawberry.mutation(extensions=_ran("group.members", "UserGroup", "user_group_id"))
    async def add_users_to_user_group(self, info: Info, input: UserGroupMembersInput) -> UserGroupResult:
        return await _change_members(info, input, "add")

    @strawberry.mutation(extensions=_ran("group.members", "UserGroup", "user_group_id"))
    async def remove_users_from_user_group(self, info: Info, input: UserGroupMembersInput) -> UserGroupResult:
        return await _change_members(info, input, "remove")

    @strawberry.mutation(description="Create a user in the admin UI (provisionedBy MANAGER).", extensions=_ran("user.create", "User"))
    async def create_user(self, info: Info, input: CreateUserInput) -> UserResult:
        ctx = info.context
        user = (await users.create_user(ctx.session, ctx.caller, users.profile_values(email=input.email, name=input.name))).user
        # In id order, like every request that locks several groups, so that two never deadlock.
        for group_id in sorted({str(i) for i in input.user_group_ids or []}):
            group = await groups.get_group(ctx.session, ctx.caller, str(group_id), for_update=True)
            await groups.change_members(ctx.session, ctx.caller, group, [MemberChange("add", (user.id,))])
        return User.from_row(user)

    @strawberry.mutation(
        description="Change a user's full name or email, where the identity provider does not own them.",
        extensions=_ran("user.update", "User", "id"),
    )
    async def update_user(self, info: Info, input: UpdateUserInput) -> UserResult:
        ctx = info.context
        user = await users.get_user(ctx.session, ctx.caller, str(input.id), for_update=True)
        name, email = (input.name.value if input.name else UNSET), (input.email.value if input.email else UNSET)
        await users.update_profile(ctx.session, ctx.caller, user, name=name, email=email)
        return User.from_row(user)

    @strawberry.mutation(extensions=_ran("user.delete", "User", "id"))
    async def delete_user(self, info: Info, input: DeleteInput) -> DeleteUserResult:
        ctx = info.context
        user = await users.get_user_for_delete(ctx.session, ctx.caller, str(input.id))
        await users.delete_user(ctx.session, ctx.caller, user)
        return DeletedUser(id=input.id)

    @strawberry.mutation(
        description=(
            "Delete a user the identity provider deprovisioned now, instead of when the account's retention ends. "
            "Needs the admin permission."
        ),
        extensions=_ran("user.purge", "User", "id"),
    )
    async def purge_user(self, info: Info, input: DeleteInput) -> PurgeUserResult:
        await users.purge_user(info.context.session, info.context.caller, str(input.id))
        return DeletedUser(id=input.id)

    @strawberry.mutation(
        description=(
            "Declare a custom schema extension (again: replace its declaration): advertised in SCIM /Schemas, the values of its "
            "attributes type-checked. Needs the admin permission."
        ),
        extensions=_ran("extension.declared", "SchemaExtension"),
    )
    async def declare_schema_extension(self, info: Info, input: SchemaExtensionInput) -> SchemaExtensionResult:
        document: dict[str, Any] = {
            "id": input.id,
            "description": input.description,
            "attributes": [
                {
                    "name": a.name,
                    "type": a.type,
                    "multiValued": a.multi_valued,
                    "required": a.required,
                    "caseExact": a.case_exact,
                    "description": a.description,
                }
                for a in input.attributes
            ],
        }
        if input.name is not None:
            document["name"] = input.name
        return SchemaExtension.of(await extensions.declare(info.context.session, info.context.caller, document))

    @strawberry.mutation(
        description="Change the account's settings. Needs the admin permission.", extensions=_ran("account.settings", "Account")
    )
    async def update_account_settings(self, info: Info, input: AccountSettingsInput) -> AccountSettingsResult:
        ctx = info.context
        if input.deprovision_retention_days is not None:
            await accounts.set_deprovision_retention_days(ctx.session, ctx.caller, input.deprovision_retention_days)
        if input.activity_retention_days is not None:
            await accounts.set_activity_retention_days(ctx.session, ctx.caller, input.activity_retention_days)
        return AccountSettings(
            deprovision_retention_days=await accounts.deprovision_retention_days(ctx.session, ctx.caller),
            activity_retention_days=await accounts.activity_retention_days(ctx.session, ctx.caller),
        )

    @strawberry.mutation(extensions=_ran("flag.set", "FeatureFlag", "name"))
    async def set_feature_flag(self, info: Info, input: SetFeatureFlagInput) -> SetFeatureFlagResult:
        flag = await flags.set_flag(info.context.session, info.context.caller, input.name, input.enabled)
        return FeatureFlag(name=flag.name, enabled=input.enabled, description=flag.description)

    @strawberry.mutation(
        description="Create an API token; the secret is returned only in this response.", extensions=_ran("token.create", "ApiToken")
    )
    async def create_api_token(self, info: Info, input: CreateApiTokenInput) -> CreateApiTokenResult:
        ctx = info.context
        issued = await tokens.issue(
            ctx.session,
            ctx.caller,
            name=input.name,
            permissions=list(input.permissions),
            expires_in_days=input.expires_in_days,
            integration_id=None if input.app_integration_id is None else str(input.app_integration_id),
        )
        return CreatedApiToken(token=ApiToken.from_row(issued.token), secret=issued.plaintext)

    @strawberry.mutation(
        description="Connect an app of the identity provider. Needs the admin permission.",
        extensions=_ran("integration.create", "AppIntegration"),
    )
    async def create_app_integration(self, info: Info, input: CreateAppIntegrationInput) -> AppIntegrationResult:
        ctx = info.context
        created = await integrations.create_integration(
            ctx.session, ctx.caller, name=input.name, generation=input.generation, provider=input.provider
        )
        return AppIntegration.from_row(created)

    @strawberry.mutation(
        description="Rename an app integration, correct its generation or provider, or reconnect it. Needs the admin permission.",
        extensions=_ran("integration.update", "AppIntegration", "id"),
    )
    async def update_app_integration(self, info: Info, input: UpdateAppIntegrationInput) -> AppIntegrationResult:
        ctx = info.context
        changes = {
            name: given.value if given.value is not None else _refused_null(name)
            for name, given in (
                ("name", input.name),
                ("generation", input.generation),
                ("provider", input.provider),
                ("status", input.status),
            )
            if given
        }
        return AppIntegration.from_row(await integrations.update_integration(ctx.session, ctx.caller, str(input.id), **changes))

    @strawberry.mutation(
        description=(
            "Disconnect an app integration: its tokens are revoked and it neither authenticates SSO nor assigns anyone; "
            "`release` hands what it provisioned back to the admin UI. Needs the admin permission."
        ),
        extensions=_ran("integration.disconnect", "AppIntegration", "id"),
    )
    async def disconnect_app_integration(self, info: Info, input: DisconnectAppIntegrationInput) -> DisconnectAppIntegrationResult:
        ctx = info.context
        done = await integrations.disconnect(ctx.session, ctx.caller, str(input.id), release=input.release)
        for token_id in done.revoked_tokens:  # other instances notice within their token cache's TTL
            ctx.request.app.state.token_cache.forget((ctx.caller.account_identifier, token_id))
        return DisconnectedAppIntegration(
            app_integration=AppIntegration.from_row(done.integration),
            revoked_token_ids=done.revoked_tokens,
            released_user_ids=[strawberry.ID(i) for i in done.released_users],
            released_user_group_ids=[strawberry.ID(i) for i in done.released_groups],
        )

    @strawberry.mutation(extensions=_ran("token.revoke", "ApiToken", "token_id"))
    async def revoke_api_token(self, info: Info, input: RevokeApiTokenInput) -> RevokeApiTokenResult:
        ctx = info.context
        revoked = ApiToken.from_row(await tokens.revoke(ctx.session, ctx.caller, input.token_id))
        # Other instances notice within their token cache's TTL; this one at once.
        ctx.request.app.state.token_cache.forget((ctx.caller.account_identifier, input.token_id))
        return revoked

    @strawberry.mutation(extensions=_ran("organization.create", "Organization", "identifier"))
    async def create_organization(self, info: Info, input: CreateOrganizationInput) -> OrganizationResult:
        ctx = info.context
        return Organization.from_row(await accounts.create_organization(ctx.session, ctx.caller, input.identifier, input.name))

    @strawberry.mutation(extensions=_ran("project.create", "Project", "identifier"))
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectResult:
        ctx = info.context
        return Project.from_row(await accounts.create_project(ctx.session, ctx.caller, input.org_identifier, input.identifier, input.name))


def _refused_null(name: str) -> Any:
    raise InvalidInput(f"{name} cannot be null", field=name)


async def _change_members(info: Info, input: UserGroupMembersInput, kind: Literal["add", "remove"]) -> UserGroup:
    ctx = info.context
    group = await groups.get_group(ctx.session, ctx.caller, str(input.user_group_id), for_update=True)
    await groups.change_members(ctx.session, ctx.caller, group, [MemberChange(kind, tuple(str(i) for i in input.user_ids))])
    return UserGroup.from_row(group)
