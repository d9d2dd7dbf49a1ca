"""Where one request's CPU time goes: py-spy samples the service's process while the load generator
sends it GET /Users/{id}. Each sample is charged to the innermost frame that belongs to a named layer
(the database driver, SQLAlchemy, Starlette, uvicorn and its HTTP parser, json, logging, each app
module): time in the standard library and in the event loop's socket calls goes to the layer that
called them, so a socket write asyncpg makes is asyncpg's. The app's own functions are also listed
with the share of samples whose stack holds them, and so are a few operations a request performs.
Idle time (waiting on the network or the database) is not sampled, so the shares are shares of the
process's CPU time."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

COMPONENTS = (
    ("asyncpg/", "asyncpg (driver)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("sqlmodel/", "SQLModel"),
    ("pydantic", "pydantic"),
    ("starlette/", "Starlette"),
    ("uvicorn/", "uvicorn"),
    ("h11/", "h11 (HTTP parser)"),
    ("httptools/", "httptools (HTTP parser)"),
    ("strawberry/", "Strawberry"),
    ("json/", "json"),
    ("asyncio/", "asyncio event loop"),
    ("logging/", "logging"),
    ("uuid.py", "uuid"),
)


# What a request does, found by frames on the stack: the share of samples in each (they may overlap).
OPERATIONS = (
    ("opening database connections (the pool's overflow)", ("AsyncAdapt_dbapi_connection.create",)),
    ("pool pre-ping on each checkout", ("_async_ping",)),
    ("BEGIN / COMMIT / ROLLBACK round trips", ("Transaction.start", "Transaction.__commit", "Transaction.__rollback")),
    ("preparing statements (asyncpg)", ("AsyncAdapt_asyncpg_connection._prepare",)),
    ("SQL compilation and cache keys (SQLAlchemy)", ("compile (sqlalchemy", "_compiler_dispatch", "_generate_cache_key")),
    ("ORM row loading (SQLAlchemy)", ("orm/loading.py",)),
    ("the token check (app.auth)", ("authenticate (app/auth.py",)),
    ("the user and their groups (groups.read_user_with_groups)", ("read_user_with_groups",)),
    ("the user lookup alone (users.get_user / read_user)", ("get_user (app/services/users.py", "read_user (app/services/users.py")),
    ("the user's groups alone (groups.groups_of_users)", ("groups_of_users",)),
    ("prepared statements (app.db.statements)", ("(app/db/statements.py",)),
    ("rendering the SCIM JSON", ("render_user", "scim_json")),
    # The protocol's own work (every request runs inside its run_asgi frame, which says nothing).
    (
        "HTTP parsing and writing (uvicorn's protocol, h11 or httptools)",
        ("(h11/", "Protocol.data_received (", "RequestResponseCycle.send (", "_WriteOnce."),
    ),
    ("the access log (logging)", ("(logging/",)),
)
# Frames under every request, which say nothing about it.
TRUNK = ("(app/__main__.py", "(app/cli.py")


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def _location(frame: str) -> str:
    """The file of a frame `function (path/file.py[:line])`, from its package on."""
    location = frame.partition(" (")[2].rstrip(")").split(":", 1)[0]
    if "/site-packages/" in location:
        return location.split("/site-packages/", 1)[1]
    if "/app/" in location:
        return "app/" + location.rsplit("/app/", 1)[1]
    return re.split(r"/python3\.\d+/", location, maxsplit=1)[-1]


def _is(location: str, marker: str) -> bool:
    return location.startswith(marker) or f"/{marker}" in location


def _component(frame: str) -> str:
    location = _location(frame)
    for marker, name in COMPONENTS:
        if _is(location, marker):
            return name
    if _is(location, "app/"):
        return "app." + location.rsplit("app/", 1)[1].removesuffix(".py").replace("/", ".")
    return "other: " + location


def _function(frame: str) -> str:
    return f"{frame.partition(' (')[0]} ({_location(frame)})"


def summarize(raw: str, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks (`frame;frame;… count` per line) → shares of samples per component and function."""
    total = 0
    by_layer: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    by_operation: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += count
        by_layer[_layer(frames)] += count
        for label, markers in OPERATIONS:
            if any(marker in stack for marker in markers):
                by_operation[label] += count
        for function in {_function(f) for f in frames}:
            by_function[function] += count

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"name": name, "percent": round(100 * n / total, 1)} for name, n in counter.most_common(top)]

    app_functions = Counter({name: n for name, n in by_function.items() if "(app/" in name and not any(t in name for t in TRUNK)})
    return {
        "samples": total,
        "by_layer": shares(by_layer),
        "by_operation": shares(by_operation),
        "app_functions_inclusive": shares(app_functions),
    }


def _layer(frames: list[str]) -> str:
    """The innermost named layer on the stack (see the module docstring)."""
    for frame in reversed(frames):
        component = _component(frame)
        if component != "asyncio event loop" and not component.startswith("other: "):
            return component
    return _component(frames[-1])


async def record(pid: int, seconds: float, output: Path, load: Any) -> dict[str, Any]:
    """Sample `pid` for `seconds` while `load` (a coroutine sending requests) runs; the summary."""
    executable = py_spy()
    if executable is None:
        return {"error": "py-spy is not installed (pip install '.[bench]')"}
    process = await asyncio.create_subprocess_exec(
        # Blocking sampling (the default): each sample pauses the process, which costs it a little
        # throughput, but a stack read while the process runs on (--nonblocking) may be torn.
        executable,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    load_task = asyncio.ensure_future(load)
    out, _ = await process.communicate()
    result = await load_task
    if process.returncode != 0 or not output.exists():
        return {"error": f"py-spy failed: {out.decode(errors='replace').strip()[-300:]}"}
    return {**summarize(output.read_text()), "requests_per_second_while_sampled": round(result.rps, 1), "raw_profile": output.name}
