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
from typing import Any

from starlette.responses import Response

from app.activity import ActivityLog, error_of
from app.activity import record as activity_record
from app.integration_activity import IntegrationActivity
from app.metrics import Metrics, route_of
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
    logs = [ActivityLog(interval=3600)]

    def record() -> None:
        scim_type, detail = error_of(response)
        row = activity_record(
            account_id=1,
            caller="0123456789abcdef",
            integration_id=integration,
            request_id="0" * 32,
            method="GET",
            route=route_of(path)[0],
            status=200,
            read_only=True,
            resource_type="User",
            resource_id=path.rsplit("/", 1)[1],
            scim_type=scim_type,
            detail=detail,
        )
        logs[0].note(row)
        if len(logs[0]) >= 10_000:  # written once a second in the service: a fresh log, as after a write
            logs[0] = ActivityLog(interval=3600)

    parts = {
        "metrics": _microseconds(lambda: metrics.observe("GET", path, 200, 0.004), iterations),
        "rate_limit": _microseconds(lambda: limits.token("bench", "0123456789abcdef"), iterations),
        "integration_health": _microseconds(lambda: activity.note(1, integration, response), iterations),
        "activity_log": _microseconds(record, iterations),
    }
    return {"microseconds": {k: round(v, 2) for k, v in parts.items()}, "total_microseconds": round(sum(parts.values()), 2)}
