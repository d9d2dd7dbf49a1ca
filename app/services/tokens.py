"""API tokens: `sat.<accountIdentifier>.<tokenId>.<secret>`.

Only a SHA-256 hash of the secret is stored. The secret carries 256 bits of randomness, so a fast
hash is enough (no dictionary to guess from); comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.models import Account, ApiToken, AppIntegration, Channel, IntegrationStatus
from app.db.types import utcnow
from app.errors import InvalidInput, NotFound, Unauthenticated
from app.services import audit
from app.services.caller import ALL_PERMISSIONS, Caller, Permission
from app.validation import has_nul

PREFIX = "sat"
SECRET_BYTES = 32
MAX_EXPIRY_DAYS = 3650
# Writing last_used_at on every request would turn each read into a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()
PROVISIONING_PERMISSIONS = (Permission.USERS_READ, Permission.USERS_WRITE, Permission.GROUPS_READ, Permission.GROUPS_WRITE)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_permissions(permissions: list[str]) -> list[str]:
    unknown = [p for p in permissions if p not in ALL_PERMISSIONS]
    if unknown or not permissions:
        raise InvalidInput(
            f"permissions must be a non-empty list of {', '.join(ALL_PERMISSIONS)}; unknown: {', '.join(unknown) or 'none'}",
            field="permissions",
        )
    return sorted(set(permissions), key=ALL_PERMISSIONS.index)


async def create_token(
    session: AsyncSession,
    account: Account,
    *,
    name: str,
    permissions: list[str] | None = None,
    expires_in_days: int | None = None,
    integration_id: str | None = None,
) -> IssuedToken:
    perms = validate_permissions(list(ALL_PERMISSIONS) if permissions is None else permissions)
    if not name.strip() or has_nul(name):
        raise InvalidInput("token name must not be empty or contain NUL", field="name")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"expiresInDays must be from 1 to {MAX_EXPIRY_DAYS}", field="expiresInDays")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    assert account.id is not None
    token = ApiToken(
        account_id=account.id,
        token_id=token_id,
        name=name.strip(),
        secret_hash=hash_secret(secret),
        permissions=perms,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        app_integration_id=integration_id,
    )
    session.add(token)
    await session.flush()
    return IssuedToken(token, f"{PREFIX}.{account.identifier}.{token_id}.{secret}")


async def issue(
    session: AsyncSession,
    caller: Caller,
    *,
    name: str,
    permissions: list[str] | None = None,
    expires_in_days: int | None = None,
    integration_id: str | None = None,
) -> IssuedToken:
    """Create a token for the caller's account (admin only), bound to one of its active app
    integrations when `integration_id` is given, and audit it — never the secret. A bound token's
    permissions default to provisioning's (users and groups, read and write): it is an identity
    provider's credential, and GraphQL, the admin's channel, shows every integration's groups."""
    caller.require(Permission.ADMIN)
    if permissions is None and integration_id is not None:
        permissions = list(PROVISIONING_PERMISSIONS)
    account = await session.get(Account, caller.account_id)
    assert account is not None
    if integration_id is not None:
        await _check_bindable(session, caller.account_id, integration_id)
    issued = await create_token(
        session, account, name=name, permissions=permissions, expires_in_days=expires_in_days, integration_id=integration_id
    )
    detail: dict[str, Any] = {"name": issued.token.name, "permissions": issued.token.permissions}
    if integration_id is not None:
        detail["appIntegrationId"] = integration_id
    await audit.record(session, caller, action="token.create", resource_type="ApiToken", resource_id=issued.token.token_id, detail=detail)
    return issued


async def _check_bindable(session: AsyncSession, account_id: int, integration_id: str) -> None:
    """A token is bound only to an active integration of its account: a disconnected one is
    reconnected first (updateAppIntegration), so that its tokens never outlive a disconnection."""
    status = None
    if not has_nul(integration_id):
        # FOR SHARE: a disconnection under way finishes first (and this sees it), or waits for the
        # new token to be stored (and revokes it too).
        status = await session.scalar(
            select(col(AppIntegration.status))
            .where(col(AppIntegration.account_id) == account_id, col(AppIntegration.id) == integration_id)
            .with_for_update(read=True)
        )
    if status is None:
        raise NotFound("AppIntegration", integration_id)
    if status != IntegrationStatus.ACTIVE.value:
        raise InvalidInput(
            f"app integration {integration_id} is disconnected: reconnect it (status ACTIVE) before binding a token to it",
            field="appIntegrationId",
        )


async def revoke(session: AsyncSession, caller: Caller, token_id: str) -> ApiToken:
    caller.require(Permission.ADMIN)
    token = await revoke_token(session, caller.account_id, token_id)
    await audit.record(session, caller, action="token.revoke", resource_type="ApiToken", resource_id=token_id)
    return token


async def revoke_token(session: AsyncSession, account_id: int, token_id: str) -> ApiToken:
    if has_nul(token_id):
        raise NotFound("ApiToken", token_id)
    token = await session.scalar(select(ApiToken).where(col(ApiToken.account_id) == account_id, col(ApiToken.token_id) == token_id))
    if token is None:
        raise NotFound("ApiToken", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    await session.flush()
    return token


async def list_tokens(session: AsyncSession, caller: Caller) -> list[ApiToken]:
    """The account's tokens (their hashes stay here: callers show ids, names and dates). Admins only."""
    caller.require(Permission.ADMIN)
    rows = await session.scalars(
        select(ApiToken).where(col(ApiToken.account_id) == caller.account_id).order_by(col(ApiToken.created_at), col(ApiToken.token_id))
    )
    return list(rows)


@dataclass(frozen=True, slots=True)
class Verified:
    """A caller whose token checked out; `record_use` is due when its last_used_at is stale."""

    caller: Caller
    record_use_due: bool


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What authentication needs of a stored token, as read at one moment (never the secret)."""

    token_id: str
    account_id: int
    account_identifier: str
    secret_hash: str
    permissions: frozenset[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    integration_id: str | None = None


@dataclass(frozen=True, slots=True)
class Presented:
    """A bearer token as presented: `sat.<account>.<tokenId>.<secret>`."""

    account_identifier: str
    token_id: str
    secret: str
    secret_hash: str  # hashed once, when parsed: what every comparison with a stored token uses


def parse(raw: str | None) -> Presented:
    parts = (raw or "").split(".")
    if len(parts) != 4 or parts[0] != PREFIX or has_nul(raw):
        raise Unauthenticated()
    return Presented(parts[1], parts[2], parts[3], hash_secret(parts[3]))


_RECORD = select(
    col(ApiToken.token_id),
    col(ApiToken.account_id),
    col(Account.identifier),
    col(ApiToken.secret_hash),
    col(ApiToken.permissions),
    col(ApiToken.expires_at),
    col(ApiToken.revoked_at),
    col(ApiToken.last_used_at),
    col(ApiToken.app_integration_id),
).join(Account, col(Account.id) == col(ApiToken.account_id))


async def load(session: AsyncSession, presented: Presented) -> TokenRecord | None:
    """The stored token the presented one names (its account and id): one lookup by primary key,
    and only a read — the request's own transaction must not wait on, or hold, the token's row."""
    named = _RECORD.where(col(Account.identifier) == presented.account_identifier, col(ApiToken.token_id) == presented.token_id)
    row = (await session.execute(named)).first()
    if row is None:
        return None
    token_id, account_id, identifier, secret_hash, permissions, expires_at, revoked_at, last_used_at, integration_id = row
    return TokenRecord(
        token_id, account_id, identifier, secret_hash, frozenset(permissions), expires_at, revoked_at, last_used_at, integration_id
    )


class StaleToken(Unauthenticated):
    """A token presented with its right secret that is revoked or expired: answered as any failed
    authentication, but known to be the token of `record` (and of its integration), for `reason`."""

    def __init__(self, record: TokenRecord, reason: str) -> None:
        super().__init__()
        self.record, self.reason = record, reason


def secret_matches(record: TokenRecord | None, presented: Presented) -> bool:
    """The presented secret is the stored token's, compared in constant time — also when there is no
    such token (against a dummy hash), so that the answer's timing does not tell."""
    return hmac.compare_digest(presented.secret_hash, record.secret_hash if record else _DUMMY_HASH) and record is not None


def check(record: TokenRecord | None, presented: Presented, *, channel: Channel, account_identifier: str | None = None) -> Verified:
    """The rules of a valid token — or Unauthenticated, one answer for every failure: the secret
    (`secret_matches`), the account it names and, for SCIM, the account in the path; not revoked;
    not expired."""
    if not secret_matches(record, presented) or record is None:
        raise Unauthenticated()
    now = utcnow()
    if record.account_identifier != presented.account_identifier or (
        account_identifier is not None and record.account_identifier != account_identifier
    ):
        raise Unauthenticated()
    if record.revoked_at is not None or (record.expires_at is not None and record.expires_at <= now):
        # The secret was right: the token's integration may be told why it failed (its health), the
        # client is not (one answer for every failure).
        raise StaleToken(record, "the token has been revoked" if record.revoked_at is not None else "the token has expired")
    caller = Caller(
        account_id=record.account_id,
        account_identifier=record.account_identifier,
        principal=record.token_id,
        permissions=record.permissions,
        channel=channel,
        integration_id=record.integration_id,
    )
    return Verified(caller, record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION)


async def authenticate(session: AsyncSession, raw: str | None, *, channel: Channel, account_identifier: str | None = None) -> Caller:
    """Turn a bearer token into a Caller, or raise Unauthenticated (requests go through app.auth,
    which keeps the loaded record for a second)."""
    presented = parse(raw)
    return check(await load(session, presented), presented, channel=channel, account_identifier=account_identifier).caller


async def record_use(session: AsyncSession, caller: Caller) -> bool:
    """Move the caller's token's last_used_at on, at most once per LAST_USED_RESOLUTION, in a
    transaction of its own; True when it moved. On PostgreSQL a row another transaction holds is
    skipped, never waited for."""
    now = utcnow()
    due = select(col(ApiToken.token_id)).where(
        col(ApiToken.account_id) == caller.account_id,
        col(ApiToken.token_id) == caller.principal,
        or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) <= now - LAST_USED_RESOLUTION),
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = await session.execute(
        update(ApiToken)
        .where(col(ApiToken.account_id) == caller.account_id, col(ApiToken.token_id).in_(due.scalar_subquery()))
        .values(last_used_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
