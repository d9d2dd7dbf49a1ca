"""Configuration from the environment, validated once at start-up.

Every problem is reported as a single `ConfigError` line; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.observability import LOG_FORMATS

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/scimgraph.db"
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# A SCIM POST or PUT of a group carries every member: 100,000 members are about 5 MB of JSON.
DEFAULT_MAX_GROUP_BODY_BYTES = 16 * 1024 * 1024
# The HTTP edge, in seconds: how long a client may take to send its request headers, and to send each
# next piece of its body; how long /readyz waits for the database; and how shutdown drains.
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_BODY_READ_TIMEOUT_SECONDS = 10.0
DEFAULT_READINESS_TIMEOUT_SECONDS = 2.0
DEFAULT_SHUTDOWN_DRAIN_SECONDS = 25.0  # below the 30 s an orchestrator usually waits before SIGKILL
DEFAULT_SHUTDOWN_READINESS_GRACE_SECONDS = 5.0
# Nodes one GraphQL operation may ask for (app/graphql/cost.py says how they are counted): 100 groups
# with their first 50 members (5,100) fits; pages of 100 nested three deep (1,010,100) do not.
DEFAULT_GRAPHQL_COST_BUDGET = 10_000
MIN_GRAPHQL_COST_BUDGET = 100  # one full page must always fit
# Rate limits (app/ratelimit.py says why these numbers).
DEFAULT_RATE_LIMIT_PER_TOKEN = "100/second;3000/minute"
DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS = "30/minute"
DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT = "300/minute"


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """Seconds: opening a connection, waiting for a pooled one, and running one statement (on SQLite,
    also how long a writer waits for the write lock). See docs/security.md."""

    connect: float = 5.0
    pool_checkout: float = 5.0
    statement: float = 15.0


class ConfigError(Exception):
    """A configuration value is unusable; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # A read-only copy of the database (a PostgreSQL streaming replica) for requests that only read:
    # GraphQL queries and SCIM GETs. Tokens are always checked on DATABASE_URL. See docs/scaling.md.
    database_read_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_group_body_bytes: int = DEFAULT_MAX_GROUP_BODY_BYTES
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    body_read_timeout_seconds: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS
    readiness_timeout_seconds: float = DEFAULT_READINESS_TIMEOUT_SECONDS
    shutdown_drain_seconds: float = DEFAULT_SHUTDOWN_DRAIN_SECONDS
    shutdown_readiness_grace_seconds: float = DEFAULT_SHUTDOWN_READINESS_GRACE_SECONDS
    db_connect_timeout: float = 5.0
    db_pool_timeout: float = 5.0
    db_statement_timeout: float = 15.0
    db_pool_size: int = 20
    graphql_ide: bool = True
    graphql_introspection: bool = True
    graphql_cost_budget: int = DEFAULT_GRAPHQL_COST_BUDGET
    # app/ratelimit.py: "100/second;3000/minute" style, or "off".
    rate_limit_per_token: str = DEFAULT_RATE_LIMIT_PER_TOKEN
    rate_limit_failed_auth_per_address: str = DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS
    rate_limit_failed_auth_per_account: str = DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT
    # /metrics asks for `Authorization: Bearer <metrics_token>` when set.
    metrics_token: str | None = None

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(connect=self.db_connect_timeout, pool_checkout=self.db_pool_timeout, statement=self.db_statement_timeout)

    def tenant_url(self, account_identifier: str) -> str:
        return f"{self.public_url}/gateway/ng/api/scim/account/{account_identifier}"


def validate_database_url(url: str, name: str = "DATABASE_URL") -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{name} is not a database URL: {_redact(url)!r}") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(f"{name} driver {parsed.drivername!r} is not supported; use one of {', '.join(SUPPORTED_DRIVERS)}")
    if parsed.drivername.startswith("sqlite"):
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"{name} must name a SQLite file, e.g. sqlite+aiosqlite:///./data/scimgraph.db")
    elif not parsed.host or not parsed.database:
        raise ConfigError(f"{name} for PostgreSQL needs a host and a database name")
    return url


def _read_url(env: dict[str, str], database_url: str) -> str | None:
    """DATABASE_READ_URL: a PostgreSQL replica of a PostgreSQL DATABASE_URL, or nothing."""
    raw = env.get("DATABASE_READ_URL")
    if not raw:
        return None
    validate_database_url(raw, "DATABASE_READ_URL")
    if not (database_url.startswith("postgresql") and raw.startswith("postgresql")):
        raise ConfigError("DATABASE_READ_URL needs PostgreSQL, for both it and DATABASE_URL: it names a replica of DATABASE_URL")
    return raw


def _redact(url: str) -> str:
    """Hide a password before echoing a URL back to the operator."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def redact_database_url(url: str) -> str:
    return _redact(url)


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate settings; `overrides` (e.g. from CLI flags) win over the environment."""
    env = dict(os.environ if env is None else env)
    for name in SECRETS:
        _read_secret_file(env, name)
    database_url = validate_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    host = str(overrides.get("host") or env.get("HOST") or "127.0.0.1")
    port_raw = overrides.get("port") or env.get("PORT") or "8000"
    try:
        port = int(str(port_raw))
    except ValueError:
        raise ConfigError(f"PORT must be a number from 1 to 65535, got {port_raw!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"PORT must be a number from 1 to 65535, got {port}")
    log_level = (env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {log_level!r}")
    log_format = (env.get("LOG_FORMAT") or "text").strip().lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be text or json, got {env.get('LOG_FORMAT')!r}")
    public_url = (env.get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
    scheme = urlsplit(public_url).scheme
    if scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        raise ConfigError(f"PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    max_body = _bytes(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024)
    max_group_body = _bytes(env, "MAX_GROUP_BODY_BYTES", max(DEFAULT_MAX_GROUP_BODY_BYTES, max_body), max_body, " (MAX_BODY_BYTES)")
    db_timeouts = {
        name: _seconds_between(env, f"DB_{name.upper()}_TIMEOUT", default, 0.1, 3600)
        for name, default in (("connect", 5.0), ("pool", 5.0), ("statement", 15.0))
    }
    drain, readiness_grace = _shutdown_periods(env)
    return Settings(
        database_url=database_url,
        database_read_url=_read_url(env, database_url),
        db_connect_timeout=db_timeouts["connect"],
        db_pool_timeout=db_timeouts["pool"],
        db_statement_timeout=db_timeouts["statement"],
        db_pool_size=_pool_size(env),
        host=host,
        port=port,
        log_level=log_level,
        log_format=log_format,
        public_url=public_url,
        max_body_bytes=max_body,
        max_group_body_bytes=max_group_body,
        header_timeout_seconds=_seconds_between(env, "HEADER_TIMEOUT_SECONDS", DEFAULT_HEADER_TIMEOUT_SECONDS, 0.1, 300),
        body_read_timeout_seconds=_seconds_between(env, "BODY_READ_TIMEOUT_SECONDS", DEFAULT_BODY_READ_TIMEOUT_SECONDS, 0.1, 300),
        readiness_timeout_seconds=_seconds_between(env, "READINESS_TIMEOUT_SECONDS", DEFAULT_READINESS_TIMEOUT_SECONDS, 0.1, 60),
        shutdown_drain_seconds=drain,
        shutdown_readiness_grace_seconds=readiness_grace,
        graphql_ide=_switch(env, "GRAPHQL_IDE"),
        graphql_introspection=_switch(env, "GRAPHQL_INTROSPECTION"),
        graphql_cost_budget=_cost_budget(env),
        metrics_token=_metrics_token(env),
        rate_limit_per_token=_rate_limit(env, "RATE_LIMIT_PER_TOKEN", DEFAULT_RATE_LIMIT_PER_TOKEN),
        rate_limit_failed_auth_per_address=_rate_limit(
            env, "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS", DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS
        ),
        rate_limit_failed_auth_per_account=_rate_limit(
            env, "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT", DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT
        ),
    )


def _metrics_token(env: dict[str, str]) -> str | None:
    raw = env.get("METRICS_TOKEN")
    if not raw:
        return None
    if len(raw) < 16 or any(c.isspace() for c in raw):
        raise ConfigError("METRICS_TOKEN must be at least 16 characters without spaces")
    return raw


# Settings that hold a secret may instead name a file holding it, as <NAME>_FILE (a mounted Docker or
# Kubernetes secret): the environment of a process is easier to leak than a file only it can read.
SECRETS = ("DATABASE_URL", "DATABASE_READ_URL", "METRICS_TOKEN")


def _read_secret_file(env: dict[str, str], name: str) -> None:
    path = env.get(f"{name}_FILE")
    if not path:
        return
    if env.get(name):
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}_FILE: {path} is not UTF-8 text") from None
    if not value:
        raise ConfigError(f"{name}_FILE: {path} is empty")
    env[name] = value


def _rate_limit(env: dict[str, str], name: str, default: str) -> str:
    from app.ratelimit import parse_limits

    raw = env.get(name) or default
    try:
        parse_limits(raw, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return raw


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _switch(env: dict[str, str], name: str) -> bool:
    """An on/off setting, on unless set: a production deployment turns it off explicitly."""
    raw = (env.get(name) or "on").strip().lower()
    if raw not in _TRUE + _FALSE:
        raise ConfigError(f"{name} must be on or off (true/false, 1/0, yes/no), got {env.get(name)!r}")
    return raw in _TRUE


def _cost_budget(env: dict[str, str]) -> int:
    raw = env.get("GRAPHQL_COST_BUDGET") or str(DEFAULT_GRAPHQL_COST_BUDGET)
    try:
        budget = int(raw)
    except ValueError:
        raise ConfigError(f"GRAPHQL_COST_BUDGET must be a number of nodes, got {raw!r}") from None
    if budget < MIN_GRAPHQL_COST_BUDGET:
        raise ConfigError(f"GRAPHQL_COST_BUDGET must be at least {MIN_GRAPHQL_COST_BUDGET} (one full page), got {budget}")
    return budget


def _seconds_between(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise ConfigError(f"{name} must be a number of seconds from {low:g} to {high:g}, got {raw!r}")
    return value


def _bytes(env: dict[str, str], name: str, default: int, low: int, low_named: str = "") -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of bytes, got {raw!r}") from None
    if value < low:
        raise ConfigError(f"{name} must be at least {low}{low_named}, got {value}")
    return value


def _shutdown_periods(env: dict[str, str]) -> tuple[float, float]:
    """The drain period bounds the whole shutdown; the readiness grace is its first part (new requests
    still served while load balancers notice /readyz failing), so it cannot be longer."""
    drain = _seconds_between(env, "SHUTDOWN_DRAIN_SECONDS", DEFAULT_SHUTDOWN_DRAIN_SECONDS, 0, 3600)
    default_grace = min(DEFAULT_SHUTDOWN_READINESS_GRACE_SECONDS, drain)
    grace = _seconds_between(env, "SHUTDOWN_READINESS_GRACE_SECONDS", default_grace, 0, 3600)
    if grace > drain:
        raise ConfigError(f"SHUTDOWN_READINESS_GRACE_SECONDS ({grace:g}) must not exceed SHUTDOWN_DRAIN_SECONDS ({drain:g})")
    return drain, grace


def _pool_size(env: dict[str, str]) -> int:
    raw = env.get("DB_POOL_SIZE") or "20"
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ConfigError(f"DB_POOL_SIZE must be a whole number from 1 to 500, got {raw!r}")
    return int(raw)


def ensure_sqlite_folder(database_url: str) -> None:
    """Create the folder of an embedded SQLite database on demand."""
    parsed = make_url(database_url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
