"""`python -m app …`: serve, migrate, and the few admin commands an operator needs.

Every failure prints one line on stderr; configuration problems exit 2, other errors 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import shlex
import socket
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import jsonbody
from app.db import migrate
from app.db.engine import create_engine, create_sessionmaker
from app.db.models import AppIntegration, IntegrationGeneration
from app.db.types import utcnow
from app.errors import DomainError
from app.services import accounts, audit, extensions, flags, integrations, tokens, users
from app.services.caller import ALL_PERMISSIONS, Caller, system_caller
from app.settings import ConfigError, Settings, load_settings, redact_database_url

T = TypeVar("T")
EXIT_CONFIG = 2


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


async def _check_database(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with asyncio.timeout(10):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the same thing to the operator
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot reach the database {redact_database_url(database_url)}: {reason}") from None
    finally:
        await engine.dispose()


def _prepare_database(settings: Settings) -> None:
    asyncio.run(_check_database(settings.database_url))
    migrate.upgrade(settings.database_url)


def _run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def runner() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(runner())


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def _bootstrap(session: AsyncSession, settings: Settings) -> list[str]:
    """On an empty database: account `default`, its NextGen app integration `default`, and a token
    with every permission bound to it, shown once."""
    if await accounts.any_account(session):
        return [f"Tenant URL:   {settings.tenant_url(accounts.DEFAULT_ACCOUNT)}"]
    account = await accounts.create_account(session, accounts.DEFAULT_ACCOUNT, "Default account")
    assert account.id is not None
    caller = system_caller(account.id, account.identifier)
    integration = await integrations.create_integration(
        session, caller, name=DEFAULT_INTEGRATION, generation=IntegrationGeneration.NEXTGEN, provider="Azure AD"
    )
    # Every permission, as before integrations: the one token of a new installation also opens GraphQL.
    issued = await tokens.issue(session, caller, name="bootstrap", permissions=list(ALL_PERMISSIONS), integration_id=integration.id)
    return [
        f"Tenant URL:   {settings.tenant_url(account.identifier)}",
        f"Secret Token: {issued.plaintext}",
        "The token is shown only now; store it in your identity provider's provisioning settings.",
        f"It provisions for the NextGen app integration '{DEFAULT_INTEGRATION}' (python -m app integrations list --account default).",
    ]


DEFAULT_INTEGRATION = "default"


def _workers(raw: object) -> int:
    """`serve --workers` or WORKERS: how many server processes share the port."""
    from app.serving import MAX_WORKERS

    try:
        workers = int(str(raw).strip())
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"WORKERS (serve --workers) must be a whole number from 1 to {MAX_WORKERS}, got {str(raw)!r}")
    return workers


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.main import create_app
    from app.observability import configure_logging
    from app.serving import build_server, serve_workers

    workers = _workers(args.workers if args.workers is not None else os.environ.get("WORKERS") or 1)
    _check_port_free(settings.host, settings.port)
    # Once, before any worker starts: workers neither migrate nor bootstrap.
    _prepare_database(settings)
    for line in _run_in_session(settings, lambda s: _bootstrap(s, settings)):
        print(line, flush=True)
    if settings.graphql_ide:
        print(f"GraphiQL:     {settings.public_url.rstrip('/')}/graphql (in a browser, with the token)", flush=True)
    configure_logging(settings.log_level, settings.log_format)
    if workers > 1:
        return serve_workers(settings, workers)
    app = create_app(settings)
    build_server(app, settings, app.state.readiness).run()
    return 0


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    _prepare_database(settings)
    print("database schema is up to date")
    return 0


def cmd_accounts_create(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)
    account = _run_in_session(settings, lambda s: accounts.create_account(s, args.identifier, args.name))
    print(f"created account {account.identifier}")
    print(f"Tenant URL: {settings.tenant_url(account.identifier)}")
    return 0


def _permissions(raw: str | None) -> list[str] | None:
    return None if raw is None else [p.strip() for p in raw.split(",") if p.strip()]


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def work(session: AsyncSession) -> tokens.IssuedToken:
        caller = await _system_caller(session, args.account)
        integration_id = None
        if args.integration is not None:
            integration_id = (await integrations.get_integration_by_name(session, caller, args.integration)).id
        return await tokens.issue(
            session,
            caller,
            name=args.name,
            permissions=_permissions(args.permissions),
            expires_in_days=args.expires_in_days,
            integration_id=integration_id,
        )

    issued = _run_in_session(settings, work)
    print(f"token id: {issued.token.token_id}")
    print(f"permissions: {','.join(issued.token.permissions)}")
    if args.integration is not None:
        print(f"app integration: {args.integration}")
    print(issued.plaintext)
    return 0


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def work(session: AsyncSession) -> None:
        await tokens.revoke(session, await _system_caller(session, args.account), args.token_id)

    _run_in_session(settings, work)
    print(f"revoked token {args.token_id}")
    return 0


def cmd_flags_set(settings: Settings, args: argparse.Namespace) -> int:
    flags.known(args.name)
    _prepare_database(settings)

    async def work(session: AsyncSession) -> None:
        await flags.set_flag(session, await _system_caller(session, args.account), args.name, args.state == "on")

    _run_in_session(settings, work)
    print(f"{args.name} is {args.state} for account {args.account}")
    return 0


def cmd_accounts_settings(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def work(session: AsyncSession) -> tuple[int, int]:
        caller = await _system_caller(session, args.account)
        if args.deprovision_retention_days is not None:
            await accounts.set_deprovision_retention_days(session, caller, args.deprovision_retention_days)
        if args.activity_retention_days is not None:
            await accounts.set_activity_retention_days(session, caller, args.activity_retention_days)
        return await accounts.deprovision_retention_days(session, caller), await accounts.activity_retention_days(session, caller)

    deprovision, activity = _run_in_session(settings, work)
    print(f"deprovision retention: {deprovision} days for account {args.account}")
    print(f"activity retention: {activity} days for account {args.account}")
    return 0


def cmd_purge(settings: Settings, _: argparse.Namespace) -> int:
    """Delete what has outlived its retention, in every account: users the identity provider
    deleted, kept as tombstones for the account's deprovision retention; the activity log's records
    of SCIM requests past the account's activity retention; and app integrations' hourly request
    counts older than a week (their health reads one day). Meant to run daily."""
    _prepare_database(settings)
    now = utcnow()

    async def work(session: AsyncSession) -> tuple[list[tuple[str, int, int]], int]:
        done = []
        for account in await accounts.list_accounts(session):
            assert account.id is not None
            caller = system_caller(account.id, account.identifier)
            users_purged = await users.purge_expired(session, caller, now)
            requests_purged = await audit.purge_requests(session, caller, now, account.activity_retention_days)
            done.append((account.identifier, users_purged, requests_purged))
        return done, await integrations.purge_activity(session, now)

    purged, activity = _run_in_session(settings, work)
    for identifier, count, requests in purged:
        print(
            f"{identifier}: {count} deprovisioned user{'' if count == 1 else 's'} purged, {requests} request records past retention deleted"
        )
    print(f"{activity} hourly app integration count{'' if activity == 1 else 's'} older than a week deleted")
    return 0


def cmd_extensions_add(settings: Settings, args: argparse.Namespace) -> int:
    """Declare a custom schema extension from a JSON file describing it as /Schemas does."""
    try:
        document = jsonbody.decode(Path(args.file).read_bytes(), what=args.file)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}")
    _prepare_database(settings)

    async def work(session: AsyncSession) -> extensions.Declaration:
        return await extensions.declare(session, await _system_caller(session, args.account), document)

    declaration = _run_in_session(settings, work)
    names = ", ".join(f"{a.name} ({a.type}{', multi-valued' if a.multi_valued else ''})" for a in declaration.attributes)
    print(f"declared {declaration.urn} for {declaration.resource_type}: {names}")
    return 0


def cmd_extensions_list(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def work(session: AsyncSession) -> list[extensions.Declaration]:
        caller = await _system_caller(session, args.account)
        return await extensions.declared(session, caller.account_id)

    for declaration in _run_in_session(settings, work):
        print(f"{declaration.urn}\t{declaration.resource_type}\t{', '.join(a.name for a in declaration.attributes)}")
    return 0


def cmd_integrations_create(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def work(session: AsyncSession) -> AppIntegration:
        caller = await _system_caller(session, args.account)
        return await integrations.create_integration(session, caller, name=args.name, generation=args.generation, provider=args.provider)

    created = _run_in_session(settings, work)
    print(f"created {created.generation} app integration '{created.name}' ({created.provider}), id {created.id}")
    print(f"bind a token to it: python -m app tokens create --account {args.account} --integration {shlex.quote(created.name)}")
    return 0


def cmd_integrations_list(settings: Settings, args: argparse.Namespace) -> int:
    """The account's integrations with their health, one row each."""
    _prepare_database(settings)
    now = utcnow()

    async def work(session: AsyncSession) -> list[tuple[AppIntegration, integrations.Health, list[Any]]]:
        caller = await _system_caller(session, args.account)
        found = await integrations.list_integrations(session, caller)
        ids = [i.id for i in found]
        health = await integrations.health(session, caller.account_id, ids, now)
        tokens_of = await integrations.tokens_of(session, caller.account_id, ids)
        return [(i, health[i.id], tokens_of[i.id]) for i in found]

    rows = [("NAME", "GENERATION", "PROVIDER", "STATUS", "LAST SUCCESS", "24H REQUESTS", "4XX", "5XX", "TOKENS", "LAST FAILURE")]
    for integration, health, its_tokens in _run_in_session(settings, work):
        live = [t for t in its_tokens if t.revoked_at is None]
        token_note = f"{len(live)} active"
        if integrations.token_expires_soon(its_tokens, now):
            token_note += ", expires soon"
        failure = health.last_failure
        rows.append(
            (
                integration.name,
                integration.generation,
                integration.provider,
                integration.status,
                _when(health.last_success_at),
                str(health.requests),
                str(health.client_failures),
                str(health.server_failures),
                token_note,
                "-"
                if failure is None
                else f"{_when(failure.at)} {failure.status} {failure.scim_type or ''} {failure.detail}".strip()[:120],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """A consistent copy of the embedded SQLite database, taken while it serves (SQLite's online
    backup: writers wait only for each step's pages). PostgreSQL is backed up with its own tools."""
    url = make_url(settings.database_url)
    if not url.drivername.startswith("sqlite"):
        return _fail("backup copies the embedded SQLite database; back PostgreSQL up with pg_dump (docs/operations.md)")
    source, target = Path(str(url.database)), Path(args.to)
    if not source.exists():
        return _fail(f"no database at {source}")
    if target.exists():
        return _fail(f"{target} exists; name a new file")
    with contextlib.closing(sqlite3.connect(source)) as live, contextlib.closing(sqlite3.connect(target)) as copy:
        live.backup(copy, pages=1024)
    print(f"backed up {source} to {target}")
    return 0


async def _system_caller(session: AsyncSession, identifier: str) -> Caller:
    account = await accounts.get_account(session, identifier)
    assert account.id is not None
    return system_caller(account.id, account.identifier)


def cmd_export_schema(_: Settings | None, __: argparse.Namespace) -> int:
    from app.graphql.schema import schema

    print(schema.as_str())
    return 0


def cmd_entra_replay(_: Settings | None, args: argparse.Namespace) -> int:
    """Drive a running server the way Entra ID does; the token comes from SCIM_TOKEN, never from
    the command line, where other users of the machine could read it."""
    from app.tools.entra_replay import replay_against

    token = os.environ.get("SCIM_TOKEN", "").strip()
    if not token:
        return _fail("set SCIM_TOKEN to the Secret Token (the tenant's SCIM token)", EXIT_CONFIG)
    return asyncio.run(replay_against(args.tenant_url, token))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Scimgraph: SCIM provisioning and GraphQL admin API")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations and serve HTTP")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", help="server processes sharing the port (default: WORKERS, else 1)")
    serve.set_defaults(handler=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema to the newest revision").set_defaults(handler=cmd_migrate)

    acc = sub.add_parser("accounts", help="manage accounts").add_subparsers(dest="action", required=True)
    create = acc.add_parser("create", help="create an account")
    create.add_argument("identifier")
    create.add_argument("--name")
    create.set_defaults(handler=cmd_accounts_create)
    asettings = acc.add_parser("settings", help="show or change an account's settings")
    asettings.add_argument("--account", required=True)
    asettings.add_argument(
        "--deprovision-retention-days", type=int, help="days a user deleted by the identity provider is kept, restorable (0: none)"
    )
    asettings.add_argument("--activity-retention-days", type=int, help="days the activity log keeps its records of SCIM requests")
    asettings.set_defaults(handler=cmd_accounts_settings)

    tok = sub.add_parser("tokens", help="manage API tokens").add_subparsers(dest="action", required=True)
    tcreate = tok.add_parser("create", help="create a token; the secret is the last line of output")
    tcreate.add_argument("--account", required=True)
    tcreate.add_argument("--name", default="api token")
    tcreate.add_argument(
        "--permissions",
        help="comma-separated, e.g. users:read,groups:read (default: all; with --integration, users and groups read and write)",
    )
    tcreate.add_argument("--expires-in-days", type=int)
    tcreate.add_argument("--integration", help="bind the token to this app integration (by name)")
    tcreate.set_defaults(handler=cmd_tokens_create)
    trevoke = tok.add_parser("revoke", help="revoke a token")
    trevoke.add_argument("--account", required=True)
    trevoke.add_argument("token_id")
    trevoke.set_defaults(handler=cmd_tokens_revoke)

    intg = sub.add_parser("integrations", help="app integrations of the identity provider").add_subparsers(dest="action", required=True)
    icreate = intg.add_parser("create", help="connect an app of the identity provider")
    icreate.add_argument("--account", required=True)
    icreate.add_argument("--name", required=True)
    icreate.add_argument("--generation", required=True, type=str.upper, choices=["FIRSTGEN", "NEXTGEN"], help="firstgen or nextgen")
    icreate.add_argument("--provider", required=True, help='the identity provider: "Azure AD", "Okta", …')
    icreate.set_defaults(handler=cmd_integrations_create)
    ilist = intg.add_parser("list", help="the account's app integrations and their health")
    ilist.add_argument("--account", required=True)
    ilist.set_defaults(handler=cmd_integrations_list)

    flg = sub.add_parser("flags", help="feature flags").add_subparsers(dest="action", required=True)
    fset = flg.add_parser("set", help="turn a feature flag on or off")
    fset.add_argument("--account", required=True)
    fset.add_argument("name")
    fset.add_argument("state", choices=["on", "off"])
    fset.set_defaults(handler=cmd_flags_set)

    ext = sub.add_parser("extensions", help="custom schema extensions").add_subparsers(dest="action", required=True)
    eadd = ext.add_parser("add", help="declare (or declare again) an extension from a JSON schema file")
    eadd.add_argument("--account", required=True)
    eadd.add_argument("--file", required=True, help='{"id": "urn:…:User", "name": …, "attributes": [{"name", "type", …}]}')
    eadd.set_defaults(handler=cmd_extensions_add)
    elist = ext.add_parser("list", help="the declared extensions of an account")
    elist.add_argument("--account", required=True)
    elist.set_defaults(handler=cmd_extensions_list)

    sub.add_parser(
        "purge", help="delete deprovisioned users whose account's retention has ended, in every account (run daily)"
    ).set_defaults(handler=cmd_purge)

    backup = sub.add_parser("backup", help="copy the embedded SQLite database while it serves (PostgreSQL: use pg_dump)")
    backup.add_argument("--to", required=True, help="the new file to write")
    backup.set_defaults(handler=cmd_backup)

    sub.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(handler=cmd_export_schema)

    replay = sub.add_parser(
        "entra-replay",
        help="check a running server the way Entra ID provisions it (token from SCIM_TOKEN); exits 1 on any unexpected answer",
    )
    replay.add_argument("tenant_url", help="the Tenant URL, e.g. https://host/gateway/ng/api/scim/account/ACCOUNT")
    replay.set_defaults(handler=cmd_entra_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.handler in (cmd_export_schema, cmd_entra_replay):  # neither touches the database
        return int(args.handler(None, args))
    try:
        settings = load_settings(host=getattr(args, "host", None), port=getattr(args, "port", None))
        return int(args.handler(settings, args))
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except DomainError as exc:
        return _fail(exc.message)
    except KeyboardInterrupt:
        return 130
