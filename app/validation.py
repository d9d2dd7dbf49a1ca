"""Input checks shared by both transports."""

from __future__ import annotations

from typing import Any

# The longest userName, externalId, group name and manager id: they are indexed, stored as VARCHAR(256).
MAX_INDEXED = 256
# The longest email address (RFC 5321: 64 for the local part, @, 255 for the domain).
MAX_EMAIL = 320
# The escape character of every LIKE pattern built from a client's text (see `like_escaped`).
LIKE_ESCAPE = "\\"


def like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (with `escape=LIKE_ESCAPE`): its %, _ and the
    escape character itself lose their meaning."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_nul(value: Any) -> bool:
    """True when any string in `value` (keys included) holds U+0000, which PostgreSQL text cannot store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


# The whitespace of JSON Schema / ECMAScript regular expressions (\s): "blank" means the same to the
# server as to the OpenAPI description. (Python's str.strip() also strips \x1c-\x1f.)
BLANK = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def is_blank(text: str) -> bool:
    return all(c in BLANK for c in text)


def has_nul(*values: object) -> bool:
    """PostgreSQL text cannot hold U+0000: a lookup by such a value finds nothing, a write is refused."""
    return any(isinstance(v, str) and "\x00" in v for v in values)
