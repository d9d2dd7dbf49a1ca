"""How `python -m app serve` runs the app under uvicorn: the connection-level timeouts uvicorn lacks,
and a shutdown with an upper bound.

Connections. uvicorn bounds how long an idle kept-alive connection stays open (5 s) but not how long
a client may take to send its request headers, so a client trickling headers a byte at a time, or
connecting and sending nothing, held a connection for ever. `HeaderTimeoutProtocol` gives every
request `header_timeout` seconds for its headers, counted from the moment the connection opens or the
first byte of a later request arrives, then answers 408 and closes. It extends uvicorn's httptools
implementation (its parser is written in C) and checks what that parser does not: a request line and
headers over 16 KiB are refused (431), and so is an HTTP/1.1 request without exactly one Host header
(400, RFC 9112 §3.2). It also serves a request that offers an upgrade (`Upgrade: h2c`) as plain
HTTP/1.1 with its body, which uvicorn's httptools protocol drops, and sends each response's head and
body in one write. Bodies are bounded per chunk by the edge middleware; a body the application never
read, still trickling after the response was sent, is given the same `header_timeout` before the
connection is closed.

Shutdown. On SIGTERM /readyz answers 503 at once and every response asks its client to close the
connection, while new requests are still served for the readiness grace period: a load balancer needs
a moment to notice and stop sending traffic, and refusing connections before then would turn that
moment into errors. Then the listener closes, in-flight requests finish, and whatever still runs when
the drain period (counted from the signal) is over is cut off with a 503 and the process exits.
SIGINT (Ctrl+C at a terminal) skips the readiness grace; a second signal of either kind skips what is
left of it, and a second SIGINT during the drain stops at once (uvicorn's force exit).

Workers. `serve --workers N` (or WORKERS) runs N such servers as processes on one port, for hosts
with more than one core: one Python process uses one core at most. The parent has already migrated
the database and bootstrapped the first account, so that happens once; it then starts the workers and
only supervises. Each worker listens on a socket of its own bound with SO_REUSEPORT, so the kernel
spreads new connections evenly over the workers: on one shared socket, whichever worker was waiting
in accept() took a whole burst of connections, and a client that keeps its connections alive (Entra
does) then loaded that worker alone. Where SO_REUSEPORT does not exist the workers share one socket
the parent binds. Each worker sits in its own process group, so a
Ctrl+C at the terminal reaches the parent alone, and the parent forwards every SIGTERM or SIGINT it
gets to each worker exactly once: the workers then shut down as described above, together. A worker
that exits on its own (a crash, an out-of-memory kill) makes the parent stop the others and exit 1,
leaving the restart to whatever supervises the parent; a worker whose parent is gone (killed with
SIGKILL) shuts itself down rather than serve unsupervised.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import wait as wait_for_exit
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import httptools
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.lifecycle import Readiness
from app.security_headers import ALWAYS, NO_STORE
from app.settings import Settings

logger = logging.getLogger("scimgraph")

KEEP_ALIVE_SECONDS = 5  # uvicorn's default, kept: idle kept-alive connections close after it
LISTEN_BACKLOG = 2048  # uvicorn's default
# Each worker holds its own database pool (DB_POOL_SIZE, and half as many more under a burst), so the
# worker count multiplies the connections PostgreSQL must accept.
MAX_WORKERS = 64
# Workers exit within the drain period of the signal; the parent gives them this much more (closing the
# database, interpreter shutdown) before it kills what is left.
WORKER_EXIT_MARGIN_SECONDS = 5.0
PARENT_CHECK_SECONDS = 1.0  # how often a worker checks that its parent still runs
# Allocations (less deallocations) between two collections of the youngest generation; the default is 700.
GC_YOUNG_THRESHOLD = 10_000
MAX_HEAD_BYTES = 16 * 1024  # request line and headers; more is refused (431). Real clients send under 2 KiB


def _connection_error_response(status: str, detail: str) -> bytes:
    """A complete response that closes the connection, for what is answered before any application sees
    a request: the same JSON shape and security headers as the application's own errors."""
    body = json.dumps({"error": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *ALWAYS,
        NO_STORE,
    ]
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return b"HTTP/1.1 " + status.encode() + b"\r\n" + head + b"\r\n" + body


def _request_timeout_response(header_timeout: float) -> bytes:
    return _connection_error_response("408 Request Timeout", f"request headers not received within {header_timeout:g} seconds")


def _head_too_large_response(limit: int) -> bytes:
    return _connection_error_response("431 Request Header Fields Too Large", f"request line and headers exceed {limit} bytes")


class _WriteOnce:
    """A connection's transport whose writes made in one step of the event loop go out as one: uvicorn
    writes a response as its head and then its body, and each write is a system call of its own (with
    Nagle's algorithm off, a TCP segment of its own). Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()  # what was written before the close goes out first
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _RefusedHead(Exception):
    """Raised from a parser callback to stop parsing a request head that is refused."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline whenever the connection waits on the client for bytes
    the application is not reading — request headers, or the unread rest of a body after the response —
    and with the checks its parser lacks: a bounded request head, and one Host header.
    Subclassed per server by `header_timeout_protocol`, which sets `header_timeout`.

    The parser reports where a request is through its callbacks; two flags keep that: `_in_head` from the
    first byte of a request to the end of its headers, `_in_message` from that first byte to the end of
    its body (which the parser still reads, and discards, when the application answered without it)."""

    header_timeout: float = 10.0
    max_head_bytes: int = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client_deadline: asyncio.TimerHandle | None = None
        self._in_head = False
        self._in_message = False
        self._head_began_at = 0.0  # loop time of the first byte of the request being read
        self._head_bytes = 0  # bytes of an unfinished head received so far (see data_received)
        self._message_ended = False  # a request ended within the bytes being parsed
        self._head_too_large = False
        self._replaying = False  # feeding a fresh parser the stand-in head of a declined upgrade
        self._request_state: tuple[bytes, list[tuple[bytes, bytes]], Any] | None = None  # kept aside meanwhile

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_WriteOnce(transport, self.loop))  # type: ignore[arg-type]
        self._arm(self.loop.time())

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, but for what it does with a declined upgrade and a refused head.
        self._unset_keepalive_if_required()
        self._message_ended = False
        pending = data
        while True:
            try:
                self.parser.feed_data(pending)
                break
            except httptools.HttpParserUpgrade as upgrade:
                pending = self._decline_upgrade(pending[upgrade.args[0] :])
            except httptools.HttpParserError:
                if self._head_too_large:
                    self._refuse_head()
                else:
                    self.logger.warning("Invalid HTTP request received.")
                    self.send_400_response("Invalid HTTP request received.")
                self._disarm()
                return
        if self._in_head and not self._message_ended:
            # Every byte of this piece belongs to the unfinished head. A piece in which an earlier request
            # ended is not counted, as the share of it that is head is unknown: one piece more at most.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()
                return
        if not self._waiting_on_client():
            self._disarm()
        elif self._client_deadline is None:
            # The first bytes of a later request on a kept-alive connection: its headers are due.
            self._arm(self._head_began_at)

    def _decline_upgrade(self, rest: bytes) -> bytes:
        """The request just parsed asked to switch protocols (`Upgrade: h2c` from curl or Java clients);
        the app speaks HTTP/1.1 only, and the request must be served as such (RFC 9110 §7.8). httptools
        has already ended it at its headers and left its body unparsed, so a fresh parser is given a
        stand-in head with the request's framing headers, then the rest: its body reaches the request,
        and any later request on the connection is parsed as usual. Returns the bytes to feed next."""
        framing = [name + b": " + value + b"\r\n" for name, value in self.headers if name in (b"content-length", b"transfer-encoding")]
        self.cycle.more_body = True
        self.cycle.message_event.clear()
        self._in_message = True
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn sets its own
        self._replaying = True
        return b"".join([b"POST / HTTP/1.1\r\n", *framing, b"\r\n", rest])

    # Parser callbacks
    def on_message_begin(self) -> None:
        if self._replaying:
            self._request_state = (self.url, self.headers, self.scope)
            super().on_message_begin()
            return
        super().on_message_begin()
        self._in_head = self._in_message = True
        self._head_bytes = 0
        self._head_began_at = self.loop.time()

    def on_headers_complete(self) -> None:
        if self._replaying:
            # The stand-in head: the request it stands for is already being served.
            self._replaying = False
            assert self._request_state is not None
            self.url, self.headers, self.scope = self._request_state
            self._request_state = None
            return
        self._in_head = False
        size = len(self.url)
        hosts = 0
        for name, value in self.headers:
            size += len(name) + len(value) + 4
            if name == b"host":
                hosts += 1
        if size > self.max_head_bytes:
            # A head that arrived whole in one piece was not counted by data_received.
            self._head_too_large = True
            raise _RefusedHead()
        if hosts > 1 or (hosts == 0 and self.parser.get_http_version() == "1.1"):
            raise _RefusedHead()  # a 400 (RFC 9112 §3.2)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        self._message_ended = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_on_client():
            # The client still owes bytes nobody will read: the rest of a body, or a later request's head.
            self._arm(self.loop.time())

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_on_client(self) -> bool:
        if self.cycle is None:
            return True  # no request has been read yet
        if not self.cycle.response_complete:
            return False  # the application has a request; its body reads are bounded by the middleware
        return self._in_message

    def _arm(self, since: float) -> None:
        self._disarm()
        # A fresh context: the timer may be armed inside a request and must not log with its request id.
        self._client_deadline = self.loop.call_at(since + self.header_timeout, self._on_deadline, context=contextvars.Context())

    def _disarm(self) -> None:
        if self._client_deadline is not None:
            self._client_deadline.cancel()
            self._client_deadline = None

    def _on_deadline(self) -> None:
        self._client_deadline = None
        if self.transport.is_closing() or not self._waiting_on_client():
            return
        logger.info("closed a connection from %s: the client sent no complete request within %gs", self._peer(), self.header_timeout)
        if self.cycle is None or self._in_head:
            # Nothing of a response was sent on this request yet, so the client can be told why.
            self.transport.write(_request_timeout_response(self.header_timeout))
        self.transport.close()

    def _refuse_head(self) -> None:
        self._disarm()
        logger.info("refused a request from %s: its request line and headers exceed %d bytes", self._peer(), self.max_head_bytes)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_head_too_large_response(self.max_head_bytes))
        self.transport.close()

    def _peer(self) -> str:
        return "%s:%d" % self.client if self.client else "unknown client"


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """uvicorn builds one protocol instance per connection from a class: this one carries the timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a readiness grace period before it stops accepting, and a drain period that
    bounds the whole shutdown from the first signal (uvicorn's own wait has no bound by default)."""

    def __init__(self, config: uvicorn.Config, *, readiness: Readiness, drain: float, readiness_grace: float) -> None:
        super().__init__(config)
        self.readiness = readiness
        self.drain = drain
        self.readiness_grace = readiness_grace
        self._signalled_at: float | None = None
        self._pending_signal: int | None = None
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler: set flags only; the event loop acts on them in on_tick.
        self.readiness.begin_draining()
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()
            if sig == signal.SIGTERM and self.readiness_grace > 0:
                self._pending_signal = sig
                return
        self._pending_signal = None
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._signalled_at is not None and not self._announced:
            self._announced = True
            grace = self.readiness_grace if self._pending_signal is not None else 0
            logger.info(
                "shutting down: /readyz answers 503, new requests served for %gs more, all cut off %gs after the signal", grace, self.drain
            )
        if self._pending_signal is not None and self._elapsed() >= self.readiness_grace:
            sig, self._pending_signal = self._pending_signal, None
            super().handle_exit(sig, None)
        return await super().on_tick(counter)

    def _elapsed(self) -> float:
        """Seconds since the first signal (0 if none came: shutdown for another reason)."""
        return 0.0 if self._signalled_at is None else time.monotonic() - self._signalled_at

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        # Everything made to start serving (modules, the app, the schema, the pool) lives as long as the
        # process: the cyclic garbage collector stops going over it. Requests make objects that their
        # end frees, yet the young-generation count crosses the default 700 many times a second under
        # load and each collection also walks older objects: it took 6.5% of a worker's CPU time.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD)

    async def shutdown(self, sockets: Any = None) -> None:
        # What is left of the drain period after the readiness grace is what in-flight requests get.
        self.config.timeout_graceful_shutdown = max(0.0, self.drain - self._elapsed())  # type: ignore[assignment]
        await super().shutdown(sockets)


def build_server(app: ASGIApp, settings: Settings, readiness: Readiness) -> DrainingServer:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        ws="none",  # no WebSocket endpoint: an upgrade offer is declined and the request served as HTTP/1.1
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return DrainingServer(
        config, readiness=readiness, drain=settings.shutdown_drain_seconds, readiness_grace=settings.shutdown_readiness_grace_seconds
    )


REUSE_PORT = hasattr(socket, "SO_REUSEPORT")


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket: one per worker with `reuse_port`, else one the parent binds for all.

    Made with the TCP protocol number, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    connections of such a socket, and with it on, a response written as headers then body waited for
    the client's delayed ACK, some 40 ms per request."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def _exit_with_parent(parent_pid: int) -> None:
    """Shut this worker down (as on SIGTERM) once its parent is gone: no worker serves unsupervised."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        logger.warning("the supervising process %d is gone; shutting down", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_main(settings: Settings, shared: socket.socket | None, parent_pid: int) -> None:
    """One worker process: its own app, database pool, uvicorn server and (with SO_REUSEPORT) socket."""
    os.setpgrp()  # terminal signals reach the parent only; it forwards them once
    from app.main import create_app
    from app.observability import configure_logging

    stop_requested: list[int] = []

    def record(sig: int, _frame: FrameType | None) -> None:
        stop_requested.append(sig)

    # Until uvicorn takes the signals over, and again after it re-raises the one it shut down on:
    # a worker stopped by a signal exits 0, quietly, instead of dying of that signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, record)
    configure_logging(settings.log_level, settings.log_format)
    try:
        sock = shared or bind_socket(settings.host, settings.port, reuse_port=True)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror)
        raise SystemExit(1) from None
    _exit_with_parent(parent_pid)
    app = create_app(settings)
    server = build_server(app, settings, app.state.readiness)
    if stop_requested:
        return
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(1)  # the app could not start (its lifespan failed): the parent stops the rest


class WorkerSupervisor:
    """Starts the workers, forwards shutdown signals to them, and waits for them with a bound."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.count = workers
        self.processes: list[BaseProcess] = []
        self._pending: list[int] = []  # signals received, not yet forwarded
        self._deadline: float | None = None  # when the workers must be gone, once stopping began
        self._failed = False

    def run(self) -> int:
        """Serve until a signal or a worker's exit; 0 when every worker stopped cleanly on a signal."""
        sock = None if REUSE_PORT else bind_socket(self.settings.host, self.settings.port)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        # A signal handler only records the signal; the wake-up byte ends the wait below at once.
        signal.set_wakeup_fd(wake_write)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda sig, _frame: self._pending.append(sig))
        try:
            self._start(sock)
            self._supervise(wake_read)
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_read)
            os.close(wake_write)
            if sock is not None:
                sock.close()
        return 1 if self._failed or any(p.exitcode != 0 for p in self.processes) else 0

    def _start(self, sock: socket.socket | None) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of the parent's state
        for n in range(self.count):
            process = context.Process(target=_worker_main, args=(self.settings, sock, os.getpid()), name=f"worker-{n + 1}")
            process.start()
            self.processes.append(process)
        pids = ", ".join(str(p.pid) for p in self.processes)
        logger.info("serving on %s:%d with %d workers (pids %s)", self.settings.host, self.settings.port, self.count, pids)

    def _supervise(self, wake_read: int) -> None:
        while True:
            while self._pending:
                self._stop(self._pending.pop(0))
            if self._deadline is None:
                # Every worker, not only those seen running before the wait: a worker's pipe closes a moment
                # before its exit status can be collected, so its death may first show on a later pass.
                died = [p for p in self.processes if p.exitcode is not None]
                for process in died:
                    logger.error("%s (pid %s) exited with code %s; stopping the others", process.name, process.pid, process.exitcode)
                if died:
                    self._failed = True
                    self._stop(signal.SIGTERM)
            elif time.monotonic() >= self._deadline:
                for process in (p for p in self.processes if p.exitcode is None):
                    logger.error("%s (pid %s) did not stop within the drain period; killing it", process.name, process.pid)
                    process.kill()
                    process.join()
                self._failed = True
            running = [p for p in self.processes if p.exitcode is None]
            if not running:
                break
            timeout = 1.0 if self._deadline is None else max(0.0, min(1.0, self._deadline - time.monotonic()))
            if wake_read in wait_for_exit([wake_read, *(p.sentinel for p in running)], timeout=timeout):
                os.read(wake_read, 512)
        for process in self.processes:
            process.join()

    def _stop(self, sig: int) -> None:
        """Forward `sig` to every running worker; the first one starts the shutdown's clock."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.settings.shutdown_drain_seconds + WORKER_EXIT_MARGIN_SECONDS
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                try:
                    os.kill(process.pid, sig)
                except ProcessLookupError:  # exited since the check
                    pass


def serve_workers(settings: Settings, workers: int) -> int:
    """`serve --workers N` for N > 1; the database is migrated and bootstrapped already."""
    return WorkerSupervisor(settings, workers).run()
