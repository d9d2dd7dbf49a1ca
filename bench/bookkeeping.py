"""What the request path's own bookkeeping costs a GET by id, measured in-process: the metrics it
records, its token's rate-limit count, the health note of the token's app integration, and its
record in the activity log (noted in memory; the batched write, once a second, is part of the
throughput the bench measures, not of this figure). The
service's share of CPU per GET by id comes from the same run, so the two compare as a fraction of
the request's cost — at saturation, with one CPU-bound worker, the share of throughput it takes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.activity import ActivityLog
from app.integration_activity import IntegrationActivity
from app.metrics import Metrics
from app.ratelimit import RateLimits, parse_limits
from app.scim.routes import _note, _recorded
from app.scim.schema import USER
from app.settings import DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT, DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS

ROUNDS = 5


def _microseconds(step: Callable[[], Any], iterations: int) -> float:
    """The fastest of ROUNDS timings, per call: the least disturbed by the rest of the machine."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(iterations):
            step()
        best = min(best, time.perf_counter() - started)
    return best / iterations * 1e6


def measure(iterations: int = 50_000) -> dict[str, Any]:
    """Each piece as the request path calls it: the SCIM routes' own functions on a real request of a
    GET by id and its response, so that what they cost is what a request pays (a lookup keyed by the
    resource type included)."""
    metrics = Metrics()
    limits = RateLimits(
        parse_limits("1000000/second", "RATE_LIMIT_PER_TOKEN"),  # the bench's: counted, never reached
        parse_limits(DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS, "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS"),
        parse_limits(DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT, "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT"),
    )
    user = str(uuid.uuid4())
    path = f"/gateway/ng/api/scim/account/bench/Users/{user}"
    # Written once an hour: noted, not written, during the measurement (the write is in the throughput).
    state = SimpleNamespace(activity=ActivityLog(interval=3600), integration_activity=IntegrationActivity(interval=3600))
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", b"Bearer x")],
        "path_params": {"account": "bench", "id": user},
        "app": SimpleNamespace(state=state),
    }
    response = Response(b"{}", status_code=200)
    caller = SimpleNamespace(account_id=1, principal="0123456789abcdef", integration_id=str(uuid.uuid4()))

    def record() -> None:  # a successful read: counted into its summary (app/activity.py)
        _recorded(Request(scope), response, USER, caller)  # type: ignore[arg-type]

    parts = {
        "metrics": _microseconds(lambda: metrics.observe("GET", path, 200, 0.004), iterations),
        "rate_limit": _microseconds(lambda: limits.token("bench", "0123456789abcdef"), iterations),
        "integration_health": _microseconds(lambda: _note(Request(scope), 1, caller.integration_id, response), iterations),
        "activity_log": _microseconds(record, iterations),
    }
    return {"microseconds": {k: round(v, 2) for k, v in parts.items()}, "total_microseconds": round(sum(parts.values()), 2)}
