"""What the request path's own bookkeeping costs a GET by id, measured in-process: the metrics it
records, its token's rate-limit count, and the health note of the token's app integration. The
service's share of CPU per GET by id comes from the same run, so the two compare as a fraction of
the request's cost — at saturation, with one CPU-bound worker, the share of throughput it takes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from app.integration_activity import IntegrationActivity
from app.metrics import Metrics
from app.ratelimit import RateLimits, parse_limits
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
    metrics = Metrics()
    limits = RateLimits(
        parse_limits("1000000/second", "RATE_LIMIT_PER_TOKEN"),  # the bench's: counted, never reached
        parse_limits(DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS, "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS"),
        parse_limits(DEFAULT_RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT, "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT"),
    )
    activity = IntegrationActivity(interval=3600)  # noted; written once an hour, not in the measurement
    path = f"/gateway/ng/api/scim/account/bench/Users/{uuid.uuid4()}"
    response = Response(b"{}", status_code=200)
    integration = str(uuid.uuid4())
    parts = {
        "metrics": _microseconds(lambda: metrics.observe("GET", path, 200, 0.004), iterations),
        "rate_limit": _microseconds(lambda: limits.token("bench", "0123456789abcdef"), iterations),
        "integration_health": _microseconds(lambda: activity.note(1, integration, response), iterations),
    }
    return {"microseconds": {k: round(v, 2) for k, v in parts.items()}, "total_microseconds": round(sum(parts.values()), 2)}
