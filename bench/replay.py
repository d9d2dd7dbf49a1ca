"""Entra ID's initial sync, replayed: users first (a filter by userName, then a POST for each one not
found), then groups (a filter by displayName without members, a POST, then the members added 50 per
PATCH). Entra works on several objects at once; `parallel` replayers share one queue, each on its own
kept-alive connection. Every answer's status is checked against what Entra expects."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.dataset import add_members, entra_group, entra_user, user_name
from bench.httpload import Connection
from bench.scenarios import Target

MAX_ERROR_SAMPLES = 5


@dataclass
class ReplayResult:
    users: int
    groups: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "users": self.users,
            "groups": self.groups,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "error_samples": self.error_samples,
        }


class _Replayer:
    def __init__(self, target: Target, result: ReplayResult) -> None:
        self.target = target
        self.result = result
        self.connection = Connection(target.host, target.port)

    async def call(self, method: str, path: str, expect: tuple[int, ...], body: Any = None) -> Any:
        self.result.requests += 1
        try:
            async with asyncio.timeout(60):
                answer = await self.connection.send(self.target.request(method, path, body))
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            await self.connection.close()
            self._error(f"{method} {path}: {type(exc).__name__}")
            return None
        if answer.status not in expect:
            self._error(f"{method} {path} -> {answer.status}: {answer.body[:200].decode('utf-8', 'replace')}")
            return None
        return json.loads(answer.body) if answer.body else {}

    def _error(self, sample: str) -> None:
        self.result.errors += 1
        if len(self.result.error_samples) < MAX_ERROR_SAMPLES:
            self.result.error_samples.append(sample)


async def replay(target: Target, tag: str, users: int, groups: int, members_per_group: int, parallel: int, batch: int = 50) -> ReplayResult:
    """Provision `users` users, then `groups` groups of `members_per_group` of them; names carry `tag`."""
    result = ReplayResult(users, groups)
    prefix = f"entra{tag}-"
    ids: list[str | None] = [None] * users
    started = time.perf_counter()

    async def provision_user(replayer: _Replayer, n: int) -> None:
        upn = user_name(n, prefix)
        found = await replayer.call("GET", "/Users?filter=" + quote(f'userName eq "{upn}"', safe=""), (200,))
        if found and found.get("totalResults"):
            ids[n] = found["Resources"][0]["id"]
            return
        created = await replayer.call("POST", "/Users", (201,), entra_user(n, prefix))
        ids[n] = created.get("id") if created else None

    async def provision_group(replayer: _Replayer, g: int) -> None:
        name = f"{prefix}group {g:03}"
        await replayer.call("GET", "/Groups?filter=" + quote(f'displayName eq "{name}"', safe="") + "&excludedAttributes=members", (200,))
        created = await replayer.call("POST", "/Groups", (201,), entra_group(name, f"{prefix}{g:03}"))
        if not created:
            return
        members = [i for i in ids[g * members_per_group : (g + 1) * members_per_group] if i]
        for start in range(0, len(members), batch):
            await replayer.call("PATCH", f"/Groups/{created['id']}", (200, 204), add_members(members[start : start + batch]))

    async def drain(work: asyncio.Queue[int], step: Any) -> None:
        replayer = _Replayer(target, result)
        try:
            while not work.empty():
                await step(replayer, work.get_nowait())
        finally:
            await replayer.connection.close()

    for count, step in ((users, provision_user), (groups, provision_group)):
        work: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            work.put_nowait(n)
        await asyncio.gather(*(drain(work, step) for _ in range(parallel)))
    result.seconds = time.perf_counter() - started
    return result
