"""Logging with request ids, and an access log that never carries tokens, queries or bodies.

Log lines are one line each whatever a client sends: values that come from a request are escaped
before they are interpolated (`log_safe`), and the formatter escapes the finished message once more,
so a percent-encoded CR/LF or a terminal escape in a URL can neither forge a line nor recolour a
terminal. Tracebacks are the only multi-line output.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

access_logger = logging.getLogger("scimgraph.access")
logger = logging.getLogger("scimgraph")

# An incoming X-Request-ID is honoured only in this shape: it is printed inside the `[...]` prefix of
# every log line, so `]`, spaces or control characters could forge that prefix.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def request_id_from(incoming: str | None) -> str:
    """The caller's request id when it is safe to log and echo, otherwise a fresh one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def log_safe(value: object) -> str:
    """`value` as text with every control or otherwise non-printable character written as an escape
    (`\\r`, `\\x1b`, `\\u202e`). Printable text, including non-ASCII letters, is kept; applying it twice
    changes nothing."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class SingleLineFormatter(logging.Formatter):
    """Escapes control characters in the message of every record, ours and the libraries' alike; the
    traceback that follows an exception is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = log_safe(record.message)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(SingleLineFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log prints query strings (filters carry user names): ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
