"""The activity log's record of every SCIM request (app/activity.py): what was sent and answered,
never a token or a query string; unauthenticated floods capped; filters, the summary, personal data
for admins only, and the retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app import activity
from app.auth import TokenCache
from app.db.models import AuditEvent
from app.db.types import utcnow
from app.main import create_app
from app.services import audit
from app.services.caller import system_caller
from app.settings import Settings
from tests.support.clients import CORE_USER, GraphQLClient, ScimClient, Tenant, make_tenant

TENANT_ROUTE = "/gateway/ng/api/scim/account/{account}"


async def _requests(app: Starlette, sessionmaker: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    await app.state.activity.write(sessionmaker)
    async with sessionmaker() as session:
        found = await session.scalars(select(AuditEvent).where(AuditEvent.action == "scim.request").order_by(AuditEvent.id))
        return list(found)


async def test_every_scim_outcome_is_recorded_without_tokens_or_query_strings(
    app: Starlette, client: httpx.AsyncClient, scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("ada@example.com")  # 201
    assert (await scim.get(f"/Users/{user['id']}", headers={"X-Request-ID": "req-7"})).status_code == 200
    assert (await scim.get("/Users", params={"filter": 'nosuch eq "ada@example.com"'})).status_code == 400
    assert (await scim.get("/Users/nobody")).status_code == 404
    assert (await scim.post("/Users", {"schemas": [CORE_USER], "userName": "ada@example.com"})).status_code == 409
    stale = await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "title", "value": "x"}], headers={"If-Match": 'W/"99"'})
    assert stale.status_code == 412
    reader = ScimClient(client, await make_tenant(sessionmaker, tenant.identifier, ["users:read"]))
    assert (await reader.delete(f"/Users/{user['id']}")).status_code == 403
    assert (await client.get(f"{tenant.base}/Users", headers={"Authorization": "Bearer sat.acme.0.wrong"})).status_code == 401
    big = {"schemas": [CORE_USER], "userName": "big@example.com", "title": "x" * (2 * 1024 * 1024)}
    assert (await scim.post("/Users", big)).status_code == 413

    records = await _requests(app, sessionmaker)
    seen = [(r.method, r.route, r.status, r.scim_type, r.outcome) for r in records]
    assert seen == [
        ("POST", f"{TENANT_ROUTE}/Users", 201, None, "APPLIED"),
        ("GET", f"{TENANT_ROUTE}/Users/{{id}}", 200, None, "READ"),
        ("GET", f"{TENANT_ROUTE}/Users", 400, "invalidFilter", "FAILED"),
        ("GET", f"{TENANT_ROUTE}/Users/{{id}}", 404, None, "FAILED"),
        ("POST", f"{TENANT_ROUTE}/Users", 409, "uniqueness", "FAILED"),
        ("PATCH", f"{TENANT_ROUTE}/Users/{{id}}", 412, None, "FAILED"),
        ("DELETE", f"{TENANT_ROUTE}/Users/{{id}}", 403, None, "DENIED"),
        ("GET", f"{TENANT_ROUTE}/Users", 401, None, "FAILED"),
        ("POST", f"{TENANT_ROUTE}/Users", 413, None, "FAILED"),
    ]
    assert records[1].request_id == "req-7" and records[1].resource_id == user["id"] and records[1].resource_type == "User"
    assert {r.caller for r in records[:5]} == {tenant.token_id}
    assert records[7].caller == "-" and records[8].caller == "-"
    assert records[4].detail == {"detail": "a user with userName 'ada@example.com' already exists"}  # for admins (below)
    assert records[4].error_detail == "a user with userName '…' already exists"
    text = " ".join(repr({c.key: getattr(r, c.key) for c in AuditEvent.__table__.c}) for r in records)  # type: ignore[attr-defined]
    assert tenant.token.rsplit(".", 1)[1] not in text and "wrong" not in text and "filter=" not in text and "nosuch eq" not in text


async def test_unauthenticated_failures_are_recorded_once_a_minute_per_account_and_reason(
    app: Starlette, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(20):
        await client.get(f"{tenant.base}/Users", headers={"Authorization": "Bearer forged"})
    await client.get(f"{other_tenant.base}/Users")
    await client.get(f"{tenant.base}/Users/x", headers={"Authorization": "Bearer forged"})
    await client.get(f"{tenant.base.replace('acme', 'no-such-account')}/Users")  # no account to record it under
    records = await _requests(app, sessionmaker)
    assert sorted((r.account_id, r.status) for r in records) == sorted([(tenant.account_id, 401), (other_tenant.account_id, 401)])


async def test_a_token_over_its_rate_limit_leaves_a_429_record(
    settings: Settings, engine: AsyncEngine, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(replace(settings, rate_limit_per_token="1/minute"), engine=engine)
    app.state.token_cache = TokenCache(clock=lambda: 0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://scim.example.test") as client:
        scim = ScimClient(client, tenant)
        assert [(await scim.get("/Users")).status_code for _ in range(3)] == [200, 429, 429]
    assert [r.status for r in await _requests(app, sessionmaker)] == [200, 429]


async def test_filters_summary_and_personal_data_for_admins_only(
    app: Starlette, client: httpx.AsyncClient, scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await scim.create_user("ada@example.com", title="Engineer")
    await scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "displayName", "value": "Ada L."}])
    for _ in range(3):
        await scim.post("/Users", {"schemas": [CORE_USER], "userName": "ada@example.com"})  # 409 ×3
    await scim.get("/Users/nobody")  # 404
    await _requests(app, sessionmaker)
    admin = GraphQLClient(client, tenant)
    auditor = GraphQLClient(client, await make_tenant(sessionmaker, tenant.identifier, ["audit:read"]))
    failures = "query($f: AuditEventFilter) { auditEvents(filter: $f) { totalCount nodes { status route errorDetail caller } } }"
    client_errors = (await admin(failures, f={"statusClass": "CLIENT_ERROR"}))["auditEvents"]
    assert client_errors["totalCount"] == 4 and {n["status"] for n in client_errors["nodes"]} == {404, 409}
    assert {n["caller"] for n in client_errors["nodes"]} == {tenant.token_id}
    assert (await admin(failures, f={"caller": "-", "includeRequests": True}))["auditEvents"]["totalCount"] == 0
    until = (await admin(failures, f={"includeRequests": True, "until": (utcnow() - timedelta(hours=1)).isoformat()}))["auditEvents"]
    assert until["totalCount"] == 0
    # The change event carries the values before and after: personal data, for admins only.
    change = '{ auditEvents(filter: {action: "user.update"}) { nodes { detail } } }'
    assert (await admin(change))["auditEvents"]["nodes"][0]["detail"]["values"]["display_name"] == {"before": None, "after": "Ada L."}
    assert "values" not in (await auditor(change))["auditEvents"]["nodes"][0]["detail"]
    conflict = "{ auditEvents(filter: {statusClass: CLIENT_ERROR}) { nodes { status errorDetail } } }"
    details = {n["errorDetail"] for n in (await auditor(conflict))["auditEvents"]["nodes"] if n["status"] == 409}
    assert details == {"a user with userName '…' already exists"}
    summary = (
        "query($s: DateTime!) { activitySummary(since: $s) { total outcomes { outcome count } "
        "topFailures { status scimType detail count } } }"
    )
    since = (utcnow() - timedelta(minutes=5)).isoformat()
    found = (await admin(summary, s=since))["activitySummary"]
    outcomes = {o["outcome"]: o["count"] for o in found["outcomes"]}
    assert outcomes["FAILED"] == 4 and outcomes["APPLIED"] >= 4  # 2 requests and 2 change events
    # Counted by kind: the quoted values are blanked, so that failures for different users add up.
    assert found["topFailures"][0] == {
        "status": 409,
        "scimType": "uniqueness",
        "detail": "a user with userName '…' already exists",
        "count": 3,
    }
    assert (await auditor(summary, s=since))["activitySummary"]["topFailures"][0] == found["topFailures"][0]
    # The whole detail, for admins, on the record itself.
    admin_view = (await admin(conflict))["auditEvents"]["nodes"]
    assert {n["errorDetail"] for n in admin_view if n["status"] == 409} == {"a user with userName 'ada@example.com' already exists"}


async def test_request_records_past_the_accounts_retention_are_purged_and_changes_kept(
    app: Starlette, scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await scim.create_user("ada@example.com")
    await scim.get("/Users")
    await _requests(app, sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(AuditEvent).values(occurred_at=utcnow() - timedelta(days=31)))
        caller = system_caller(tenant.account_id, tenant.identifier)
        assert await audit.purge_requests(session, caller, utcnow(), 90) == 0
        assert await audit.purge_requests(session, caller, utcnow(), 30) == 2
    async with sessionmaker() as session:
        left: list[Any] = list(await session.scalars(select(AuditEvent.action)))
    assert left == ["user.create"]


async def test_what_a_client_chooses_cannot_stop_the_log(
    app: Starlette, client: httpx.AsyncClient, scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A NUL in the path, a long method, a lone surrogate in an error's detail, an account name no
    account can have: each record is stored as the database can hold it, or not at all, and the
    records around it are written."""
    await client.get(f"{tenant.base.rsplit('/', 1)[0]}/%00/Users")  # no account can be named so
    await scim.get("/Users/%00")
    await scim.request("PROPPATCH", "/Users", content=b"x" * (2 * 1024 * 1024))  # 413 before any route
    await scim.get("/Users/someone-else")
    app.state.activity.note(
        activity.record(
            account_id=tenant.account_id,
            caller=tenant.token_id,
            integration_id=None,
            request_id="r",
            method="GET",
            route="other",
            status=400,
            read_only=True,
            resource_type="User",
            resource_id="a\x00b",
            detail="bad '\ud800'",
        )
    )
    records = await _requests(app, sessionmaker)
    assert [r.status for r in records] == [404, 413, 404, 400]
    assert records[1].method == "PROPPATC"
    assert records[3].resource_id == "a\ufffdb" and records[3].detail == {"detail": "bad '?'"}
    assert len(app.state.activity) == 0  # nothing left waiting to be retried


async def test_successful_reads_are_summarized_per_token_route_and_status(
    app: Starlette, client: httpx.AsyncClient, scim: ScimClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ada, bob = (await scim.create_user("ada@example.com")), (await scim.create_user("bob@example.com"))
    await _requests(app, sessionmaker)  # the two creations: records of their own
    for n in range(3):
        assert (await scim.get(f"/Users/{ada['id']}", headers={"X-Request-ID": f"ada-{n}"})).status_code == 200
    assert (await scim.get("/Users/nobody", headers={"X-Request-ID": "missing"})).status_code == 404
    assert (await scim.get("/Users", params={"filter": 'userName eq "ada@example.com"'})).status_code == 200
    first = [r for r in await _requests(app, sessionmaker) if r.method == "GET"]
    assert [(r.route, r.status, r.outcome, r.requests, r.request_id, r.resource_id, r.detail) for r in first] == [
        (f"{TENANT_ROUTE}/Users/{{id}}", 200, "READ", 3, "ada-0", ada["id"], {"lastRequestId": "ada-2"}),
        (f"{TENANT_ROUTE}/Users/{{id}}", 404, "FAILED", 1, "missing", "nobody", {"detail": "User nobody not found"}),  # its own
        (f"{TENANT_ROUTE}/Users", 200, "READ", 1, first[2].request_id, None, {}),
    ]
    # Reads of two users: one summary, which names no resource.
    await scim.get(f"/Users/{ada['id']}")
    await scim.get(f"/Users/{bob['id']}")
    second = (await _requests(app, sessionmaker))[-1]
    assert (second.requests, second.resource_id, second.resource_type) == (2, None, "User")

    admin = GraphQLClient(client, tenant)
    listed = await admin("{ auditEvents(filter: {outcome: READ, includeRequests: true}) { totalCount nodes { requests } } }")
    assert listed["auditEvents"] == {"totalCount": 3, "nodes": [{"requests": 2}, {"requests": 1}, {"requests": 3}]}
    since = (utcnow() - timedelta(hours=1)).isoformat()
    summary = await admin("query($s: DateTime!) { activitySummary(since: $s) { outcomes { outcome count } } }", s=since)
    assert {"outcome": "READ", "count": 6} in summary["activitySummary"]["outcomes"]


def test_records_and_summaries_share_the_bound_on_what_waits() -> None:
    log = activity.ActivityLog(interval=3600)
    log.MAX_PENDING = 3
    row = activity.record(
        account_id=1, caller="t", integration_id=None, request_id="r", method="POST", route="/x", status=201, read_only=False,
        resource_type="User", resource_id=None,
    )  # fmt: skip
    key: activity.ReadKey = (1, "t", None, "GET", "/x/{id}", 200, "User")
    log.note(row)
    log.note_read(key, "a", "r1")
    log.note(row)
    assert len(log) == 3
    log.note(row)  # no room
    log.note_read((1, "t", None, "GET", "/y", 200, "User"), None, "r2")  # no room for another summary
    log.note_read(key, "b", "r3")  # counted into the summary that waits
    assert (len(log), log.dropped) == (3, 2)
    summary = next(r for r in log._take() if r["requests"] > 1)
    assert (summary["requests"], summary["resource_id"], summary["request_id"]) == (2, None, "r1")
