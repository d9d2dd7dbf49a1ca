"""The reference: the in-memory SCIM server of the `scim2-server` package (its ASGI application on
its in-memory storage), served with the service's uvicorn configuration, loaded with the
benchmark's data through the storage's own bulk API (`InMemoryStorage.resources`) rather than
through HTTP. Requests need the bearer token given on the command line.

    python -m bench.reference --port 8102 --members 10000 --groups 200 --spare 10000 --token TOKEN
"""

from __future__ import annotations

import argparse
import os
import secrets
from datetime import UTC, datetime
from typing import Any

from bench.dataset import Dataset, entra_user, group_id, group_name, user_id


def _resources(dataset: Dataset) -> list[Any]:
    from scim2_models import EnterpriseUser, Group, User

    created = datetime(2024, 1, 1, tzinfo=UTC)
    meta = {"created": created, "lastModified": created, "version": 'W/"1"'}
    users: list[Any] = []
    for n in range(dataset.users):
        document = {k: v for k, v in entra_user(n).items() if v not in (None, [])}
        document.update(id=user_id(n), meta={"resourceType": "User", **meta})
        users.append(User[EnterpriseUser].model_validate(document))
    members: dict[int, list[dict[str, str]]] = {}
    for group, n in dataset.memberships():
        members.setdefault(group, []).append({"value": user_id(n), "type": "User"})
    groups = [
        Group.model_validate(
            {
                "id": group_id(g),
                "displayName": group_name(g),
                "externalId": group_id(g),
                "members": members.get(g, []),
                "meta": {"resourceType": "Group", **meta},
            }
        )
        for g in range(dataset.groups)
    ]
    return users + groups


def create_reference(dataset: Dataset, token: str) -> Any:
    from scim2_models import ScimProvider, UnauthorizedException
    from scim2_server.applications.asgi import ASGIApplication
    from scim2_server.memory import AsyncInMemoryStorage, InMemoryStorage
    from scim2_server.requests import ScimRequest
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
    from scim2_server.utils import load_default_resource_types, load_default_schemas, load_default_service_provider_config

    class BearerASGIApplication(ASGIApplication):
        """The package's ASGI application with the bearer-token check of its own test server."""

        def check_auth(self, request: ScimRequest) -> None:
            scheme, _, given = (request.header("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given, token):
                raise UnauthorizedException

    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(load_default_schemas().values(), load_default_resource_types().values(), config=config)
    storage = InMemoryStorage()
    storage.resources = _resources(dataset)
    service = ScimService(provider, secret=os.environ.get("SCIM2_SERVER_SECRET") or secrets.token_urlsafe(32))
    return BearerASGIApplication(AsyncInMemoryStorage(storage), provider, service)


def main() -> None:
    from bench.serve import serve

    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--groups", type=int, required=True)
    parser.add_argument("--spare", type=int, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    serve(create_reference(Dataset(members=args.members, groups=args.groups, spare=args.spare), args.token), args.port)


if __name__ == "__main__":
    main()
