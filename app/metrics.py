"""Prometheus metrics, served at /metrics (optionally behind METRICS_TOKEN).

Every HTTP request is counted and timed by its route template, never its path (ids and account
identifiers would make a series per resource), in `EdgeMiddleware`, which sees every request end,
whatever ended it. SCIM requests are also counted by resource, operation and outcome. Failed
authentications, rate-limited requests and DENIED GraphQL mutations are counted where they happen;
the database pool is read when scraped.

Each app has its own registry. Under `serve --workers N` each worker counts its own requests and a
scrape reads the worker that answers it: run one worker per container and scale with replicas
where the numbers matter (docs/operations.md).
"""

from __future__ import annotations

import bisect
import hmac
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SCIM_PREFIX = "/gateway/ng/api/scim/account/"
_FIXED = frozenset({"/graphql", "/healthz", "/readyz", "/openapi.json", "/metrics"})
# SCIM's endpoints below the Tenant URL, by their first segment lower-cased (clients send any case).
_SCIM_RESOURCES = {"users": "Users", "groups": "Groups"}
_SCIM_DISCOVERY = {"serviceproviderconfig": "ServiceProviderConfig", "resourcetypes": "ResourceTypes", "schemas": "Schemas"}
_OPERATIONS = {("POST", False): "create", ("GET", True): "read", ("GET", False): "list", ("PUT", True): "replace"}
_OPERATIONS |= {("PATCH", True): "update", ("DELETE", True): "delete"}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def route_of(path: str) -> tuple[str, str | None, str | None]:
    """The route template of a path (a bounded set: anything unknown is "other") and, for SCIM's
    Users and Groups, the resource and what follows it: "id", "search", or "" for the collection."""
    if not path.startswith(SCIM_PREFIX):
        if path.startswith("/graphiql/"):
            return "/graphiql/{digest}/{name}", None, None
        return (path if path in _FIXED else "other"), None, None
    below = path[len(SCIM_PREFIX) :].partition("/")[2].rstrip("/")
    first, _, rest = below.partition("/")
    base = SCIM_PREFIX + "{account}/"
    resource = _SCIM_RESOURCES.get(first.lower())
    if resource is not None:
        if rest == ".search":
            return f"{base}{resource}/.search", resource, "search"
        if rest and "/" not in rest:
            return f"{base}{resource}/{{id}}", resource, "id"
        return (f"{base}{resource}", resource, "") if not rest else ("other", None, None)
    if first == ".search" and not rest:
        return f"{base}.search", "Resources", "search"
    discovery = _SCIM_DISCOVERY.get(first.lower())
    if discovery is not None and "/" not in rest:
        return f"{base}{discovery}" + ("/{id}" if rest else ""), None, None
    return "other", None, None


def _outcome(status: int) -> str:
    if status == 429:
        return "rate_limited"
    return "success" if status < 400 else ("client_error" if status < 500 else "server_error")


class _Requests:
    """The three metrics of every request — its count by route, method and status, its latency by
    route and method, and its SCIM operation — kept as plain counts per (route, method, status) and
    turned into Prometheus' families when scraped. prometheus-client's own counters and histogram take
    a lock per increment, four a request; these take none (the event loop is one thread)."""

    def __init__(self) -> None:
        # (route, method, status) -> [requests, seconds in all, requests per latency bucket (+Inf
        # last), the SCIM (resource, operation, outcome) or None]
        self.series: dict[tuple[str, str, int], list[Any]] = {}

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        route, resource, target = route_of(path)
        counts = self.series.get((route, method, status))
        if counts is None:  # bounded: routes, methods and statuses are
            operation = None
            if resource is not None:
                name = "search" if target == "search" else _OPERATIONS.get((method, target == "id"))
                operation = None if name is None else (resource, name, _outcome(status))
            counts = self.series[(route, method, status)] = [0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1), operation]
        counts[0] += 1
        counts[1] += seconds
        counts[2][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "scimgraph_http_requests", "HTTP requests by route template, method and status.", labels=["route", "method", "status"]
        )
        latency = HistogramMetricFamily(
            "scimgraph_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            labels=["route", "method"],
        )
        operations = CounterMetricFamily(
            "scimgraph_scim_operations",
            "SCIM operations by resource (Users, Groups, Resources), operation and outcome.",
            labels=["resource", "operation", "outcome"],
        )
        by_route: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
        by_operation: dict[tuple[str, str, str], int] = {}
        for (route, method, status), (n, seconds, buckets, operation) in list(self.series.items()):
            requests.add_metric([route, method, str(status)], n)
            total, counts = by_route.setdefault((route, method), ([0.0], [0] * len(buckets)))
            total[0] += seconds
            counts[:] = [a + b for a, b in zip(counts, buckets, strict=True)]
            if operation is not None:
                by_operation[operation] = by_operation.get(operation, 0) + n
        bounds = [*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
        for (route, method), (total, counts) in by_route.items():
            cumulative = list(itertools.accumulate(counts))
            latency.add_metric([route, method], buckets=list(zip(bounds, cumulative, strict=True)), sum_value=total[0])
        for labels, n in by_operation.items():
            operations.add_metric(list(labels), n)
        yield from (requests, latency, operations)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = _Requests()
        self.registry.register(self._requests)
        self.auth_failures = Counter(
            "scimgraph_authentication_failures",
            "Requests refused for their credentials (401), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "scimgraph_rate_limited_requests",
            "Requests refused by a rate limit (429), by what was limited: token or failed_authentication.",
            ["limit"],
            registry=self.registry,
        )
        self.denied_mutations = Counter(
            "scimgraph_graphql_denied_mutations",
            "GraphQL mutations refused by a rule (DENIED in the activity log): a missing permission, or what the identity provider owns.",
            registry=self.registry,
        )
        self.pool = Gauge(
            "scimgraph_database_pool_connections",
            "Connections of the database pool: in_use (checked out), idle, and overflow beyond the pool's size.",
            ["state"],
            registry=self.registry,
        )
        self.pool_waiting = Gauge(
            "scimgraph_database_pool_waiting",
            "Requests waiting for a database connection: the pool and its overflow are all in use, or a new connection is opening.",
            registry=self.registry,
        )

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        """One request's end: counted and timed by route template, and as a SCIM operation."""
        method = method if method in METHODS else "other"  # a client may send any token as a method
        self._requests.observe(path, method, status, seconds)

    def watch_pool(self, pool_of: Callable[[], Any]) -> None:
        """Read the pool of `pool_of()` (SQLAlchemy's, or None) at every scrape."""

        def reading(name: str) -> Callable[[], float]:
            def read() -> float:
                pool = pool_of()
                method = getattr(pool, name, None)
                return float(method()) if callable(method) else 0.0

            return read

        self.pool.labels("in_use").set_function(reading("checkedout"))
        self.pool.labels("idle").set_function(reading("checkedin"))
        self.pool.labels("overflow").set_function(lambda: max(0.0, reading("overflow")()))
        self.pool_waiting.set_function(reading("waiting"))  # PostgreSQL's pool (app.db.engine.WatchedQueuePool)


async def endpoint(request: Request) -> Response:
    """The metrics in Prometheus' text format; with METRICS_TOKEN set, only for `Authorization:
    Bearer <METRICS_TOKEN>` (compared in constant time)."""
    expected: str | None = request.app.state.settings.metrics_token
    if expected is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            return JSONResponse({"error": "a valid bearer token (METRICS_TOKEN) is required"}, status_code=401)
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
