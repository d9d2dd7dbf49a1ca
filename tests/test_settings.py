from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import ConfigError, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite+aiosqlite:///./data/scimgraph.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.tenant_url("acme") == "http://127.0.0.1:8000/gateway/ng/api/scim/account/acme"


def test_edge_timeouts_default_and_can_be_set() -> None:
    defaults = load_settings({})
    assert (defaults.header_timeout_seconds, defaults.body_read_timeout_seconds, defaults.readiness_timeout_seconds) == (10, 10, 2)
    assert (defaults.shutdown_drain_seconds, defaults.shutdown_readiness_grace_seconds) == (25, 5)
    tuned = load_settings(
        {
            "HEADER_TIMEOUT_SECONDS": "2.5",
            "BODY_READ_TIMEOUT_SECONDS": "30",
            "READINESS_TIMEOUT_SECONDS": "0.5",
            "SHUTDOWN_DRAIN_SECONDS": "50",
            "SHUTDOWN_READINESS_GRACE_SECONDS": "0",
        }
    )
    assert (tuned.header_timeout_seconds, tuned.body_read_timeout_seconds, tuned.readiness_timeout_seconds) == (2.5, 30, 0.5)
    assert (tuned.shutdown_drain_seconds, tuned.shutdown_readiness_grace_seconds) == (50, 0)


def test_body_limits_default_and_a_group_limit_never_below_the_general_one() -> None:
    defaults = load_settings({})
    assert (defaults.max_body_bytes, defaults.max_group_body_bytes) == (1024 * 1024, 16 * 1024 * 1024)
    assert load_settings({"MAX_GROUP_BODY_BYTES": "4194304"}).max_group_body_bytes == 4 * 1024 * 1024
    # Raising the general limit above 16 MiB raises the group default with it.
    assert load_settings({"MAX_BODY_BYTES": str(32 * 1024 * 1024)}).max_group_body_bytes == 32 * 1024 * 1024


def test_a_short_drain_shortens_the_default_readiness_grace() -> None:
    # The grace is part of the drain, so a drain shorter than the default grace is all grace.
    settings = load_settings({"SHUTDOWN_DRAIN_SECONDS": "2"})
    assert (settings.shutdown_drain_seconds, settings.shutdown_readiness_grace_seconds) == (2, 2)


def test_public_url_overrides_host_and_port() -> None:
    settings = load_settings({"PUBLIC_URL": "https://scim.example.com/", "PORT": "9000"})
    assert settings.tenant_url("x") == "https://scim.example.com/gateway/ng/api/scim/account/x"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/db"}, "not supported"),
        ({"DATABASE_URL": "postgresql+asyncpg:///"}, "host"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"PUBLIC_URL": "ftp://x"}, "PUBLIC_URL"),
        ({"HEADER_TIMEOUT_SECONDS": "0"}, "HEADER_TIMEOUT_SECONDS must be a number of seconds from 0.1 to 300"),
        ({"HEADER_TIMEOUT_SECONDS": "ten"}, "HEADER_TIMEOUT_SECONDS"),
        ({"BODY_READ_TIMEOUT_SECONDS": "nan"}, "BODY_READ_TIMEOUT_SECONDS"),
        ({"BODY_READ_TIMEOUT_SECONDS": "inf"}, "BODY_READ_TIMEOUT_SECONDS"),
        ({"READINESS_TIMEOUT_SECONDS": "61"}, "READINESS_TIMEOUT_SECONDS"),
        ({"SHUTDOWN_DRAIN_SECONDS": "-1"}, "SHUTDOWN_DRAIN_SECONDS"),
        ({"SHUTDOWN_DRAIN_SECONDS": "10", "SHUTDOWN_READINESS_GRACE_SECONDS": "15"}, "must not exceed SHUTDOWN_DRAIN_SECONDS"),
        ({"MAX_BODY_BYTES": "1k"}, "MAX_BODY_BYTES must be a whole number of bytes"),
        ({"MAX_BODY_BYTES": "100"}, "MAX_BODY_BYTES must be at least 1024"),
        ({"MAX_BODY_BYTES": "2000000", "MAX_GROUP_BODY_BYTES": "1000000"}, "MAX_GROUP_BODY_BYTES must be at least 2000000"),
    ],
)
def test_bad_values_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env)
    assert "\n" not in str(info.value)


def _run_cli(args: list[str], env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def _env(tmp_path: object, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT", "HOST", "PUBLIC_URL")}
    env["PYTHONPATH"] = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "extra",
    [{"DATABASE_URL": "sqlite+aiosqlite://"}, {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}, {"PORT": "-1"}],
    ids=["malformed-database-url", "unreachable-database", "bad-port"],
)
def test_config_errors_exit_2_with_one_line_and_no_traceback(tmp_path: object, extra: dict[str, str]) -> None:
    result = _run_cli(["serve"], _env(tmp_path, **extra), str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


def test_port_in_use_exits_2(tmp_path: object) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_cli(["serve", "--port", str(port)], _env(tmp_path), str(tmp_path))
    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_database_pool_size_is_a_bounded_whole_number() -> None:
    assert load_settings({}).db_pool_size == 20
    assert load_settings({"DB_POOL_SIZE": "64"}).db_pool_size == 64
    for bad in ("0", "-1", "1.5", "many", "501"):
        with pytest.raises(ConfigError, match="DB_POOL_SIZE"):
            load_settings({"DB_POOL_SIZE": bad})


def test_database_timeouts_are_bounded_seconds() -> None:
    defaults = load_settings({}).database_timeouts
    assert (defaults.connect, defaults.pool_checkout, defaults.statement) == (5.0, 5.0, 15.0)
    custom = load_settings({"DB_CONNECT_TIMEOUT": "2", "DB_POOL_TIMEOUT": "0.5", "DB_STATEMENT_TIMEOUT": "30"}).database_timeouts
    assert (custom.connect, custom.pool_checkout, custom.statement) == (2.0, 0.5, 30.0)
    for name in ("DB_CONNECT_TIMEOUT", "DB_POOL_TIMEOUT", "DB_STATEMENT_TIMEOUT"):
        for bad in ("0", "soon", "nan", "3601"):
            with pytest.raises(ConfigError, match=name):
                load_settings({name: bad})


def test_secrets_may_come_from_files(tmp_path: Path) -> None:
    url = tmp_path / "database_url"
    url.write_text("postgresql+asyncpg://scim:s3cret@db:5432/scimgraph\n")
    token = tmp_path / "metrics_token"
    token.write_text("a-metrics-token-of-some-length")
    settings = load_settings({"DATABASE_URL_FILE": str(url), "METRICS_TOKEN_FILE": str(token)})
    assert settings.database_url == "postgresql+asyncpg://scim:s3cret@db:5432/scimgraph"
    assert settings.metrics_token == "a-metrics-token-of-some-length"
    with pytest.raises(ConfigError, match="not both"):
        load_settings({"DATABASE_URL_FILE": str(url), "DATABASE_URL": "sqlite+aiosqlite:///x.db"})
    with pytest.raises(ConfigError, match="DATABASE_URL_FILE: cannot read"):
        load_settings({"DATABASE_URL_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_settings({"METRICS_TOKEN_FILE": str(tmp_path / "empty")})
