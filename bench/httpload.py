"""A lean HTTP/1.1 load generator on asyncio streams, so that the client is not what limits the figures.

Each connection is kept alive and sends its next request as soon as the previous answer is read: a
closed loop of `connections` concurrent requests. Requests are prebuilt bytes; an answer is read as
its headers up to the blank line, then a Content-Length or chunked body. A phase first warms up (for
a time, or for a number of requests), then measures the answers that arrive within a fixed time or
until a finite pool of requests is used up, whichever comes first. Requests still in flight at the
end are awaited, never abandoned, so the next phase starts on an idle server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

REQUEST_TIMEOUT_SECONDS = 60.0  # one request; a slower answer counts as an error and the connection is reopened
MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class Request:
    """Prebuilt request bytes and what a correct answer looks like."""

    raw: bytes
    expect: tuple[int, ...] = (200,)
    reject: bytes | None = None  # a body containing this is an error too (GraphQL answers errors with 200)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


def build_request(method: str, host: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Connection:
    """One kept-alive connection; reopened after the server closes it or an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> Answer:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        if b"\r\ntransfer-encoding: chunked" in lowered:
            body = await self._read_chunked()
        else:
            at = lowered.find(b"\r\ncontent-length:")
            length = int(head[at + 17 : head.index(b"\r\n", at + 2)]) if at >= 0 else 0
            body = await self._reader.readexactly(length) if length else b""
        if b"\r\nconnection: close" in lowered:
            await self.close()
        return Answer(status, body)

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None


@dataclass
class PhaseResult:
    name: str
    requests: int = 0  # measured requests
    errors: int = 0  # every failed request of the phase, warm-up included
    seconds: float = 0.0  # the measured window
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process role -> CPU % over the window

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(self.mean_ms, 2),
            "cpu_percent": {k: round(v, 1) for k, v in self.cpu.items()},
            "error_samples": self.error_samples,
        }


Probe = Callable[[], Awaitable[dict[str, float]]]  # process role -> CPU seconds so far


@dataclass(frozen=True)
class Phase:
    name: str
    make: Callable[[int], Request]  # the n-th request of the phase (n counts across connections)
    warmup: float
    duration: float
    max_requests: int | None = None  # a phase that uses up a finite pool (e.g. users not in a group yet)


async def run_phase(host: str, port: int, phase: Phase, connections: int, probe: Probe | None = None) -> PhaseResult:
    result = PhaseResult(phase.name)
    counter = itertools.count()
    start = time.perf_counter()
    window_start = start + phase.warmup
    end = window_start + phase.duration
    last_done = window_start
    probe_start: dict[str, float] = {}
    # The warm-up may use a quarter of a finite pool: a fast server would otherwise use it all up
    # before the window opens, and show nothing.
    warmup_quota = None if phase.max_requests is None else phase.max_requests // 4
    opened_early = asyncio.Event()

    async def open_window() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened_early.wait(), max(0.0, window_start - time.perf_counter()))
        if probe is not None:
            probe_start.update(await probe())

    async def worker() -> None:
        nonlocal last_done, window_start, end
        connection = Connection(host, port)
        try:
            while time.perf_counter() < end:
                n = next(counter)
                if phase.max_requests is not None and n >= phase.max_requests:
                    return
                if n == warmup_quota and time.perf_counter() < window_start:
                    window_start = last_done = time.perf_counter()
                    end = window_start + phase.duration
                    opened_early.set()
                request = phase.make(n)
                sent = time.perf_counter()
                ok = await _exchange(connection, request, result)
                done = time.perf_counter()
                # Throughput counts the answers that arrive within the window, as `wrk` does: a server
                # slower than the window still shows what it completes in it.
                if window_start <= done <= end:
                    last_done = max(last_done, done)
                    if ok:
                        result.requests += 1
                        result.latencies_ms.append((done - sent) * 1000)
        finally:
            await connection.close()

    opener = asyncio.create_task(open_window())
    await asyncio.gather(*(worker() for _ in range(connections)))
    exhausted = phase.max_requests is not None and next(counter) > phase.max_requests
    # A used-up pool ends the window with the last answer; otherwise it lasts its full duration.
    result.seconds = max(0.0, (last_done if exhausted else end) - window_start)
    if not opener.done():
        opener.cancel()
    if probe is not None and probe_start:
        probe_end = await probe()
        elapsed = max(1e-9, time.perf_counter() - window_start)
        # A process that appeared during the window (a new database connection) counts from zero.
        result.cpu = {role: 100 * (probe_end[role] - probe_start.get(role, 0.0)) / elapsed for role in probe_end}
    return result


async def _exchange(connection: Connection, request: Request, result: PhaseResult) -> bool:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            answer = await connection.send(request.raw)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
        await connection.close()
        _error(result, f"{type(exc).__name__}: {exc}"[:300])
        return False
    if answer.status not in request.expect or (request.reject is not None and request.reject in answer.body):
        _error(result, f"{answer.status}: {answer.body[:300].decode('utf-8', 'replace')}")
        return False
    return True


def _error(result: PhaseResult, sample: str) -> None:
    result.errors += 1
    if len(result.error_samples) < MAX_ERROR_SAMPLES:
        result.error_samples.append(sample)
