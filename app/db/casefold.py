"""Case-insensitive text comparison that gives the same answers on SQLite and PostgreSQL.

PostgreSQL's lower() (UTF-8 locale) maps each character to its simple Unicode lowercase; SQLite's
built-in lower() folds ASCII only, so `displayName eq "ÉMILE"` found nothing there. Every SQLite
connection therefore gets a `lower()` written in Python that applies the same per-character mapping
(`unicode_lower`), and every case-insensitive comparison folds BOTH sides with `fold` in SQL, so a
value and a stored column always go through the same function on either database.

Python's own str.lower() is not that function: it turns "İ" into two characters and picks the
final form "ς" by context, which PostgreSQL never does. The stored `*_ci` columns hold str.lower()
copies (their lookups compare them with a str.lower()ed value and hit plain indexes); substring
matches fold those copies once more with `fold`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

CAPITAL_I_WITH_DOT = "\u0130"  # str.lower(): "i" + U+0307; PostgreSQL's lower(): "i"
CAPITAL_SIGMA = "\u03a3"  # str.lower(): "σ" or, at the end of a word, "ς"; PostgreSQL: always "σ"
SMALL_SIGMA = "\u03c3"
FINAL_SIGMA = "\u03c2"


def unicode_lower(value: Any) -> Any:
    """SQLite's lower(): each character's simple lowercase mapping, as PostgreSQL's lower() does it.

    Replacing the two characters whose str.lower() differs (İ expands, Σ depends on context) first
    makes str.lower() exactly that per-character mapping. NULL stays NULL; numbers and blobs are
    read as text, as SQLite's own lower() reads them.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    return text.replace(CAPITAL_I_WITH_DOT, "i").replace(CAPITAL_SIGMA, SMALL_SIGMA).lower()


def fold(expression: Any) -> ColumnElement[str]:
    """The case fold applied in SQL to both sides of a case-insensitive comparison: lower(), and
    the final sigma read as σ, so "ΣΩΚΡΆΤΗΣ" and "Σωκράτης" are one name. `expression` is a column
    or a Python string (bound as a parameter)."""
    return func.replace(func.lower(expression), FINAL_SIGMA, SMALL_SIGMA)
