"""How `python -m app serve` runs the app under uvicorn: the connection-level timeouts uvicorn lacks,
and a shutdown with an upper bound.

Connections. uvicorn bounds how long an idle kept-alive connection stays open (5 s) but not how long
a client may take to send its request headers, so a client trickling headers a byte at a time, or
connecting and sending nothing, held a connection for ever. `HeaderTimeoutProtocol` gives every
request `header_timeout` seconds for its headers, counted from the moment the connection opens or the
first byte of a later request arrives, then answers 408 and closes. It extends uvicorn's h11
implementation, so `serve` runs that one even where httptools is installed. Bodies are bounded per
chunk by the body-limit middleware; a body the application never read, still trickling after the
response was sent, is given the same `header_timeout` before the connection is closed.

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

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

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


def _request_timeout_response(header_timeout: float) -> bytes:
    body = json.dumps({"error": f"request headers not received within {header_timeout:g} seconds"}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *ALWAYS,
        NO_STORE,
    ]
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return b"HTTP/1.1 408 Request Timeout\r\n" + head + b"\r\n" + body


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline whenever the connection waits on the client for bytes
    the application is not reading: request headers, or the unread rest of a body after the response.
    Subclassed per server by `header_timeout_protocol`, which sets `header_timeout`."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._client_deadline is None and self.conn.their_state is h11.IDLE:
            # The first bytes of the next request on a kept-alive connection: its headers are due.
            self._arm()
        super().data_received(data)
        if not self._waiting_on_client():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._unread_body() and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_on_client(self) -> bool:
        return self.conn.their_state is h11.IDLE or self._unread_body()

    def _unread_body(self) -> bool:
        """The response is sent but the client is still sending a body nobody reads."""
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY

    def _arm(self) -> None:
        self._disarm()
        # A fresh context: the timer may be armed inside a request and must not log with its request id.
        self._client_deadline = self.loop.call_later(self.header_timeout, self._on_deadline, context=contextvars.Context())

    def _disarm(self) -> None:
        if self._client_deadline is not None:
            self._client_deadline.cancel()
            self._client_deadline = None

    def _on_deadline(self) -> None:
        self._client_deadline = None
        if self.transport.is_closing() or not self._waiting_on_client():
            return
        client = "%s:%d" % self.client if self.client else "unknown client"
        logger.info("closed a connection from %s: the client sent no complete request within %gs", client, self.header_timeout)
        if self.conn.our_state is h11.IDLE:
            # Nothing of a response was sent on this request yet, so the client can be told why.
            self.transport.write(_request_timeout_response(self.header_timeout))
        self.transport.close()


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
            logger.info("shutting down: /readyz answers 503, new requests served for %gs more, all cut off %gs after the signal", grace, self.drain)
        if self._pending_signal is not None and self._elapsed() >= self.readiness_grace:
            sig, self._pending_signal = self._pending_signal, None
            super().handle_exit(sig, None)
        return await super().on_tick(counter)

    def _elapsed(self) -> float:
        """Seconds since the first signal (0 if none came: shutdown for another reason)."""
        return 0.0 if self._signalled_at is None else time.monotonic() - self._signalled_at

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
    configure_logging(settings.log_level)
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
