"""Write side of the admin API. Each mutation takes one `input` and returns a union of its success
type and the error types; the rules themselves live in the services."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from app.graphql.context import Info
from app.graphql.errors import (
    ConflictError,
    IdentityProviderManagedError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    run_mutation,
)
from app.graphql.types import ApiToken, CreatedApiToken, DeletedUser, DeletedUserGroup, FeatureFlag, Organization, Project, User, UserGroup
from app.services import accounts, flags, groups, tokens, users
from app.services.groups import UNSET, MemberChange

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
SetFeatureFlagResult = Annotated[FeatureFlag | ValidationError | PermissionDeniedError, strawberry.union("SetFeatureFlagResult")]
CreateApiTokenResult = Annotated[CreatedApiToken | ValidationError | PermissionDeniedError, strawberry.union("CreateApiTokenResult")]
RevokeApiTokenResult = Annotated[ApiToken | NotFoundError | PermissionDeniedError, strawberry.union("RevokeApiTokenResult")]
OrganizationResult = Annotated[
    Organization | ValidationError | ConflictError | PermissionDeniedError, strawberry.union("OrganizationResult")
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
    name: strawberry.Maybe[str] = strawberry.field(description="The new name; it cannot be null.")
    description: strawberry.Maybe[str | None] = strawberry.field(description="The new description; null clears it.")


@strawberry.input
class DeleteInput:
    id: strawberry.ID


@strawberry.input
class UserGroupMembersInput:
    user_group_id: strawberry.ID
    user_ids: list[strawberry.ID]


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    user_group_ids: list[strawberry.ID] | None = None


@strawberry.input(description="What to change; a field left out stays as it is.")
class UpdateUserInput:
    id: strawberry.ID
    name: strawberry.Maybe[str] = strawberry.field(description="The new full name; it cannot be null.")
    email: strawberry.Maybe[str] = strawberry.field(description="The new email address; it cannot be null.")


@strawberry.input
class SetFeatureFlagInput:
    name: str
    enabled: bool


@strawberry.input
class CreateApiTokenInput:
    name: str
    permissions: list[str]
    expires_in_days: int | None = None


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


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a native user group (managedBy MANAGER).")
    async def create_user_group(self, info: Info, input: CreateUserGroupInput) -> CreateUserGroupResult:
        ctx = info.context

        async def work() -> UserGroup:
            group, _ = await groups.create_group(
                ctx.session,
                ctx.caller,
                display_name=input.name,
                identifier=input.identifier,
                description=input.description,
                org_identifier=input.org_identifier,
                project_identifier=input.project_identifier,
                member_ids=[str(i) for i in input.user_ids or []],
            )
            return UserGroup.from_row(group)

        return await run_mutation(ctx, action="group.create", resource_type="UserGroup", resource_id=None, work=work)

    @strawberry.mutation(description="Rename a native group or change any group's description.")
    async def update_user_group(self, info: Info, input: UpdateUserGroupInput) -> UserGroupResult:
        ctx = info.context

        async def work() -> UserGroup:
            group = await groups.get_group(ctx.session, ctx.caller, str(input.id), for_update=True)
            await groups.update_group(
                ctx.session,
                ctx.caller,
                group,
                display_name=input.name.value if input.name else UNSET,
                description=input.description.value if input.description else UNSET,
            )
            return UserGroup.from_row(group)

        return await run_mutation(ctx, action="group.update", resource_type="UserGroup", resource_id=str(input.id), work=work)

    @strawberry.mutation
    async def delete_user_group(self, info: Info, input: DeleteInput) -> DeleteUserGroupResult:
        ctx = info.context

        async def work() -> DeletedUserGroup:
            group = await groups.get_group(ctx.session, ctx.caller, str(input.id), for_update=True)
            await groups.delete_group(ctx.session, ctx.caller, group)
            return DeletedUserGroup(id=input.id)

        return await run_mutation(ctx, action="group.delete", resource_type="UserGroup", resource_id=str(input.id), work=work)

    @strawberry.mutation
    async def add_users_to_user_group(self, info: Info, input: UserGroupMembersInput) -> UserGroupResult:
        return await _change_members(info, input, "add")

    @strawberry.mutation
    async def remove_users_from_user_group(self, info: Info, input: UserGroupMembersInput) -> UserGroupResult:
        return await _change_members(info, input, "remove")

    @strawberry.mutation(description="Create a user in the admin UI (provisionedBy MANAGER).")
    async def create_user(self, info: Info, input: CreateUserInput) -> UserResult:
        ctx = info.context

        async def work() -> User:
            user = await users.create_user(ctx.session, ctx.caller, users.profile_values(email=input.email, name=input.name))
            # In id order, like every request that locks several groups, so that two never deadlock.
            for group_id in sorted({str(i) for i in input.user_group_ids or []}):
                group = await groups.get_group(ctx.session, ctx.caller, str(group_id), for_update=True)
                await groups.change_members(ctx.session, ctx.caller, group, [MemberChange("add", (user.id,))])
            return User.from_row(user)

        return await run_mutation(ctx, action="user.create", resource_type="User", resource_id=None, work=work)

    @strawberry.mutation(description="Change a user's full name or email, where the identity provider does not own them.")
    async def update_user(self, info: Info, input: UpdateUserInput) -> UserResult:
        ctx = info.context

        async def work() -> User:
            user = await users.get_user(ctx.session, ctx.caller, str(input.id), for_update=True)
            name, email = (input.name.value if input.name else None), (input.email.value if input.email else None)
            await users.update_profile(ctx.session, ctx.caller, user, name=name, email=email)
            return User.from_row(user)

        return await run_mutation(ctx, action="user.update", resource_type="User", resource_id=str(input.id), work=work)

    @strawberry.mutation
    async def delete_user(self, info: Info, input: DeleteInput) -> DeleteUserResult:
        ctx = info.context

        async def work() -> DeletedUser:
            user = await users.get_user_for_delete(ctx.session, ctx.caller, str(input.id))
            await users.delete_user(ctx.session, ctx.caller, user)
            return DeletedUser(id=input.id)

        return await run_mutation(ctx, action="user.delete", resource_type="User", resource_id=str(input.id), work=work)

    @strawberry.mutation
    async def set_feature_flag(self, info: Info, input: SetFeatureFlagInput) -> SetFeatureFlagResult:
        ctx = info.context

        async def work() -> FeatureFlag:
            flag = await flags.set_flag(ctx.session, ctx.caller, input.name, input.enabled)
            return FeatureFlag(name=flag.name, enabled=input.enabled, description=flag.description)

        return await run_mutation(ctx, action="flag.set", resource_type="FeatureFlag", resource_id=input.name, work=work)

    @strawberry.mutation(description="Create an API token; the secret is returned only in this response.")
    async def create_api_token(self, info: Info, input: CreateApiTokenInput) -> CreateApiTokenResult:
        ctx = info.context

        async def work() -> CreatedApiToken:
            issued = await tokens.issue(
                ctx.session, ctx.caller, name=input.name, permissions=list(input.permissions), expires_in_days=input.expires_in_days
            )
            return CreatedApiToken(token=ApiToken.from_row(issued.token), secret=issued.plaintext)

        return await run_mutation(ctx, action="token.create", resource_type="ApiToken", resource_id=None, work=work)

    @strawberry.mutation
    async def revoke_api_token(self, info: Info, input: RevokeApiTokenInput) -> RevokeApiTokenResult:
        ctx = info.context

        async def work() -> ApiToken:
            revoked = ApiToken.from_row(await tokens.revoke(ctx.session, ctx.caller, input.token_id))
            # Other instances notice within their token cache's TTL; this one at once.
            ctx.request.app.state.token_cache.forget(input.token_id)
            return revoked

        return await run_mutation(ctx, action="token.revoke", resource_type="ApiToken", resource_id=input.token_id, work=work)

    @strawberry.mutation
    async def create_organization(self, info: Info, input: CreateOrganizationInput) -> OrganizationResult:
        ctx = info.context

        async def work() -> Organization:
            return Organization.from_row(await accounts.create_organization(ctx.session, ctx.caller, input.identifier, input.name))

        return await run_mutation(ctx, action="organization.create", resource_type="Organization", resource_id=input.identifier, work=work)

    @strawberry.mutation
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectResult:
        ctx = info.context

        async def work() -> Project:
            row = await accounts.create_project(ctx.session, ctx.caller, input.org_identifier, input.identifier, input.name)
            return Project.from_row(row)

        return await run_mutation(ctx, action="project.create", resource_type="Project", resource_id=input.identifier, work=work)


async def _change_members(info: Info, input: UserGroupMembersInput, kind: str) -> Any:
    ctx = info.context

    async def work() -> UserGroup:
        group = await groups.get_group(ctx.session, ctx.caller, str(input.user_group_id), for_update=True)
        await groups.change_members(ctx.session, ctx.caller, group, [MemberChange(kind, tuple(str(i) for i in input.user_ids))])  # type: ignore[arg-type]
        return UserGroup.from_row(group)

    return await run_mutation(ctx, action="group.members", resource_type="UserGroup", resource_id=str(input.user_group_id), work=work)
