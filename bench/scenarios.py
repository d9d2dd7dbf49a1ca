"""The measured request types, as prebuilt requests for each server: the service (its Tenant URL and
GraphQL endpoint), the ceiling (the service's paths, a subset of the requests) and the reference
(`/v2`). Every request type sends what Entra ID (or an admin UI, for GraphQL) sends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bench.dataset import ENTERPRISE, Dataset, add_members, entra_user, external_id, group_id, patch, user_id, user_name
from bench.httpload import Phase, Request, build_request

STRIDE = 7919  # a prime: request n reads user (n * STRIDE) mod members, spread over the whole table

GQL_USERS = "{ users(first: 50) { nodes { id userName groups(first: 5) { nodes { id name } } } } }"
GQL_GROUPS = "{ userGroups(first: 50) { nodes { id name memberCount } } }"
GQL_BIG_GROUP = '{ userGroup(id: "%s") { id name memberCount } }'

# Name, label. The order is the order of the run: reads first, then writes.
LABELS = {
    "get_user": "GET /Users/{id}",
    "filter_username": "GET /Users?filter=userName eq",
    "filter_externalid": "GET /Users?filter=externalId eq",
    "list_users": "GET /Users?count=100 (totalResults)",
    "get_group": "GET /Groups/{100k}?excludedAttributes=members",
    "gql_users": "GraphQL users(first:50){groups(first:5)}",
    "gql_groups": "GraphQL userGroups(first:50){memberCount}",
    "gql_big_group": "GraphQL userGroup(100k){memberCount}",
    "post_user": "POST /Users",
    "patch_user": "PATCH /Users/{id} (3 ops)",
    "add_small": "PATCH /Groups +50 members (10-member group)",
    "add_big": "PATCH /Groups +50 members (100k-member group)",
}
CEILING_PHASES = ("get_user", "filter_username", "filter_externalid", "post_user", "patch_user")
SERVICE_PHASES = tuple(LABELS)
REFERENCE_PHASES = tuple(p for p in LABELS if not p.startswith("gql_"))
SCIM_PHASES = REFERENCE_PHASES


@dataclass(frozen=True)
class Target:
    kind: str  # service | ceiling | reference
    port: int
    scim_base: str  # path of the SCIM root
    token: str
    host: str = "127.0.0.1"

    def request(self, method: str, path: str, body: Any = None, *, graphql: bool = False) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"}
        raw = None
        if body is not None:
            headers["Content-Type"] = "application/json" if graphql else "application/scim+json"
            raw = json.dumps(body).encode()
        return build_request(method, f"{self.host}:{self.port}", path if graphql else self.scim_base + path, headers, raw)


@dataclass(frozen=True)
class Timing:
    warmup: float
    duration: float


def parity_user(members: int) -> int:
    """A member (of the big group and a small one) that no phase changes: PATCH skips it."""
    return members // 2


def _filter(attribute: str, value: str) -> str:
    return "/Users?filter=" + quote(f'{attribute} eq "{value}"', safe="")


def phase(name: str, target: Target, dataset: Dataset, timing: Timing, tag: str) -> Phase:
    """The phase `name` against `target`; `tag` keeps the names of created users unique per run."""
    members = dataset.members

    def pick(n: int, offset: int = 0) -> int:
        return (n * STRIDE + offset) % members

    def patched(n: int) -> int:
        chosen = pick(n, 3)
        return chosen if chosen != parity_user(members) else (chosen + 1) % members

    makers: dict[str, Any] = {
        "get_user": lambda n: Request(target.request("GET", f"/Users/{user_id(pick(n))}")),
        "filter_username": lambda n: Request(target.request("GET", _filter("userName", user_name(pick(n, 1))))),
        "filter_externalid": lambda n: Request(target.request("GET", _filter("externalId", external_id(pick(n, 2))))),
        "list_users": lambda n: Request(target.request("GET", "/Users?startIndex=1&count=100")),
        "get_group": lambda n: Request(target.request("GET", f"/Groups/{group_id(0)}?excludedAttributes=members")),
        "gql_users": lambda n: Request(target.request("POST", "/graphql", {"query": GQL_USERS}, graphql=True), reject=b'"errors"'),
        "gql_groups": lambda n: Request(target.request("POST", "/graphql", {"query": GQL_GROUPS}, graphql=True), reject=b'"errors"'),
        "gql_big_group": lambda n: Request(
            target.request("POST", "/graphql", {"query": GQL_BIG_GROUP % group_id(0)}, graphql=True), reject=b'"errors"'
        ),
        "post_user": lambda n: Request(target.request("POST", "/Users", entra_user(n, f"post{tag}-")), expect=(201,)),
        "patch_user": lambda n: Request(
            target.request(
                "PATCH",
                f"/Users/{user_id(patched(n))}",
                patch(
                    {"op": "Replace", "path": "displayName", "value": f"User {patched(n):06} v{n}"},
                    {"op": "Replace", "path": "title", "value": f"Title {n % 97}"},
                    {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"Dept {n % 23}"},
                ),
            ),
            expect=(200, 204),
        ),
        # A spare user may join many small groups: batch and group both cycle, and a pair comes back
        # only after lcm(groups - 1, batches) requests, far more than any phase sends.
        "add_small": lambda n: Request(
            target.request(
                "PATCH", f"/Groups/{group_id(1 + n % (dataset.groups - 1))}", add_members(dataset.spare_batch(n % dataset.spare_batches))
            ),
            expect=(200, 204),
        ),
        "add_big": lambda n: Request(
            target.request("PATCH", f"/Groups/{group_id(0)}", add_members(dataset.spare_batch(n))), expect=(200, 204)
        ),
    }
    if name == "add_big":
        # Every request into the big group needs 50 users not in it yet: a finite pool, which may end
        # the phase early (the window then ends with the last answer).
        return Phase(name, makers[name], timing.warmup, timing.duration, max_requests=dataset.spare_batches)
    return Phase(name, makers[name], timing.warmup, timing.duration)
