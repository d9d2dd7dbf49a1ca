from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.auth import TokenCache
from app.db.models import ApiToken, Channel
from app.db.types import utcnow
from app.errors import InvalidInput, PermissionDenied, Unauthenticated
from app.services import accounts, tokens
from app.services.caller import Permission
from tests.support.clients import Tenant, make_tenant


async def _auth(sm: async_sessionmaker[AsyncSession], raw: str, account: str | None = None) -> object:
    async with sm() as session, session.begin():
        return await tokens.authenticate(session, raw, channel=Channel.SCIM, account_identifier=account)


async def test_token_format_and_strength(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tenant = await make_tenant(sessionmaker, "acme")
    prefix, account, token_id, secret = tenant.token.split(".")
    assert (prefix, account, token_id) == ("sat", "acme", tenant.token_id)
    assert len(secret) >= 43  # 32 random bytes, base64url


async def test_plaintext_secret_is_stored_nowhere(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tenant = await make_tenant(sessionmaker, "acme")
    secret = tenant.token.rsplit(".", 1)[1]
    async with sessionmaker() as session:
        for table in ("api_tokens", "audit_events", "accounts"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            assert secret not in repr(rows)
        stored = (await session.execute(text("SELECT secret_hash FROM api_tokens"))).scalar_one()
    assert stored == tokens.hash_secret(secret)


async def test_valid_token_authenticates_with_its_permissions(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tenant = await make_tenant(sessionmaker, "acme", ["users:read"])
    caller = await _auth(sessionmaker, tenant.token, "acme")
    assert caller.permissions == frozenset({"users:read"})  # type: ignore[attr-defined]
    caller.require(Permission.USERS_READ)  # type: ignore[attr-defined]
    with pytest.raises(PermissionDenied, match="users:write"):
        caller.require(Permission.USERS_WRITE)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "pat" + t[3:],  # wrong prefix
        lambda t: t.rsplit(".", 1)[0],  # missing secret
        lambda t: "",
        lambda t: "sat.acme.unknownid.secret",
    ],
    ids=["wrong-secret", "wrong-prefix", "truncated", "empty", "unknown-id"],
)
async def test_bad_tokens_are_refused(sessionmaker: async_sessionmaker[AsyncSession], mangle: object) -> None:
    tenant = await make_tenant(sessionmaker, "acme")
    with pytest.raises(Unauthenticated):
        await _auth(sessionmaker, mangle(tenant.token), "acme")  # type: ignore[operator]


async def test_other_accounts_token_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await make_tenant(sessionmaker, "acme")
    other = await make_tenant(sessionmaker, "globex")
    with pytest.raises(Unauthenticated):
        await _auth(sessionmaker, other.token, "acme")
    # Rewriting the account segment does not help either.
    forged = other.token.replace("sat.globex.", "sat.acme.")
    with pytest.raises(Unauthenticated):
        await _auth(sessionmaker, forged, "acme")


async def test_revoked_token_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tenant = await make_tenant(sessionmaker, "acme")
    async with sessionmaker() as session, session.begin():
        await tokens.revoke_token(session, tenant.account_id, tenant.token_id)
    with pytest.raises(Unauthenticated):
        await _auth(sessionmaker, tenant.token, "acme")


async def test_expired_token_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tenant = await make_tenant(sessionmaker, "acme")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ApiToken).where(ApiToken.token_id == tenant.token_id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(Unauthenticated):
        await _auth(sessionmaker, tenant.token, "acme")


async def test_token_with_future_expiry_works(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        account = await accounts.create_account(session, "acme")
        issued = await tokens.create_token(session, account, name="ci", expires_in_days=1)
    await _auth(sessionmaker, issued.plaintext, "acme")


async def test_unknown_permission_is_rejected(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        account = await accounts.create_account(session, "acme")
        with pytest.raises(InvalidInput, match="users:delete"):
            await tokens.create_token(session, account, name="x", permissions=["users:delete"])


async def test_a_revoked_token_is_refused_once_the_cache_ttl_has_passed(
    app: Starlette, client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A verified token is kept for TokenCache.TTL (1 s): revoking it (from any instance, or the CLI)
    takes effect on this one within that second."""
    now = [1000.0]
    app.state.token_cache = TokenCache(clock=lambda: now[0])
    viewer = {"query": "{ viewer { accountIdentifier } }"}
    response = await client.post("/graphql", json=viewer, headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["accountIdentifier"] == "acme"
    async with sessionmaker() as session, session.begin():
        await tokens.revoke_token(session, tenant.account_id, tenant.token_id)
    now[0] += TokenCache.TTL * 0.9
    assert (await client.post("/graphql", json=viewer, headers=tenant.headers)).status_code == 200
    now[0] += TokenCache.TTL * 0.1
    assert (await client.post("/graphql", json=viewer, headers=tenant.headers)).status_code == 401
