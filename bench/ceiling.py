"""The ceiling: the least a Python server can do to answer the same SCIM requests from the same
PostgreSQL tables, served by the same uvicorn configuration as the service (`app.serving`).

A bare Starlette app on a raw asyncpg pool: the bearer token checked with one indexed lookup, then
one statement per request — a one-row lookup by id, by lower(userName) or by externalId (with the
user's groups in the same statement, so the JSON is the service's own), a one-row insert, a one-row
update. No ORM, no transaction beyond the statement, no audit, no filter parser. What the service
adds on top of this is its own cost; the ceiling is the practical limit of Python + PostgreSQL on
the machine that runs the benchmark.

    python -m bench.ceiling --port 8101 --database-url postgresql+asyncpg://… --public-url http://…
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.dataset import CORE_USER, ENTERPRISE

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MEDIA_TYPE = "application/scim+json"
POOL_SIZE = 20  # as the service's default pool (DB_POOL_SIZE): a connection for each concurrent request
PREFIX = "/gateway/ng/api/scim/account/{account}"
FILTER = re.compile(r'^\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)

AUTH_SQL = """
SELECT t.account_id, t.secret_hash, t.revoked_at, t.expires_at, a.identifier
FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE a.identifier = $1 AND t.token_id = $2
"""
GROUPS = """(SELECT json_agg(json_build_array(g.id, g.display_name) ORDER BY g.display_name_ci, g.id)
  FROM group_memberships m JOIN user_groups g ON g.account_id = m.account_id AND g.id = m.group_id
  WHERE m.account_id = u.account_id AND m.user_id = u.id AND g.managed_by = 'IDENTITY_PROVIDER') AS groups"""
BY_ID_SQL = f"SELECT u.*, {GROUPS} FROM users u WHERE u.id = $1 AND u.account_id = $2"
BY_USER_NAME_SQL = f"SELECT u.*, {GROUPS} FROM users u WHERE u.account_id = $1 AND u.user_name_ci = $2"
BY_EXTERNAL_ID_SQL = (
    f"SELECT u.*, {GROUPS} FROM users u WHERE u.account_id = $1 AND u.external_id = $2 ORDER BY u.created_at, u.id LIMIT 100"
)
INSERT_COLUMNS = (
    "id",
    "account_id",
    "user_name",
    "user_name_ci",
    "external_id",
    "display_name",
    "active",
    "name_formatted",
    "name_family",
    "name_given",
    "email",
    "email_ci",
    "multi_valued",
    "employee_number",
    "department",
    "title",
    "provisioned_by",
    "created_at",
    "updated_at",
    "version",
)
INSERT_SQL = (
    f"INSERT INTO users AS u ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(INSERT_COLUMNS)))}) "
    "RETURNING u.*, NULL::json AS groups"
)
# PATCH paths the ceiling understands: Entra's default mappings for the attributes the benchmark changes.
PATCH_COLUMNS = {
    "displayname": "display_name",
    "title": "title",
    "name.givenname": "name_given",
    "name.familyname": "name_family",
    f"{ENTERPRISE.lower()}:department": "department",
    "active": "active",
}

# The service's SCIM rendering order (app.scim.mapping.USER_COLUMNS), so the JSON is byte for byte the same.
CORE_ORDER = (
    ("externalId", "external_id"),
    ("userName", "user_name"),
    ("displayName", "display_name"),
    ("nickName", "nick_name"),
    ("profileUrl", "profile_url"),
    ("title", "title"),
    ("userType", "user_type"),
    ("preferredLanguage", "preferred_language"),
    ("locale", "locale"),
    ("timezone", "timezone"),
    ("active", "active"),
)
NAME_ORDER = (
    ("formatted", "name_formatted"),
    ("familyName", "name_family"),
    ("givenName", "name_given"),
    ("middleName", "name_middle"),
    ("honorificPrefix", "name_honorific_prefix"),
    ("honorificSuffix", "name_honorific_suffix"),
)
ENTERPRISE_ORDER = (
    ("employeeNumber", "employee_number"),
    ("costCenter", "cost_center"),
    ("organization", "organization"),
    ("division", "division"),
    ("department", "department"),
)
MULTI_VALUED = ("emails", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles", "x509Certificates")


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def render(row: asyncpg.Record, base: str) -> dict[str, Any]:
    doc: dict[str, Any] = {key: row[column] for key, column in CORE_ORDER if row[column] is not None}
    name = {key: row[column] for key, column in NAME_ORDER if row[column] is not None}
    if name:
        doc["name"] = name
    multi = json.loads(row["multi_valued"]) if isinstance(row["multi_valued"], str) else row["multi_valued"] or {}
    for attribute in MULTI_VALUED:
        if multi.get(attribute):
            doc[attribute] = multi[attribute]
    enterprise = {key: row[column] for key, column in ENTERPRISE_ORDER if row[column] is not None}
    if row["manager_id"] is not None:
        enterprise["manager"] = {"value": row["manager_id"], "$ref": f"{base}/Users/{row['manager_id']}"}
    out: dict[str, Any] = {"schemas": [CORE_USER, ENTERPRISE] if enterprise else [CORE_USER], "id": row["id"], **doc}
    groups = json.loads(row["groups"]) if row["groups"] else []
    if groups:
        out["groups"] = [{"value": gid, "$ref": f"{base}/Groups/{gid}", "display": display, "type": "direct"} for gid, display in groups]
    if enterprise:
        out[ENTERPRISE] = enterprise
    out["meta"] = {
        "resourceType": "User",
        "created": _timestamp(row["created_at"]),
        "lastModified": _timestamp(row["updated_at"]),
        "location": f"{base}/Users/{row['id']}",
        "version": f'W/"{row["version"]}"',
    }
    return out


def scim(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def error(status: int, detail: str) -> Response:
    return scim({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": detail}, status)


class Ceiling:
    def __init__(self, database_url: str, public_url: str) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.public_url = public_url.rstrip("/")
        self.pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=POOL_SIZE)
        try:
            yield
        finally:
            await self.pool.close()

    async def caller(self, request: Request, connection: asyncpg.Connection) -> int | None:
        """The account id of a valid token for the account in the path: one indexed lookup."""
        scheme, _, raw = request.headers.get("authorization", "").partition(" ")
        parts = raw.strip().split(".")
        if scheme.lower() != "bearer" or len(parts) != 4 or parts[0] != "sat":
            return None
        row = await connection.fetchrow(AUTH_SQL, parts[1], parts[2])
        secret_hash = hashlib.sha256(parts[3].encode()).hexdigest()
        if row is None or not hmac.compare_digest(secret_hash, row["secret_hash"]) or row["revoked_at"] is not None:
            return None
        if row["identifier"] != parts[1] or row["identifier"] != request.path_params["account"]:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            return None
        return int(row["account_id"])

    def base(self, request: Request) -> str:
        return f"{self.public_url}/gateway/ng/api/scim/account/{request.path_params['account']}"

    async def get_user(self, request: Request) -> Response:
        assert self.pool is not None
        async with self.pool.acquire() as connection:
            if (account_id := await self.caller(request, connection)) is None:
                return error(401, "authentication required")
            row = await connection.fetchrow(BY_ID_SQL, request.path_params["id"], account_id)
        if row is None:
            return error(404, f"User {request.path_params['id']} not found")
        return scim(render(row, self.base(request)), headers={"ETag": f'W/"{row["version"]}"'})

    async def list_users(self, request: Request) -> Response:
        assert self.pool is not None
        match = FILTER.match(request.query_params.get("filter", ""))
        if match is None:
            return error(400, "the ceiling answers only userName eq and externalId eq filters")
        attribute, value = match.group(1).lower(), json.loads(f'"{match.group(2)}"')
        async with self.pool.acquire() as connection:
            if (account_id := await self.caller(request, connection)) is None:
                return error(401, "authentication required")
            if attribute == "username":
                rows = await connection.fetch(BY_USER_NAME_SQL, account_id, value.lower())
            else:
                rows = await connection.fetch(BY_EXTERNAL_ID_SQL, account_id, value)
        base = self.base(request)
        resources = [render(row, base) for row in rows]
        return scim(
            {
                "schemas": [LIST_RESPONSE],
                "totalResults": len(resources),
                "itemsPerPage": len(resources),
                "startIndex": 1,
                "Resources": resources,
            }
        )

    async def create_user(self, request: Request) -> Response:
        assert self.pool is not None
        body = await request.json()
        user_name = body.get("userName")
        if not isinstance(user_name, str) or not user_name:
            return error(400, "userName is required")
        emails = [e for e in body.get("emails") or [] if isinstance(e, dict) and e.get("value")]
        email = next((e["value"] for e in emails if e.get("primary") is True), emails[0]["value"] if emails else None)
        name, enterprise = body.get("name") or {}, body.get(ENTERPRISE) or {}
        now = datetime.now(UTC)
        values = (
            str(uuid.uuid4()),
            None,
            user_name,
            user_name.lower(),
            body.get("externalId"),
            body.get("displayName"),
            body.get("active", True),
            name.get("formatted"),
            name.get("familyName"),
            name.get("givenName"),
            email,
            email.lower() if email else None,
            json.dumps({"emails": emails} if emails else {}),
            enterprise.get("employeeNumber"),
            enterprise.get("department"),
            body.get("title"),
            "SCIM",
            now,
            now,
            1,
        )
        async with self.pool.acquire() as connection:
            if (account_id := await self.caller(request, connection)) is None:
                return error(401, "authentication required")
            try:
                row = await connection.fetchrow(INSERT_SQL, *values[:1], account_id, *values[2:])
            except asyncpg.UniqueViolationError:
                return error(409, f"a user with userName '{user_name}' already exists")
        base = self.base(request)
        return scim(render(row, base), 201, {"ETag": 'W/"1"', "Location": f"{base}/Users/{row['id']}"})

    async def patch_user(self, request: Request) -> Response:
        assert self.pool is not None
        body = await request.json()
        changes: dict[str, Any] = {}
        for operation in body.get("Operations") or []:
            column = PATCH_COLUMNS.get(str(operation.get("path", "")).lower())
            if str(operation.get("op", "")).lower() not in ("replace", "add") or column is None:
                return error(400, "the ceiling answers only replace of displayName, title, name and department")
            changes[column] = operation.get("value")
        assignments = ", ".join(f"{column} = ${i + 3}" for i, column in enumerate(changes))
        sql = (
            f"UPDATE users AS u SET {assignments}, version = u.version + 1, updated_at = now() "
            f"WHERE u.id = $1 AND u.account_id = $2 RETURNING u.*, {GROUPS}"
        )
        async with self.pool.acquire() as connection:
            if (account_id := await self.caller(request, connection)) is None:
                return error(401, "authentication required")
            row = await connection.fetchrow(sql, request.path_params["id"], account_id, *changes.values())
        if row is None:
            return error(404, f"User {request.path_params['id']} not found")
        return scim(render(row, self.base(request)), headers={"ETag": f'W/"{row["version"]}"'})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_ceiling(database_url: str, public_url: str) -> Starlette:
    ceiling = Ceiling(database_url, public_url)
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route(f"{PREFIX}/Users", ceiling.list_users, methods=["GET"]),
            Route(f"{PREFIX}/Users", ceiling.create_user, methods=["POST"]),
            Route(f"{PREFIX}/Users/{{id}}", ceiling.get_user, methods=["GET"]),
            Route(f"{PREFIX}/Users/{{id}}", ceiling.patch_user, methods=["PATCH"]),
        ],
        lifespan=ceiling.lifespan,
    )


def main() -> None:
    from bench.serve import serve

    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--public-url", required=True)
    args = parser.parse_args()
    serve(create_ceiling(args.database_url, args.public_url), args.port)


if __name__ == "__main__":
    main()
