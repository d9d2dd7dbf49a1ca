"""Each instance keeps verified tokens for at most one second (app.auth.TokenCache): revoking a token
on one instance stops it on every other within that second — shown with two server processes on one
database, as a scaled-out deployment runs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from app.auth import TokenCache
from tests.served import serve

VIEWER = {"query": "{ viewer { permissions } }"}
CREATE_TOKEN = {
    "query": (
        'mutation { createApiToken(input: {name: "sync", permissions: ["users:read"]}) '
        "{ ... on CreatedApiToken { secret token { tokenId } } } }"
    )
}


def test_a_token_revoked_on_one_instance_is_refused_by_another_within_a_second(tmp_path: Path) -> None:
    with serve(tmp_path, name="first") as first, serve(tmp_path, name="second", first=False) as second:
        admin = {"Authorization": f"Bearer {first.token}"}
        created = httpx.post(f"{first.url}/graphql", json=CREATE_TOKEN, headers=admin).json()["data"]["createApiToken"]
        sync = {"Authorization": f"Bearer {created['secret']}"}
        token_id = created["token"]["tokenId"]
        # Both instances have verified the token and keep it.
        for instance in (first, second):
            answer = httpx.post(f"{instance.url}/graphql", json=VIEWER, headers=sync)
            assert answer.json()["data"]["viewer"]["permissions"] == ["users:read"], answer.text
        revoke = {"query": "mutation($t: String!) { revokeApiToken(input: {tokenId: $t}) { __typename } }", "variables": {"t": token_id}}
        assert httpx.post(f"{first.url}/graphql", json=revoke, headers=admin).json()["data"]["revokeApiToken"]["__typename"] == "ApiToken"
        revoked_at = time.monotonic()
        assert httpx.post(f"{first.url}/graphql", json=VIEWER, headers=sync).status_code == 401  # at once where it was revoked
        while httpx.post(f"{second.url}/graphql", json=VIEWER, headers=sync).status_code == 200:
            assert time.monotonic() - revoked_at < TokenCache.TTL + 0.5, "the second instance still accepts the revoked token"
            time.sleep(0.05)
        assert httpx.post(f"{second.url}/graphql", json=VIEWER, headers=sync).status_code == 401
