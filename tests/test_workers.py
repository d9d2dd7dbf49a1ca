"""`python -m app serve --workers N`: N server processes on one port, started after a single migration
and bootstrap, stopped together, and never left serving without their parent."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app import serving
from app.cli import main
from app.serving import WorkerSupervisor, bind_socket
from app.settings import Settings
from tests.served import ROOT, free_port, read_response

DRAIN = 3.0
EXIT_BOUND = DRAIN + 10.0  # the drain period, the parent's margin, and a slow machine's start-up
STARTUP_SECONDS = 60.0


@dataclass
class Workers:
    proc: subprocess.Popen[str]
    port: int
    stdout: list[str]
    log: Path
    database: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The parent's children that serve (not multiprocessing's resource tracker)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.proc.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        return sorted(pids)

    def wait_exit(self) -> int:
        return self.proc.wait(timeout=EXIT_BOUND)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")


def _wait_until_gone(pids: list[int], bound: float) -> list[int]:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@contextmanager
def serve_workers(directory: Path, *args: str, **env: str) -> Iterator[Workers]:
    port = free_port()
    database = directory / "workers.db"
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PUBLIC_URL", "HOST", "PORT", "WORKERS")}
    full_env.update(
        PORT=str(port),
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        SHUTDOWN_READINESS_GRACE_SECONDS="0",
        SHUTDOWN_DRAIN_SECONDS=str(DRAIN),
        **env,
    )
    log = directory / "server.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", *args], cwd=directory, env=full_env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    served = Workers(proc, port, [], log, database)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            served.stdout.append(line)
            if line.startswith("The token is shown only now"):
                break
        _wait_until_serving(served, expected_workers=int(env.get("WORKERS", args[-1] if args else "1")))
        yield served
    finally:
        leftovers = served.worker_pids()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for pid in leftovers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert proc.stdout is not None
        proc.stdout.close()


def _wait_until_serving(served: Workers, expected_workers: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        started = served.log.read_text().count("Application startup complete")
        if started >= expected_workers:
            try:
                if httpx.get(f"{served.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
        if served.proc.poll() is not None:
            raise AssertionError(f"the server exited with {served.proc.returncode}: {served.log.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"the workers did not start: {served.log.read_text()}")


def test_two_workers_serve_one_port_after_a_single_migration_and_bootstrap(tmp_path: Path) -> None:
    with serve_workers(tmp_path, "--workers", "2") as served:
        pids = served.worker_pids()
        assert len(pids) == 2
        log = served.log.read_text()
        assert f"with 2 workers (pids {pids[0]}, {pids[1]})" in log or f"with 2 workers (pids {pids[1]}, {pids[0]})" in log
        assert all(f"Started server process [{pid}]" in log for pid in pids)
        token = next(line.split()[-1] for line in served.stdout if line.startswith("Secret Token:"))
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}", "Connection": "close"}) as client:
            for _ in range(6):  # new connections, so whichever worker accepts them answers
                assert client.get("/gateway/ng/api/scim/account/default/Users").status_code == 200
    assert sum(line.startswith("Secret Token:") for line in served.stdout) == 1
    with sqlite3.connect(served.database) as db:
        assert db.execute("SELECT count(*) FROM accounts").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM api_tokens").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def _established(pid: int, port: int) -> int:
    """How many connections to `port` the process holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01" and inode in inodes:  # 01: ESTABLISHED
                count += 1
    return count


def test_a_burst_of_kept_alive_connections_is_spread_over_the_workers(tmp_path: Path) -> None:
    """A client opening its connections at once (a load generator, Entra's parallel requests) must not
    land them all on one worker: a kept-alive connection stays where it was accepted."""
    with serve_workers(tmp_path, "--workers", "2") as served:
        connections = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(16)]
        try:
            for sock in connections:
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n\r\n".encode())
            for sock in connections:
                assert read_response(sock).status == 200
            per_worker = [_established(pid, served.port) for pid in served.worker_pids()]
        finally:
            for sock in connections:
                sock.close()
    assert sum(per_worker) == 16
    # Spread by the kernel's hash: all 16 on one of 2 workers has a chance of 2 in 65,536.
    assert min(per_worker) > 0, per_worker


@pytest.mark.parametrize("reuse_port", [True, False])
async def test_connections_accepted_on_a_worker_socket_send_without_nagle_delay(reuse_port: bool) -> None:
    """Responses go out as headers then body; with Nagle's algorithm on, the body waited for the
    client's delayed ACK (about 40 ms a request). asyncio turns it off only on a TCP-numbered socket."""
    listener = bind_socket("127.0.0.1", free_port(), reuse_port=reuse_port)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            assert await asyncio.wait_for(accepted, 10) != 0
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_stops_every_worker_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    with serve_workers(tmp_path, WORKERS="2") as served:
        pids = served.worker_pids()
        assert len(pids) == 2
        served.proc.send_signal(sig)
        assert served.wait_exit() == 0
        assert _wait_until_gone(pids, 1.0) == []
        log = served.log.read_text()
    assert log.count("Finished server process") == 2
    # Forwarded once: a second SIGINT would have cut the drain short (uvicorn's force exit).
    assert log.count("shutting down: /readyz answers 503") == 2


def test_a_worker_that_dies_stops_the_others_and_the_parent_exits_1(tmp_path: Path) -> None:
    with serve_workers(tmp_path, "--workers", "2") as served:
        killed, survivor = served.worker_pids()
        os.kill(killed, signal.SIGKILL)
        assert served.wait_exit() == 1
        assert _wait_until_gone([survivor], 1.0) == []
        log = served.log.read_text()
    assert f"(pid {killed}) exited with code -9; stopping the others" in log
    assert f"Finished server process [{survivor}]" in log


class _FakeWorker:
    """A worker whose exit shows on its pipe first and in its exit status only `status_lag` reads later:
    the order the kernel gives them in, stretched so that every interleaving can be tried."""

    def __init__(self, pid: int, status_lag: int | None) -> None:
        self.pid, self.name = pid, f"worker-{pid}"
        self.sentinel, self._write = os.pipe()
        self._reads_left = status_lag  # None: runs until signalled
        self._exitcode: int | None = None
        if status_lag is not None:
            os.close(self._write)

    @property
    def exitcode(self) -> int | None:
        if self._reads_left is not None and self._exitcode is None:
            if self._reads_left == 0:
                self._exitcode = -signal.SIGKILL
            self._reads_left -= 1
        return self._exitcode

    def signalled(self, sig: int) -> None:
        if self._exitcode is None and self._reads_left is None:
            self._exitcode = 0
            os.close(self._write)

    def kill(self) -> None:
        self.signalled(signal.SIGKILL)

    def join(self) -> None:
        pass


@pytest.mark.parametrize("status_lag", range(6))
def test_a_worker_death_is_noticed_however_late_its_exit_status_shows(monkeypatch: pytest.MonkeyPatch, status_lag: int) -> None:
    dead, survivor = _FakeWorker(1, status_lag), _FakeWorker(2, None)
    workers = {w.pid: w for w in (dead, survivor)}
    monkeypatch.setattr(serving.os, "kill", lambda pid, sig: workers[pid].signalled(sig))
    supervisor = WorkerSupervisor(Settings(shutdown_drain_seconds=DRAIN), 2)
    supervisor.processes = [dead, survivor]  # type: ignore[list-item]
    wake_read, wake_write = os.pipe()
    thread = threading.Thread(target=supervisor._supervise, args=(wake_read,), daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the supervisor missed the death and kept waiting on the survivor"
    assert survivor.exitcode == 0
    assert supervisor._failed
    for fd in (wake_read, wake_write, dead.sentinel, survivor.sentinel):
        os.close(fd)


def test_workers_stop_by_themselves_when_their_parent_is_killed(tmp_path: Path) -> None:
    with serve_workers(tmp_path, "--workers", "2") as served:
        pids = served.worker_pids()
        served.proc.kill()
        served.proc.wait(timeout=10)
        assert _wait_until_gone(pids, EXIT_BOUND) == []
        log = served.log.read_text()
    assert log.count("is gone; shutting down") == 2


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["serve", "--workers", "0"], {}),
        (["serve", "--workers", "65"], {}),
        (["serve", "--workers", "two"], {}),
        (["serve"], {"WORKERS": "-1"}),
        (["serve"], {"WORKERS": "1.5"}),
    ],
)
def test_an_unusable_worker_count_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]
) -> None:
    database = tmp_path / "never.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.delenv("WORKERS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "WORKERS (serve --workers) must be a whole number from 1 to 64" in err
    assert len(err.strip().splitlines()) == 1
    assert not database.exists()
