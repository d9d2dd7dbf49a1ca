"""The benchmark harness end to end at a tiny size: seed, every server, every phase, the replay, the
targets and the JSON. On PostgreSQL (TEST_DATABASE_URL) in a database of its own, else on SQLite."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.scenarios import CEILING_PHASES, REFERENCE_PHASES, SERVICE_PHASES

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--members",
    "300",
    "--groups",
    "12",
    "--add-batches",
    "100",
    "--warmup",
    "0.1",
    "--duration",
    "0.4",
    "--replay-users",
    "40",
    "--replay-groups",
    "2",
    "--replay-members",
    "20",
    "--reference-members",
    "200",
    "--reference-groups",
    "6",
    "--reference-add-batches",
    "10",
    "--profile-seconds",
    "1",
]


def _database_url(tmp_path: Path) -> str:
    test_url = os.environ.get("TEST_DATABASE_URL")
    if not test_url:
        return f"sqlite+aiosqlite:///{tmp_path / 'bench-smoke.db'}"
    # Its own database: the benchmark empties the one it is given.
    url = make_url(test_url)
    return url.set(database=f"{url.database}_bench_smoke").render_as_string(hide_password=False)


def _has_scim2_server() -> bool:
    return importlib.util.find_spec("scim2_server") is not None


def test_the_benchmark_runs_end_to_end_at_a_tiny_size(tmp_path: Path) -> None:
    database_url = _database_url(tmp_path)
    output = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BENCH_QUICK", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--database-url",
            database_url,
            "--output",
            str(output),
            "--logs",
            str(tmp_path / "logs"),
            *TINY,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(output.read_text())
    postgres = database_url.startswith("postgresql")

    assert results["seed"]["rows"]["users"] == 300 + 100 * 50
    assert results["generator_ceiling"]["requests"] > 0
    for run in ("service_1w", "service_2w"):
        phases = results["runs"][run]["phases"]
        assert list(phases) == list(SERVICE_PHASES)
        assert all(p["requests"] > 0 and p["errors"] == 0 for p in phases.values()), phases
        replay = results["runs"][run]["replay"]
        assert (replay["errors"], replay["requests"]) == (0, 40 * 2 + 2 * 3), replay
    assert set(results["runs"]["service_2w"]["peak_rss_mb"]) == {"parent", "worker1", "worker2"}
    assert results["runs"]["service_1w"]["statements"]["users"]["n_plus_1"] is False
    adds = results["runs"]["service_1w"]["add_members_in_turns"]["rps"]
    assert set(adds) == {"add_small", "add_big"} and all(len(r) == 1 and r[0] > 0 for r in adds.values()), adds
    assert "in turns, req/s: 10-member" in next(t["value"] for t in results["targets"] if t["target"].startswith("+50 members"))
    large = results["runs"]["service_1w"]["large_group_put"]
    assert large["ok"] and [p["status"] for p in large["puts"]] == [200, 200], large
    if postgres:
        assert list(results["runs"]["ceiling"]["phases"]) == list(CEILING_PHASES)
        assert all(p["errors"] == 0 for p in results["runs"]["ceiling"]["phases"].values())
        assert results["parity"] == {"same_json": True, "differing_attributes": []}
        turns = results["bookkeeping_in_turns"]["rps"]
        assert set(turns) == {"with", "without_metrics_activity", "without_any"}, turns
        assert all(len(rates) == 1 and rates[0] > 0 for rates in turns.values()), turns
        workers = results["workers_in_turns"]
        assert set(workers["rps"]) == {"1", "2"} and all(len(r) == 1 and r[0] > 0 for r in workers["rps"].values()), workers
        assert "in turns, req/s: 1 worker" in next(t["value"] for t in results["targets"] if t["target"].startswith("2 workers"))
    else:
        assert "PostgreSQL only" in results["runs"]["ceiling"]["skipped"]
    if _has_scim2_server():
        assert list(results["runs"]["reference"]["phases"]) == list(REFERENCE_PHASES)
        assert all(p["errors"] == 0 for p in results["runs"]["reference"]["phases"].values())
        turns = results["reference_in_turns"]
        assert set(turns) == {"get_user", "post_user"}, turns
        assert all(len(r) == 1 and r[0] > 0 for t in turns.values() for r in t["rps"].values()), turns
        against = [t["value"] for t in results["targets"] if t["target"].endswith(">= 2x scim2-server")]
        assert sum("in turns, req/s: service" in value for value in against) == 2, against
    else:
        assert "not installed" in results["runs"]["reference"]["skipped"]
    statuses = {t["target"]: t["status"] for t in results["targets"]}
    assert set(statuses.values()) <= {"PASS", "FAIL", "N/A"}
    assert any("Entra initial sync" in t for t in statuses) and any("peak RSS" in t for t in statuses)
    # The printed table names every request type and every target.
    assert all(label in done.stdout for label in ("GET /Users/{id}", "PATCH /Groups +50 members (100k-member group)", "Entra initial sync"))
    assert done.stdout.count("PASS") + done.stdout.count("FAIL") + done.stdout.count("N/A") >= len(statuses)


def test_the_benchmark_refuses_a_database_it_would_wrongly_empty(tmp_path: Path) -> None:
    production = tmp_path / "scimgraph.db"
    production.write_bytes(b"precious")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--database-url",
            f"sqlite+aiosqlite:///{production}",
            "--output",
            str(tmp_path / "r.json"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing 'scimgraph', whose name does not contain 'bench'" in done.stderr
    assert production.read_bytes() == b"precious"
    assert not (tmp_path / "r.json").exists()
