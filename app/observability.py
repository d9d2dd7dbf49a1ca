"""Logging with request ids, and an access log that never carries tokens, queries or bodies; as text
lines, or as one JSON object per line (LOG_FORMAT=json).

Log lines are one line each whatever a client sends: values that come from a request are escaped
before they are interpolated (`log_safe`), and the formatter escapes the finished message once more,
so a percent-encoded CR/LF or a terminal escape in a URL can neither forge a line nor recolour a
terminal. Tracebacks are the only multi-line output.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

access_logger = logging.getLogger("scimgraph.access")
logger = logging.getLogger("scimgraph")

# An incoming X-Request-ID is honoured only in this shape: it is printed inside the `[...]` prefix of
# every log line, so `]`, spaces or control characters could forge that prefix.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# An access line's message: method, path, status, duration.
ACCESS_FORMAT = "%s %s %s %.1fms"


def request_id_from(incoming: str | None) -> str:
    """The caller's request id when it is safe to log and echo, otherwise a fresh one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    # 128 random bits as 32 hex digits. An id correlates lines; it guards nothing, so the process's
    # pseudo-random generator (seeded from the OS, reseeded in a forked child) serves, without the
    # system call per request that os.urandom makes.
    return f"{random.getrandbits(128):032x}"


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


def log_access(method: str, path: str, status: int, duration_ms: float) -> None:
    """The access line of one request, on the `scimgraph.access` logger at INFO. The record goes to the
    logger's handlers as `Logger.info` would send it, without the search for the calling source line
    that `Logger.info` makes on every call and that no line shows. Its values are also fields of the
    record, which a JSON line shows as its own members."""
    if access_logger.isEnabledFor(logging.INFO):
        args = (method, path, status, duration_ms)
        fields = {"http_method": method, "http_path": path, "http_status": status, "duration_ms": round(duration_ms, 1)}
        access_logger.handle(
            access_logger.makeRecord(access_logger.name, logging.INFO, __file__, 0, ACCESS_FORMAT, args, None, extra=fields)
        )


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class BatchingStreamHandler(logging.StreamHandler):
    """A stream handler that, inside a running event loop, writes INFO and lower lines in batches:
    one write for all the lines of up to `delay` seconds (or `batch_chars` characters), instead of one
    system call per access line. A WARNING or worse is written at once, after the lines before it,
    and so is every line logged outside an event loop (commands, other threads). Lines still waiting
    when the process exits are written by logging's own shutdown, which flushes every handler."""

    def __init__(self, stream: Any, *, delay: float = 0.05, batch_chars: int = 64 * 1024) -> None:
        super().__init__(stream)
        self.delay = delay
        self.batch_chars = batch_chars
        self._lines: list[str] = []
        self._chars = 0
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._chars += len(line)
        if record.levelno < logging.WARNING and self._chars < self.batch_chars:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                # A loop that closed before its flush ran (one per test, say) left lines for the next.
                if self._flush_on is not loop:
                    self._flush_on = loop
                    loop.call_later(self.delay, self.flush)
                return
        self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:
        self._flush_on = None
        text, self._lines, self._chars = "".join(self._lines), [], 0
        try:
            if text:
                self.stream.write(text)
            self.stream.flush()
        except Exception:
            # As logging does with a line it cannot write: the program goes on, and the failure is
            # printed where it can be while logging.raiseExceptions is on (its default).
            if logging.raiseExceptions:
                traceback.print_exc(file=sys.__stderr__)


_MSEC_FORMAT = "%s,%03d"  # logging's default: the time of day, then its milliseconds


class SingleLineFormatter(logging.Formatter):
    """Escapes control characters in the message of every record, ours and the libraries' alike; the
    traceback that follows an exception is left as it is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = log_safe(record.message)
        return super().formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The default timestamp, its date and time of day made once a second rather than per line.
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return _MSEC_FORMAT % (self._second[1], record.msecs)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line (LOG_FORMAT=json): time (UTC, ISO 8601), level, logger, request_id,
    message, the access line's fields, and a traceback as `exc_info`. JSON escapes every control
    character, so a record stays one line, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


LOG_FORMATS = ("text", "json")


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = BatchingStreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(SingleLineFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The format shows no thread or process: the record need not look them up, line after line.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # uvicorn's own access log prints query strings (filters carry user names): ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
