"""The benchmark's database: created if missing, emptied, migrated and given an account and a token
with the application's own CLI, exactly as an operator would; and put back between two runs.

The benchmark empties the database it is given, so it refuses any database whose name does not say
it is a benchmark's (it must contain "bench").
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """The benchmark cannot run; the message says why, in one line."""


@dataclass(frozen=True)
class Tenant:
    account: str
    account_id: int
    token: str


def database_name(database_url: str) -> str:
    url = make_url(database_url)
    return Path(url.database or "").stem if url.drivername.startswith("sqlite") else str(url.database)


def check_disposable(database_url: str) -> None:
    if "bench" not in database_name(database_url):
        raise BenchError(
            f"the benchmark empties its database; refusing {database_name(database_url)!r}, whose name does not contain 'bench'"
        )


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def recreate(database_url: str) -> None:
    """An empty database: created if missing (PostgreSQL), else every table dropped."""
    check_disposable(database_url)
    url = make_url(database_url)
    if url.drivername.startswith("sqlite"):
        path = Path(str(url.database))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    try:
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False)))
        try:
            await admin.execute(f'CREATE DATABASE "{url.database}"')
        finally:
            await admin.close()
        return
    except OSError as exc:
        raise BenchError(f"PostgreSQL at {url.host}:{url.port or 5432} is unreachable: {exc}") from None
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def app_cli(database_url: str, *args: str) -> str:
    """Run `python -m app …` as an operator would; its stdout."""
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"python -m app {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


async def prepare(database_url: str, account: str) -> Tenant:
    """Empty database, the application's migrations, an account, an app integration, and a token with
    every permission bound to it — as `make run` sets up an account, so that every request pays for
    the integration's bookkeeping (its assignments, its groups, its health)."""
    await recreate(database_url)
    app_cli(database_url, "migrate")
    app_cli(database_url, "accounts", "create", account, "--name", "Benchmark")
    app_cli(
        database_url, "integrations", "create", "--account", account, "--name", "bench", "--generation", "nextgen", "--provider", "Azure AD"
    )
    token = (
        app_cli(database_url, "tokens", "create", "--account", account, "--name", "bench", "--integration", "bench")
        .strip()
        .splitlines()[-1]
    )
    return Tenant(account, await _account_id(database_url, account), token)


async def _account_id(database_url: str, account: str) -> int:
    from sqlalchemy import text

    from app.db.engine import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT id FROM accounts WHERE identifier = :a"), {"a": account})).scalar_one())
    finally:
        await engine.dispose()


async def reset_run(database_url: str, spare_prefix_from: int, created_prefixes: tuple[str, ...]) -> None:
    """Undo what one run of the service wrote, so the next run starts from the same data: the users and
    groups it created, and the memberships it gave to spare users (the pool of "add members")."""
    from sqlalchemy import text

    from app.db.engine import create_engine
    from bench.dataset import user_name

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "DELETE FROM group_memberships WHERE user_id IN (SELECT id FROM users WHERE user_name_ci LIKE 'u%' "
                    "AND user_name_ci >= :first)"
                ),
                {"first": user_name(spare_prefix_from)},
            )
            for prefix in created_prefixes:
                await connection.execute(text("DELETE FROM users WHERE user_name_ci LIKE :p"), {"p": f"{prefix}%"})
                await connection.execute(text("DELETE FROM user_groups WHERE display_name_ci LIKE :p"), {"p": f"{prefix}%"})
    finally:
        await engine.dispose()


async def postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (the parent of a backend)."""
    if not database_url.startswith("postgresql"):
        return None
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
        # Read while the connection is open: its backend exits with it.
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
    finally:
        await connection.close()


async def server_version(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return str(await connection.fetchval("SELECT version()"))
    finally:
        await connection.close()
