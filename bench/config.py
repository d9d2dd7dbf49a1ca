"""What a benchmark run does and at what size: the full run (`make bench`), the quick one
(BENCH_QUICK=1) for a smoke check, and any figure overridden on the command line."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"


@dataclass(frozen=True)
class BenchConfig:
    database_url: str = DEFAULT_DATABASE_URL
    output: Path = RESULTS / "latest.json"
    logs: Path | None = None  # server logs and the raw profile; a temporary folder by default
    quick: bool = False
    connections: int = 16
    warmup: float = 2.0  # seconds of each phase that are not measured
    duration: float = 6.0  # seconds measured
    members: int = 100_000  # users, all in the big group
    groups: int = 2_000  # the big group and small groups of 10
    add_batches: int = 512  # the pool of "add 50 members" requests into the big group: 50 users in no group each
    replay_users: int = 10_000
    replay_groups: int = 100
    replay_members: int = 100  # per replayed group
    replay_parallel: int = 8
    reference: bool = True
    reference_members: int = 10_000
    reference_groups: int = 200
    reference_add_batches: int = 100  # the same pool for scim2-server (about 1 s per request into its big group)
    # scim2-server's window for "+50 into its big group": 16 such requests run at once and finish
    # together many seconds later, after a window as short as the others has closed.
    reference_big_group_duration: float = 45.0
    workers: tuple[int, ...] = (1, 2)
    profile_seconds: float = 8.0  # 0: no profile

    @property
    def postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


QUICK = {
    "warmup": 0.5,
    "duration": 2.0,
    "members": 5_000,
    "groups": 100,
    "add_batches": 64,
    "replay_users": 500,
    "replay_groups": 10,
    "replay_members": 20,
    "reference_members": 2_000,
    "reference_groups": 40,
    "reference_add_batches": 40,
    "reference_big_group_duration": 2.0,
    "profile_seconds": 3.0,
}


def parse(argv: list[str] | None = None, env: dict[str, str] | None = None) -> BenchConfig:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmark the service against its ceiling and scim2-server")
    parser.add_argument(
        "--quick", action="store_true", default=env.get("BENCH_QUICK", "") not in ("", "0"), help="small data, short phases (BENCH_QUICK=1)"
    )
    parser.add_argument(
        "--database-url", default=env.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL, help="emptied first; its name must contain 'bench'"
    )
    parser.add_argument("--output", type=Path, help="the JSON results (default bench/results/latest.json, quick.json when quick)")
    parser.add_argument("--no-reference", dest="reference", action="store_false", default=None, help="skip scim2-server")
    parser.add_argument("--workers", help="worker counts to run the service with, e.g. 1,2")
    overridable = [f for f in fields(BenchConfig) if f.type in ("int", "float") or f.name == "logs"]
    for f in overridable:
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=Path if f.name == "logs" else (int if f.type == "int" else float))
    args = parser.parse_args(argv)
    config = BenchConfig(database_url=args.database_url, quick=args.quick)
    if args.quick:
        config = replace(config, output=RESULTS / "quick.json", **QUICK)  # type: ignore[arg-type]
    changes = {f.name: getattr(args, f.name) for f in overridable if getattr(args, f.name) is not None}
    if args.output is not None:
        changes["output"] = args.output
    if args.reference is not None:
        changes["reference"] = args.reference
    if args.workers:
        changes["workers"] = tuple(int(w) for w in args.workers.split(","))
    return replace(config, **changes)
