"""`python -m bench.without_bookkeeping PART…`: the service exactly as `python -m app serve` runs it, but
for the parts of the request path's bookkeeping named, which are replaced by nothing:

- `activity`: the activity log's record of each SCIM request (app/activity.py);
- `metrics`: the metrics of each request (app/metrics.py);
- `health`: the integration's health note (app/integration_activity.py).

The per-token rate limit is turned off by the environment (RATE_LIMIT_PER_TOKEN=off). The bench measures
GET by id against the service as it is and against this, in turns, for what the bookkeeping costs in
throughput (bench/run.py, `get_by_id_in_turns`).
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app import metrics
from app.cli import main
from app.scim import routes

PARTS = ("activity", "metrics", "health")


def _not_recorded(request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
    return response


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def remove(parts: list[str]) -> None:
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    if "activity" in parts:
        routes._recorded = _not_recorded  # type: ignore[assignment]
    if "metrics" in parts:
        metrics.Metrics.observe = _nothing  # type: ignore[method-assign]
    if "health" in parts:
        routes._note = _nothing


if __name__ == "__main__":
    remove(sys.argv[1:])
    sys.exit(main(["serve"]))
