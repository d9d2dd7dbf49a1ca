"""A real `python -m app serve` process on a free port of 127.0.0.1, on its own SQLite file, for the
tests that need raw sockets and signals: what uvicorn does with a connection is only visible there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    token: str | None  # None for a second instance on a database that was already set up
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.settimeout(timeout)
        return sock

    def log_text(self) -> str:
        return self.log.read_text()


@contextmanager
def serve(directory: Path, *, name: str = "server", first: bool = True, **env: str) -> Iterator[Served]:
    """Start the server with `env` added to the environment; kill it afterwards if it still runs.
    Instances started on one `directory` share its database; all but the `first` get no token."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PUBLIC_URL", "HOST", "PORT")}
    full_env.update(PORT=str(port), PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{directory / 'served.db'}")
    # Test suites send faster than any identity provider, and probe authentication hundreds of times
    # from one address: the rate limits are off unless a test sets them (tests/test_rate_limits.py).
    for name in ("RATE_LIMIT_PER_TOKEN", "RATE_LIMIT_FAILED_AUTH_PER_ADDRESS", "RATE_LIMIT_FAILED_AUTH_PER_ACCOUNT"):
        full_env.setdefault(name, "off")
    full_env.update(env)
    log = directory / f"{name}.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"], cwd=directory, env=full_env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        token = _bootstrap_token(proc) if first else _wait_for_tenant_url(proc)
        wait_until_healthy(port)
        yield Served(proc, port, token, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def _bootstrap_token(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Secret Token:"):
            return line.split()[-1]
    raise AssertionError("the server exited before printing its bootstrap token")


def _wait_for_tenant_url(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Tenant URL:"):
            return None
    raise AssertionError("the server exited before printing its Tenant URL")


def wait_until_healthy(port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not become healthy")


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def read_response(sock: socket.socket) -> RawResponse:
    """One HTTP/1.1 response with a Content-Length (all of ours have one), skipping 1xx responses."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before a complete response: {buffer!r}")
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        if status >= 200:
            break
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return RawResponse(status, headers, buffer[:length])


def read_until_closed(sock: socket.socket) -> bytes:
    """Whatever the server still sends until it closes the connection; TimeoutError if it never does."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data
