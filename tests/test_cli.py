from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.settings import Settings
from tests.served import ROOT, free_port, serve, wait_until_healthy


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def test_accounts_and_tokens(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "create", "acme", "--name", "Acme Inc"]) == 0
    assert "gateway/ng/api/scim/account/acme" in capsys.readouterr().out
    assert main(["tokens", "create", "--account", "acme", "--permissions", "users:read,groups:read", "--expires-in-days", "30"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"sat\.acme\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43,}", out[-1]), out
    token_id = out[-1].split(".")[2]
    assert main(["tokens", "revoke", "--account", "acme", token_id]) == 0
    assert main(["flags", "set", "--account", "acme", "UPDATE_EMAILS_VIA_SCIM", "on"]) == 0


def test_account_settings_and_purge(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "create", "acme"]) == 0
    assert main(["accounts", "create", "other"]) == 0
    capsys.readouterr()
    assert main(["accounts", "settings", "--account", "acme"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "deprovision retention: 30 days for account acme",
        "activity retention: 90 days for account acme",
    ]
    assert main(["accounts", "settings", "--account", "acme", "--deprovision-retention-days", "7", "--activity-retention-days", "30"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "deprovision retention: 7 days for account acme",
        "activity retention: 30 days for account acme",
    ]
    assert main(["accounts", "settings", "--account", "acme", "--activity-retention-days", "0"]) == 1
    assert "activityRetentionDays must be a whole number of days from 1 to 3650" in capsys.readouterr().err
    assert main(["accounts", "settings", "--account", "acme", "--deprovision-retention-days", "-3"]) == 1
    assert "from 0 to 3650" in capsys.readouterr().err
    assert main(["purge"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "acme: 0 deprovisioned users purged, 0 request records past retention deleted",
        "other: 0 deprovisioned users purged, 0 request records past retention deleted",
        "0 hourly app integration counts older than a week deleted",
    ]


def test_extensions_add_and_list(cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    urn = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
    schema = tmp_path / "schema.json"
    schema.write_text('{"id": "%s", "attributes": [{"name": "costCode"}, {"name": "level", "type": "integer"}]}' % urn)
    assert main(["accounts", "create", "acme"]) == 0
    capsys.readouterr()
    assert main(["extensions", "add", "--account", "acme", "--file", str(schema)]) == 0
    assert capsys.readouterr().out.strip() == f"declared {urn} for User: costCode (string), level (integer)"
    assert main(["extensions", "list", "--account", "acme"]) == 0
    assert capsys.readouterr().out.strip() == f"{urn}\tUser\tcostCode, level"
    schema.write_text('{"id": "%s", "attributes": [{"name": "x", "type": "float"}]}' % urn)
    assert main(["extensions", "add", "--account", "acme", "--file", str(schema)]) == 1
    assert "type must be one of" in capsys.readouterr().err
    assert main(["extensions", "add", "--account", "acme", "--file", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_integrations_create_list_and_bound_tokens(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "create", "acme"]) == 0
    argv = [
        "integrations",
        "create",
        "--account",
        "acme",
        "--name",
        "Harness FirstGen",
        "--generation",
        "firstgen",
        "--provider",
        "Azure AD",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "created FIRSTGEN app integration 'Harness FirstGen' (Azure AD)" in out
    assert "--integration 'Harness FirstGen'" in out
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["tokens", "create", "--account", "acme", "--integration", "harness firstgen", "--expires-in-days", "7"]) == 0
    out = capsys.readouterr().out
    assert "app integration: harness firstgen" in out
    assert "permissions: users:read,users:write,groups:read,groups:write" in out  # an identity provider's, not admin
    assert main(["tokens", "create", "--account", "acme", "--integration", "nope"]) == 1
    assert "AppIntegration nope not found" in capsys.readouterr().err
    assert main(["integrations", "list", "--account", "acme"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["NAME", "GENERATION", "PROVIDER", "STATUS"]
    assert row.startswith("Harness FirstGen  FIRSTGEN    Azure AD  ACTIVE")
    assert "1 active, expires soon" in row  # the token expires in 7 days


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tokens", "create", "--account", "nope"], "Account nope not found"),
        (["flags", "set", "--account", "acme", "NO_SUCH_FLAG", "on"], "unknown feature flag"),
        (["accounts", "create", "bad.identifier"], "identifier must be"),
        (["tokens", "create", "--account", "acme", "--permissions", "root"], "permissions must be"),
        (["tokens", "revoke", "--account", "acme", "nosuchtoken"], "not found"),
    ],
)
def test_errors_are_one_line(cli_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    main(["accounts", "create", "acme"])
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_duplicate_account_is_refused(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "create", "acme"]) == 0
    assert main(["accounts", "create", "acme"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_export_schema_matches_committed_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == (ROOT / "schema.graphql").read_text()


def test_first_serve_bootstraps_prints_tenant_url_and_token_once(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PUBLIC_URL", "HOST")}
    # This test stops the server twice; the readiness grace is for load balancers, not for it.
    env.update(PORT=str(port), PYTHONPATH=str(ROOT), SHUTDOWN_READINESS_GRACE_SECONDS="0")

    def serve_until_healthy() -> list[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            wait_until_healthy(port)
            token = None
            proc.terminate()
            out, _ = proc.communicate(timeout=15)
            lines = out.splitlines()
            for line in lines:
                if line.startswith("Secret Token:"):
                    token = line.split()[-1]
            if token:
                return [*lines, token]
            return lines
        finally:
            if proc.poll() is None:
                proc.kill()

    first = serve_until_healthy()
    assert f"Tenant URL:   http://127.0.0.1:{port}/gateway/ng/api/scim/account/default" in first
    assert any(line.startswith("Secret Token: sat.default.") for line in first)
    assert f"GraphiQL:     http://127.0.0.1:{port}/graphql (in a browser, with the token)" in first
    assert any("NextGen app integration 'default'" in line for line in first)
    assert (tmp_path / "data" / "scimgraph.db").exists()
    second = serve_until_healthy()
    assert not any(line.startswith("Secret Token:") for line in second)
    assert any(line.startswith("Tenant URL:") for line in second)


def test_entra_replay_checks_a_running_server_with_the_token_from_the_environment(tmp_path: Path) -> None:
    # The default rate limit, which the replay (faster than Entra) meets and waits out as Entra would.
    with serve(tmp_path, RATE_LIMIT_PER_TOKEN="100/second;3000/minute") as server:
        assert server.token is not None
        tenant_url = f"{server.url}/gateway/ng/api/scim/account/default"
        env = {k: v for k, v in os.environ.items() if k != "SCIM_TOKEN"} | {"PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "app", "entra-replay", tenant_url]
        without = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert (without.returncode, without.stderr.strip()) == (2, "error: set SCIM_TOKEN to the Secret Token (the tenant's SCIM token)")
        done = subprocess.run(command, cwd=tmp_path, env=env | {"SCIM_TOKEN": server.token}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1].endswith("requests, 0 unexpected status codes")


def test_backup_of_the_embedded_database_is_one_serve_starts_on(cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "create", "default"]) == 0
    assert main(["tokens", "create", "--account", "default"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    restored = tmp_path / "restored"
    restored.mkdir()
    assert main(["backup", "--to", str(restored / "served.db")]) == 0
    assert main(["backup", "--to", str(restored / "served.db")]) == 1
    assert "exists" in capsys.readouterr().err
    with serve(restored, first=False) as server:  # its database: the copy
        answer = httpx.get(f"{server.url}/gateway/ng/api/scim/account/default/Users", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


def test_backup_of_postgresql_points_to_pg_dump(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("app.cli.load_settings", lambda **_: Settings(database_url="postgresql+asyncpg://u@h:5432/db"))
    assert main(["backup", "--to", "x.db"]) == 1
    assert "pg_dump" in capsys.readouterr().err
