"""Okta's group push of a large group: one PUT of the 100,000-member group carrying its full member
list (`{"value", "display"}` per member, as Okta sends it), first with 1,000 members swapped for
others, then back to the seeded list. Each must answer 200 with every member in the response."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.dataset import BIG_GROUP_NAME, group_id, user_id, user_name
from bench.httpload import Connection
from bench.scenarios import Target

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SWAPPED = 1000


def _document(first: int, count: int) -> dict[str, Any]:
    members = [{"value": user_id(n), "display": user_name(n)} for n in range(first, first + count)]
    return {"schemas": [CORE_GROUP], "id": group_id(0), "displayName": BIG_GROUP_NAME, "members": members}


async def put_full_member_list(target: Target, members: int) -> dict[str, Any]:
    connection = Connection(target.host, target.port)
    out: dict[str, Any] = {"members": members, "puts": []}
    try:
        for label, first in (("1,000 members swapped", SWAPPED), ("back to the seeded list", 0)):
            request = target.request("PUT", f"/Groups/{group_id(0)}", _document(first, members))
            started = time.perf_counter()
            async with asyncio.timeout(300):
                answer = await connection.send(request)
            seconds = time.perf_counter() - started
            returned = len(json.loads(answer.body).get("members", [])) if answer.status == 200 else 0
            out["puts"].append(
                {
                    "change": label,
                    "status": answer.status,
                    "members_returned": returned,
                    "request_bytes": len(request),
                    "response_bytes": len(answer.body),
                    "seconds": round(seconds, 2),
                }
            )
    finally:
        await connection.close()
    out["ok"] = all(p["status"] == 200 and p["members_returned"] == members for p in out["puts"])
    return out
