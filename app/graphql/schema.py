"""The GraphQL schema, assembled from the domain modules."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info


@strawberry.type(description="The account and permissions of the token making the request.")
class Viewer:
    account_identifier: str
    account_name: str
    permissions: list[str]


@strawberry.type
class Query:
    @strawberry.field(description="Who is calling: the token's account and permissions.")
    async def viewer(self, info: Info) -> Viewer:
        from app.services import accounts

        caller = info.context.caller
        account = await accounts.get_account(info.context.session, caller.account_identifier)
        return Viewer(
            account_identifier=account.identifier, account_name=account.name, permissions=sorted(caller.permissions)
        )


schema = strawberry.Schema(query=Query)
