"""Relay-style connections with opaque cursors (`first` / `after`, GitHub's limits)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError

T = TypeVar("T")
DEFAULT_PAGE = 50
MAX_PAGE = 100


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    total_count: int
    nodes: list[T]
    edges: list[Edge[T]]
    page_info: PageInfo


def encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str | None, kind: str) -> int | None:
    if cursor is None:
        return None
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix != kind:
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise GraphQLError("after is not a cursor this field produced", extensions={"code": "BAD_USER_INPUT", "field": "after"}) from None


def page_size(first: int | None) -> int:
    size = DEFAULT_PAGE if first is None else first
    if not 0 <= size <= MAX_PAGE:
        raise GraphQLError(f"first must be between 0 and {MAX_PAGE}", extensions={"code": "BAD_USER_INPUT", "field": "first"})
    return size


def offset_window(first: int | None, after: str | None) -> tuple[int, int]:
    """(offset, limit) for an offset-cursored connection."""
    start = decode_cursor(after, "o")
    return (0 if start is None else start + 1), page_size(first)


def offset_connection(items: Sequence[Any], total: int, offset: int) -> Connection[Any]:
    edges = [Edge(cursor=encode_cursor("o", offset + i), node=item) for i, item in enumerate(items)]
    return Connection(
        total_count=total,
        nodes=list(items),
        edges=edges,
        page_info=PageInfo(has_next_page=offset + len(items) < total, end_cursor=edges[-1].cursor if edges else None),
    )
