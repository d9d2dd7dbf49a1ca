"""`python -m bench.without_bookkeeping`: the service exactly as `python -m app serve` runs it, but for the
request path's bookkeeping from the operations issue, which is replaced by nothing — the activity log's
record of each SCIM request, the integration's health note, the metrics of each request — and the
per-token rate limit, which the bench turns off (RATE_LIMIT_PER_TOKEN=off). The bench measures GET by
id against it and against the service as it is, in turns, for what the bookkeeping costs in throughput.
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app import metrics
from app.cli import main
from app.scim import routes


def _not_recorded(request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
    return response


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


routes._recorded = _not_recorded  # type: ignore[assignment]
routes._note = _nothing
metrics.Metrics.observe = _nothing  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(["serve"]))
