"""The deployment kit in deploy/: what it configures is what the service reads, and its probes and
secrets are wired as docs/operations.md says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.metrics import Metrics
from app.settings import SECRETS
from tests.served import ROOT

DEPLOY = ROOT / "deploy"
SETTINGS_SOURCE = (ROOT / "app" / "settings.py").read_text() + (ROOT / "app" / "cli.py").read_text()


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _known(name: str) -> bool:
    """A variable the service reads (a secret's *_FILE, or a name its settings or CLI look up)."""
    if name.endswith("_FILE"):
        return name.removesuffix("_FILE") in SECRETS
    return f'"{name}"' in SETTINGS_SOURCE


def test_compose_runs_the_service_on_a_healthy_postgresql_with_its_url_as_a_secret() -> None:
    [compose] = _documents(DEPLOY / "compose.yaml")
    postgres, app = compose["services"]["postgres"], compose["services"]["scimgraph"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["environment"]["DATABASE_URL_FILE"] == "/run/secrets/database_url" and "database_url" in app["secrets"]
    assert all(_known(name) for name in app["environment"]), app["environment"]
    assert "PUBLIC_URL" in app["environment"]


def test_compose_passes_docker_compose_config(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose is not installed here")
    done = subprocess.run([docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_kubernetes_manifests_probe_the_health_endpoints_and_read_the_url_from_a_secret() -> None:
    documents = [d for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for d in _documents(path)]
    by_kind = {d["kind"]: d for d in documents}
    assert set(by_kind) == {"Secret", "Job", "Deployment", "Service", "PodDisruptionBudget"}
    [container] = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert by_kind["Job"]["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "app", "migrate"]
    for workload in (by_kind["Deployment"], by_kind["Job"]):
        spec = workload["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert all(_known(name) for name in env), env
        assert env["DATABASE_URL_FILE"].endswith("/database-url")
        assert spec["volumes"][0]["secret"]["secretName"] == by_kind["Secret"]["metadata"]["name"]
    # The pod outlives the service's drain period (SHUTDOWN_DRAIN_SECONDS, 25 s by default).
    assert by_kind["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 25
    assert by_kind["PodDisruptionBudget"]["spec"]["selector"] == by_kind["Deployment"]["spec"]["selector"]


def test_the_grafana_dashboard_charts_every_metric_the_service_exports_and_no_other() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    families = {family.name: family.type for family in Metrics().registry.collect()}
    series = {name + suffix: name for name, kind in families.items() for suffix in suffixes[kind]}
    charted = {
        name for panel in dashboard["panels"] for target in panel["targets"] for name in re.findall(r"\bscimgraph_\w+", target["expr"])
    }
    assert charted <= set(series), charted - set(series)
    assert {series[name] for name in charted} == set(families)
