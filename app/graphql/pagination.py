"""Relay-style connections with opaque cursors (`first` / `after`, GitHub's limits)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import strawberry

T = TypeVar("T")
DEFAULT_PAGE = 50
MAX_PAGE = 100
# What encode_cursor writes: ASCII digits only, and at most 18 of them, so any position (plus a
# page) stays far inside the 64-bit integers both databases compare and offset with.
_POSITION = re.compile(r"[0-9]{1,18}")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


# A connection's total: known, or counted when a query asks for it (a count may read every match).
Total = int | Callable[[], Awaitable[int]]


@strawberry.type
class Connection(Generic[T]):
    """A page of nodes. The total, edges and the page's end cursor are made only when a query asks for
    them: a cursor costs more than the node it points at, a total may cost more than the page, and
    the admin UI mostly reads `nodes`."""

    nodes: list[T]
    total: strawberry.Private[Total]
    cursor: strawberry.Private[Callable[[int], str]]  # the cursor of the node at an index of `nodes`
    has_next_page: strawberry.Private[bool]

    @strawberry.field
    def total_count(self) -> int:
        # An int, or an awaitable of it for GraphQL to await, as a resolver's annotation is its field's type.
        return self.total if isinstance(self.total, int) else cast(int, self.total())

    @strawberry.field
    def edges(self) -> list[Edge[T]]:
        return [Edge(cursor=self.cursor(i), node=node) for i, node in enumerate(self.nodes)]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return PageInfo(has_next_page=self.has_next_page, end_cursor=self.cursor(len(self.nodes) - 1) if self.nodes else None)


def encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str | None, kind: str) -> int | None:
    """The position a cursor of ours names. Anything else — absent, empty, not produced by this
    field, or naming a number no page could reach — reads as "from the start", so a stale or
    mangled cursor never fails a page load (nor reaches the database as an out-of-range integer)."""
    if not cursor:
        return None
    try:
        decoded = base64.b64decode(cursor, altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    prefix, _, value = decoded.partition(":")
    if prefix != kind or not _POSITION.fullmatch(value):
        return None
    return int(value)


def encode_key_cursor(kind: str, *key: str) -> str:
    """A keyset cursor: the sort key of a page's last row (strings), for the next page to start after."""
    return base64.urlsafe_b64encode(f"{kind}:{json.dumps(list(key))}".encode()).decode()


def decode_key_cursor(cursor: str | None, kind: str, size: int) -> tuple[str, ...] | None:
    """The sort key an `encode_key_cursor` cursor of `kind` holds, of `size` strings; anything else
    reads as "from the start", as for `decode_cursor`."""
    if not cursor:
        return None
    try:
        decoded = base64.b64decode(cursor, altchars=b"-_", validate=True).decode()
        prefix, _, value = decoded.partition(":")
        key = json.loads(value) if prefix == kind else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str) and _storable(k) for k in key):
        return None
    return tuple(key)


def _storable(text: str) -> bool:
    """No NUL and no lone surrogate: text a database can compare with."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def decode_row_cursor(cursor: str | None, kind: str) -> tuple[datetime, str] | None:
    """The (created_at, id) of the row a keyset cursor of a list ordered by them names (see
    `keyset_connection`); anything else reads as "from the start"."""
    key = decode_key_cursor(cursor, kind, 2)
    if key is None:
        return None
    try:
        created_at = datetime.fromisoformat(key[0])
    except ValueError:
        return None
    return (created_at, key[1]) if created_at.tzinfo is not None else None


def row_cursor(kind: str) -> Callable[[Any], str]:
    """The keyset cursor of a row of a list ordered by (created_at, id): see `decode_row_cursor`."""
    return lambda row: encode_key_cursor(kind, row.created_at.isoformat(), row.id)


def keyset_connection(
    rows: Sequence[Any], total: Total, limit: int, cursor: Callable[[Any], str], node: Callable[[Any], T]
) -> Connection[T]:
    """A connection of the first `limit` of `rows` (fetched one more, to know whether more follow),
    each with the cursor `cursor` makes of it: the key the next page starts after."""
    page = rows[:limit]
    return Connection(nodes=[node(row) for row in page], total=total, cursor=lambda i: cursor(page[i]), has_next_page=len(rows) > limit)


def page_size(first: int | None) -> int:
    """`first` is capped at 100 (and read as 0 when negative), as GitHub caps its connections."""
    size = DEFAULT_PAGE if first is None else first
    return max(0, min(MAX_PAGE, size))


def offset_window(first: int | None, after: str | None) -> tuple[int, int]:
    """(offset, limit) for an offset-cursored connection."""
    start = decode_cursor(after, "o")
    return (0 if start is None else start + 1), page_size(first)


def offset_connection(items: Sequence[Any], total: int, offset: int) -> Connection[Any]:
    return Connection(
        nodes=list(items), total=total, cursor=lambda i: encode_cursor("o", offset + i), has_next_page=offset + len(items) < total
    )
