"""Configuration from the environment, validated once at start-up.

Every problem is reported as a single `ConfigError` line; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/scimgraph.db"
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A configuration value is unusable; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def tenant_url(self, account_identifier: str) -> str:
        return f"{self.public_url}/gateway/ng/api/scim/account/{account_identifier}"


def validate_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a database URL: {_redact(url)!r}") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL driver {parsed.drivername!r} is not supported; "
            f"use one of {', '.join(SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername.startswith("sqlite"):
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("DATABASE_URL must name a SQLite file, e.g. sqlite+aiosqlite:///./data/scimgraph.db")
    elif not parsed.host or not parsed.database:
        raise ConfigError("DATABASE_URL for PostgreSQL needs a host and a database name")
    return url


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
    public_url = (env.get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
    scheme = urlsplit(public_url).scheme
    if scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        raise ConfigError(f"PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    body_raw = env.get("MAX_BODY_BYTES") or str(DEFAULT_MAX_BODY_BYTES)
    try:
        max_body = int(body_raw)
    except ValueError:
        raise ConfigError(f"MAX_BODY_BYTES must be a positive number, got {body_raw!r}") from None
    if max_body < 1024:
        raise ConfigError(f"MAX_BODY_BYTES must be at least 1024, got {max_body}")
    return Settings(
        database_url=database_url,
        host=host,
        port=port,
        log_level=log_level,
        public_url=public_url,
        max_body_bytes=max_body,
    )


def ensure_sqlite_folder(database_url: str) -> None:
    """Create the folder of an embedded SQLite database on demand."""
    parsed = make_url(database_url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
