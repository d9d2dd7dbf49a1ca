"""Statements per request: the service's app run in-process on the benchmark's database, with every
SQL statement counted (SQLAlchemy's and those run on asyncpg directly). A list whose statement count
grows with the page size issues one query per row (N+1); the GraphQL lists must not."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event

from app.db import statements
from app.db.engine import create_engine
from app.main import create_app
from app.settings import Settings


async def statements_per_request(database_url: str, token: str, queries: dict[str, str]) -> dict[str, int]:
    """For each named GraphQL query, the number of SQL statements one request runs."""
    engine = create_engine(database_url)
    counted = [0]

    def count(*_: Any) -> None:
        counted[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    stop = statements.observe(count)  # and those run on asyncpg directly
    app = create_app(Settings(database_url=database_url), engine=engine)
    out: dict[str, int] = {}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench.invalid") as client:
            for name, query in queries.items():
                counted[0] = 0
                response = await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
                body = response.json()
                if response.status_code != 200 or body.get("errors"):
                    raise RuntimeError(f"{name}: {response.status_code} {str(body)[:200]}")
                out[name] = counted[0]
    finally:
        stop()
        await engine.dispose()
    return out


def nplus1_report(counts: dict[str, int]) -> dict[str, Any]:
    """Each list asked for with 5 and with 50 rows: the same number of statements means no N+1."""
    report = {}
    for name in ("users", "userGroups"):
        small, large = counts[f"{name}_5"], counts[f"{name}_50"]
        report[name] = {"statements_first_5": small, "statements_first_50": large, "n_plus_1": large > small}
    return report


def nplus1_queries() -> dict[str, str]:
    queries = {}
    for first in (5, 50):
        queries[f"users_{first}"] = "{ users(first: %d) { nodes { id userName groups(first: 5) { nodes { id name } } } } }" % first
        queries[f"userGroups_{first}"] = "{ userGroups(first: %d) { nodes { id name memberCount } } }" % first
    return queries
