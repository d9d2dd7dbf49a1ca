"""One benchmark run, start to end: database, seed, then each server in turn (never two at once):
the generator's own ceiling, the ceiling server, the service with 1 and with 2 workers, the
reference; then the targets, the table and the JSON."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import bookkeeping, database, procs, profile, queries, report, seed
from bench.config import BenchConfig
from bench.dataset import Dataset, user_id
from bench.httpload import Connection, Phase, PhaseResult, Probe, Request, build_request, run_phase
from bench.large_group import put_full_member_list
from bench.replay import replay
from bench.scenarios import CEILING_PHASES, REFERENCE_PHASES, SERVICE_PHASES, Target, Timing, parity_user, phase

ACCOUNT = "bench"
PUBLIC_URL = "https://scim.bench.example"  # the same for the service and the ceiling: same JSON
TURNS = 5  # GET by id in turns: each configuration measured this many times, alternating
ADD_TURNS = 3  # "+50 members" into a small group and into the big one, in turns: each this many times
REFERENCE_TURNS = 3  # the service and scim2-server, in turns, on the request types of TURN_PHASES
TURN_PHASES = ("get_user", "post_user")


def ratio_of_means(a: list[float], b: list[float]) -> float | None:
    """The mean of the rates `a` over the mean of the rates `b` (runs in turns); None when `b` is nothing."""
    mean_b = sum(b) / len(b) if b else 0.0
    return round((sum(a) / len(a)) / mean_b, 4) if mean_b else None


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it (the figures are the tree's)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=database.ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return ""

    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no", "app"))}


class Bench:
    """One run: the servers one after the other, their phases, and what the targets need."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.logs = config.logs or Path(tempfile.mkdtemp(prefix="scimgraph-bench-"))
        self.dataset = Dataset(members=config.members, groups=config.groups, spare=config.add_batches * 50)
        self.timing = Timing(config.warmup, config.duration)
        self.results: dict[str, Any] = {"runs": {}}
        self.samples: dict[str, Any] = {}
        self.postmaster: int | None = None

    def probe(self, server: procs.Server) -> Probe:
        """CPU seconds so far of each of the server's processes, the load generator, the PostgreSQL
        server (all its processes: connections opened and closed in between included, other
        databases' sessions too) and the whole machine."""

        async def sample() -> dict[str, float]:
            own = os.times()
            busy, _ = procs.machine_busy()
            cpu = server.cpu()
            postgres = {"postgres": procs.tree_cpu_seconds(self.postmaster)} if self.postmaster else {}
            return {**cpu, "server": sum(cpu.values()), "generator": own.user + own.system, "machine": busy / procs.CLOCK_TICKS, **postgres}

        return sample

    async def measure(self, server: procs.Server, target: Target, load: Phase) -> PhaseResult:
        result = await run_phase(target.host, target.port, load, self.config.connections, self.probe(server))
        result.cpu = {role: round(share, 1) for role, share in result.cpu.items()}
        return result

    async def phases(
        self,
        server: procs.Server,
        target: Target,
        names: tuple[str, ...],
        dataset: Dataset,
        tag: str,
        longer: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Each phase in turn; `longer` gives some of them a measured window of more seconds."""
        out = {}
        for name in names:
            timing = Timing(self.timing.warmup, max(self.timing.duration, (longer or {}).get(name, 0.0)))
            result = await self.measure(server, target, phase(name, target, dataset, timing, tag))
            out[name] = result.summary()
            log(
                f"{name:18} {result.rps:9.1f} req/s  p50 {result.percentile(50):7.2f} ms  p99 "
                f"{result.percentile(99):7.2f} ms  errors {result.errors}"
            )
        return out

    async def sample_user(self, target: Target) -> Any:
        """One user as this server renders it, before any phase: the ceiling must answer the service's JSON."""
        connection = Connection(target.host, target.port)
        try:
            answer = await connection.send(target.request("GET", f"/Users/{user_id(parity_user(self.dataset.members))}"))
        finally:
            await connection.close()
        return json.loads(answer.body) if answer.status == 200 else {"status": answer.status}

    def parity(self) -> dict[str, Any]:
        ceiling, service = self.samples.get("ceiling"), self.samples.get("service")
        if ceiling is None or service is None:
            return {}
        keys = sorted(set(ceiling) | set(service))
        return {"same_json": ceiling == service, "differing_attributes": [k for k in keys if ceiling.get(k) != service.get(k)]}

    async def generator_ceiling(self) -> None:
        log("the load generator's own ceiling, against a trivial endpoint")
        port = procs.free_port()
        server = procs.start("trivial", ["-m", "bench.trivial", str(port)], {}, port, self.logs, ready_path="/")
        try:
            request = Request(build_request("GET", f"127.0.0.1:{port}", "/", {}))
            target = Target("trivial", port, "", "")
            result = await self.measure(server, target, Phase("trivial", lambda n: request, self.config.warmup, self.config.duration))
        finally:
            server.stop()
        self.results["generator_ceiling"] = result.summary()
        log(f"  {result.rps:.0f} req/s, the generator at {result.cpu.get('generator', 0):.0f}% of a core")

    async def ceiling(self, tenant: database.Tenant) -> None:
        if not self.config.postgres:
            self.results["runs"]["ceiling"] = {"skipped": "the ceiling is raw asyncpg: PostgreSQL only"}
            return
        port = procs.free_port()
        args = ["-m", "bench.ceiling", "--port", str(port), "--database-url", self.config.database_url, "--public-url", PUBLIC_URL]
        server = procs.start("ceiling", args, {}, port, self.logs)
        target = Target("ceiling", port, f"/gateway/ng/api/scim/account/{tenant.account}", tenant.token)
        log("ceiling (Starlette + raw asyncpg)")
        try:
            self.samples["ceiling"] = await self.sample_user(target)
            self.results["runs"]["ceiling"] = {"phases": await self.phases(server, target, CEILING_PHASES, self.dataset, "c")}
            self.results["runs"]["ceiling"]["peak_rss_mb"] = server.peak_rss()
        finally:
            server.stop()
        await database.reset_run(self.config.database_url, self.dataset.members, ("postc",))
        await seed.analyze(self.config.database_url)

    def start_service(
        self, tenant: database.Tenant, name: str, args: list[str], *, workers: int = 1, rate_limit: str = "1000000/second"
    ) -> tuple[procs.Server, Target]:
        """The service (or a variant of it, `args`) on the benchmark's database, and its target. One
        token carries the load of a whole machine here, thousands of requests a second: its rate
        limit is raised out of the way, and still counted on every request (app/ratelimit.py)."""
        port = procs.free_port()
        env = {"DATABASE_URL": self.config.database_url, "PORT": str(port), "PUBLIC_URL": PUBLIC_URL, "RATE_LIMIT_PER_TOKEN": rate_limit}
        server = procs.start(name, args, env, port, self.logs, workers=workers)
        return server, Target("service", port, f"/gateway/ng/api/scim/account/{tenant.account}", tenant.token)

    async def service(self, tenant: database.Tenant, workers: int) -> None:
        args = ["-m", "app", "serve", *(["--workers", str(workers)] if workers > 1 else [])]
        server, target = self.start_service(tenant, f"service-{workers}w", args, workers=workers)
        tag = f"{workers}w"
        log(f"service, {workers} worker{'s' if workers > 1 else ''} ({', '.join(f'{k} {v}' for k, v in server.roles.items())})")
        run: dict[str, Any] = {}
        try:
            if workers == 1:
                self.samples["service"] = await self.sample_user(target)
            run["phases"] = await self.phases(server, target, SERVICE_PHASES, self.dataset, tag)
            probe = self.probe(server)
            before = await probe()
            result = await replay(
                target, tag, self.config.replay_users, self.config.replay_groups, self.config.replay_members, self.config.replay_parallel
            )
            run["replay"] = result.summary() | {"cpu_percent": _cpu_shares(before, await probe(), result.seconds)}
            log(f"  Entra initial sync: {result.requests} requests in {result.seconds:.1f} s, {result.errors} errors")
            if workers == 1:
                await self.single_worker_extras(server, target, tenant, run)
            run["peak_rss_mb"] = server.peak_rss()
            if workers == 1:
                # Last, so that the peak above is that of the request types of the performance targets:
                # a 100,000-member document takes its own memory, reported with it.
                run["large_group_put"] = await put_full_member_list(target, self.dataset.members)
                run["large_group_put"]["peak_rss_mb"] = server.peak_rss()
                log(f"  PUT of the {self.dataset.members}-member group: {run['large_group_put']['puts']}")
        finally:
            server.stop()
        self.results["runs"][f"service_{workers}w"] = run
        await database.reset_run(self.config.database_url, self.dataset.members, (f"post{tag}", f"entra{tag}"))
        await seed.analyze(self.config.database_url)

    async def add_members_in_turns(self, server: procs.Server, target: Target) -> dict[str, Any]:
        """The "+50 members" phases, into the 10-member groups and into the 100,000-member group,
        alternating, ADD_TURNS times each (once for --quick), each turn from the same data: the
        spare users' memberships removed and the tables vacuumed first. In the run of every request
        type the big group's phase ends when its pool of 512 requests is used up, after a window of
        one or two seconds, and its throughput moved by a third between runs of the same code; here
        the ratio is one of means over several windows, each measured next to its counterpart."""
        rates: dict[str, list[float]] = {"add_small": [], "add_big": []}
        for turn in range(1 if self.config.quick else ADD_TURNS):
            await database.reset_run(self.config.database_url, self.dataset.members, ())
            await seed.analyze(self.config.database_url)
            for name in rates:
                result = await self.measure(server, target, phase(name, target, self.dataset, self.timing, f"a{turn}"))
                rates[name].append(round(result.rps, 1))
                log(f"  {name} in turns: {result.rps:9.1f} req/s")
        return {"rps": rates, "ratio": ratio_of_means(rates["add_small"], rates["add_big"])}

    async def single_worker_extras(self, server: procs.Server, target: Target, tenant: database.Tenant, run: dict[str, Any]) -> None:
        run["add_members_in_turns"] = await self.add_members_in_turns(server, target)
        counts = await queries.statements_per_request(self.config.database_url, tenant.token, queries.nplus1_queries())
        run["statements"] = queries.nplus1_report(counts)
        if self.config.profile_seconds > 0:
            load_phase = phase("get_user", target, self.dataset, Timing(0.5, self.config.profile_seconds + 1), "p")
            load = run_phase(target.host, target.port, load_phase, self.config.connections)
            output = self.logs / "profile-get-user.txt"
            run["profile_get_user"] = await profile.record(server.roles["main"], self.config.profile_seconds, output, load)
            summary = run["profile_get_user"]
            log(f"  profile of GET /Users/{{id}}: {summary.get('samples', summary.get('error'))} samples")

    async def get_by_id_in_turns(self, tenant: database.Tenant) -> None:
        """GET by id against the service with 1 worker, with 2 workers, without metrics and the
        activity log (what the operations issue's target names), and without every part of the
        request path's bookkeeping (those two, the integration's health and the per-token rate
        limit), in turns, TURNS times each (once for --quick). Two configurations measured minutes
        apart differ by as much as the machine drifts in between (GET by id moved 1,951 to 3,855
        req/s within one run); measured in alternation, each is seen in every stretch of the run."""
        servers = {
            "with": (["-m", "app", "serve"], "1000000/second", 1),
            "two_workers": (["-m", "app", "serve", "--workers", "2"], "1000000/second", 2),
            "without_metrics_activity": (["-m", "bench.without_bookkeeping", "metrics", "activity"], "1000000/second", 1),
            "without_any": (["-m", "bench.without_bookkeeping", "metrics", "activity", "health"], "off", 1),
        }
        rates: dict[str, list[float]] = {kind: [] for kind in servers}
        for turn in range(1 if self.config.quick else TURNS):
            for kind, (args, limit, workers) in servers.items():
                server, target = self.start_service(tenant, f"turn-{kind}-{turn}", args, workers=workers, rate_limit=limit)
                try:
                    result = await self.measure(server, target, phase("get_user", target, self.dataset, self.timing, f"b{turn}"))
                finally:
                    server.stop()
                rates[kind].append(round(result.rps, 1))
                log(f"  GET by id, {kind.replace('_', ' ')}: {result.rps:9.1f} req/s")

        def cost(without: str) -> float | None:
            ratio = ratio_of_means(rates["with"], rates[without])
            return None if ratio is None else round(1 - ratio, 4)

        self.results["bookkeeping_in_turns"] = {
            "rps": {kind: rates[kind] for kind in ("with", "without_metrics_activity", "without_any")},
            "cost": cost("without_metrics_activity"),
            "cost_with_rate_limit_and_health": cost("without_any"),
        }
        self.results["workers_in_turns"] = {
            "rps": {"1": rates["with"], "2": rates["two_workers"]},
            "ratio": ratio_of_means(rates["two_workers"], rates["with"]),
        }

    def reference_dataset(self) -> Dataset:
        config = self.config
        return Dataset(members=config.reference_members, groups=config.reference_groups, spare=config.reference_add_batches * 50)

    def start_reference(self, name: str, dataset: Dataset) -> tuple[procs.Server, Target]:
        """scim2-server loaded with `dataset`, and its target."""
        port = procs.free_port()
        token = "bench-reference-token"
        args = ["-m", "bench.reference", "--port", str(port), "--members", str(dataset.members), "--groups", str(dataset.groups)]
        args += ["--spare", str(dataset.spare), "--token", token]
        started = time.perf_counter()
        server = procs.start(name, args, {}, port, self.logs, ready_path="/v2/ServiceProviderConfig")
        log(f"{name}: scim2-server in memory, {dataset.users} users loaded in {time.perf_counter() - started:.1f} s")
        return server, Target("reference", port, "/v2", token)

    async def reference(self) -> None:
        if importlib.util.find_spec("scim2_server") is None:
            self.results["runs"]["reference"] = {"skipped": "scim2-server is not installed (pip install '.[bench]')"}
            return
        dataset = self.reference_dataset()
        server, target = self.start_reference("reference", dataset)
        try:
            run = {
                "data": asdict(dataset) | {"users": dataset.users},
                "phases": await self.phases(
                    server, target, REFERENCE_PHASES, dataset, "r", longer={"add_big": self.config.reference_big_group_duration}
                ),
            }
            run["peak_rss_mb"] = server.peak_rss()
        finally:
            server.stop()
        self.results["runs"]["reference"] = run

    async def reference_in_turns(self, tenant: database.Tenant) -> None:
        """GET by id and POST against the service (1 worker) and against scim2-server, alternating,
        REFERENCE_TURNS times each (once for --quick): in the runs above the two servers are measured
        minutes apart, and a drift of the machine in between moves their ratio by as much as the
        target's margin. The users the service's POSTs create are deleted afterwards."""
        datasets = {"service": self.dataset, "reference": self.reference_dataset()}
        rates: dict[str, dict[str, list[float]]] = {kind: {name: [] for name in TURN_PHASES} for kind in datasets}
        turns = 1 if self.config.quick else REFERENCE_TURNS
        for turn in range(turns):
            for kind, data in datasets.items():
                if kind == "service":
                    server, target = self.start_service(tenant, f"turn-service-{turn}", ["-m", "app", "serve"])
                else:
                    server, target = self.start_reference(f"turn-reference-{turn}", data)
                try:
                    for name in TURN_PHASES:
                        result = await self.measure(server, target, phase(name, target, data, self.timing, f"t{turn}"))
                        rates[kind][name].append(round(result.rps, 1))
                        log(f"  {name} in turns, {kind}: {result.rps:9.1f} req/s")
                finally:
                    server.stop()
        await database.reset_run(self.config.database_url, self.dataset.members, tuple(f"postt{turn}" for turn in range(turns)))
        await seed.analyze(self.config.database_url)
        self.results["reference_in_turns"] = {
            name: {
                "rps": {kind: rates[kind][name] for kind in rates},
                "ratio": ratio_of_means(rates["service"][name], rates["reference"][name]),
            }
            for name in TURN_PHASES
        }

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        config = self.config
        self.results["machine"] = machine()
        self.results["code"] = code_version()
        # Paths as the repository sees them: the results are committed, the machine's folders are not theirs.
        self.results["config"] = {k: _shown(v) if isinstance(v, Path) else v for k, v in asdict(config).items() if k != "database_url"}
        self.results["config"]["database"] = database.database_name(config.database_url)
        log(f"preparing {database.database_name(config.database_url)}: migrations, account, token")
        tenant = await database.prepare(config.database_url, ACCOUNT)
        self.results["machine"]["database"] = await database.server_version(config.database_url)
        self.postmaster = await database.postmaster_pid(config.database_url)
        log(f"seeding {self.dataset.users} users ({self.dataset.spare} in no group), {self.dataset.groups} groups")
        self.results["seed"] = await seed.seed(config.database_url, tenant.account_id, self.dataset) | {"data": asdict(self.dataset)}
        log(f"seeded in {self.results['seed']['seconds']} s: {self.results['seed']['rows']}")
        await self.generator_ceiling()
        await self.ceiling(tenant)
        for workers in config.workers:
            await self.service(tenant, workers)
        if config.reference:
            await self.reference()
        if config.postgres:
            log("GET by id in turns: the service with 1 and 2 workers, with and without its bookkeeping")
            await self.get_by_id_in_turns(tenant)
        if self.results["runs"].get("reference", {}).get("phases"):
            log("GET by id and POST in turns: the service and scim2-server")
            await self.reference_in_turns(tenant)
        log("the request path's bookkeeping (metrics, rate limit, integration health), in-process")
        self.results["bookkeeping"] = bookkeeping.measure(2_000 if config.quick else 50_000)
        log(f"  {self.results['bookkeeping']}")
        self.results["machine"]["load_average_at_end"] = os.getloadavg()
        self.results["seconds"] = round(time.monotonic() - started, 1)
        self.results["logs"] = str(self.logs)  # for the console only: `python -m bench` leaves it out of the file
        self.results["parity"] = self.parity()
        self.results["targets"] = report.targets(self.results)
        self.results["scaling"] = report.scaling(self.results)
        return self.results


def _shown(path: Path) -> str:
    """A path inside the repository relative to it; elsewhere (a temporary folder) just its name."""
    try:
        return str(path.resolve().relative_to(database.ROOT))
    except ValueError:
        return path.name


def _cpu_shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU seconds between two probes as % of one core."""
    return {role: round(100 * (after[role] - before.get(role, 0.0)) / max(seconds, 1e-9), 1) for role in after}


def execute(config: BenchConfig) -> dict[str, Any]:
    return asyncio.run(Bench(config).run())
