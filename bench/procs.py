"""The servers under test as processes: started one at a time, watched through /proc (CPU time and
peak resident memory of every process of the server), and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.database import ROOT, BenchError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTUP_SECONDS = 180.0  # the reference server builds its in-memory data first
STOP_SECONDS = 40.0  # above the service's 25 s drain period


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3, the state, is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and all its children, the live ones and those already reaped (whose time
    the kernel adds to their parent's): e.g. a PostgreSQL server with every backend it forked."""
    try:
        fields = _stat(root)
    except OSError:
        return 0.0
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for pid in children(root):
        try:
            total += sum(int(v) for v in _stat(pid)[11:15])
        except OSError:
            continue
    return total / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(out)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass
class Server:
    """A server process started by the benchmark; `roles` names each of its processes."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    roles: dict[str, int] = field(default_factory=dict)

    def discover(self) -> None:
        """The server's processes: the one started and its workers (multiprocessing's helper excluded)."""
        self.roles = {"main": self.proc.pid}
        workers = [p for p in children(self.proc.pid) if b"spawn_main" in _cmdline(p)]
        if workers:
            self.roles = {"parent": self.proc.pid, **{f"worker{i + 1}": pid for i, pid in enumerate(workers)}}

    def cpu(self) -> dict[str, float]:
        return {role: cpu_seconds(pid) for role, pid in self.roles.items()}

    def peak_rss(self) -> dict[str, float]:
        return {role: round(peak_rss_mb(pid), 1) for role, pid in self.roles.items()}

    def stop(self) -> int:
        """SIGINT (shutdown without the readiness grace), then SIGKILL if it is still there."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def start(
    name: str, args: list[str], env: dict[str, str], port: int, logs: Path, *, workers: int = 1, ready_path: str = "/healthz"
) -> Server:
    """Start `python args…` and wait until it answers `ready_path` (and all its workers started)."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, proc, port, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} while starting; see {log}")
        if _answers(port, ready_path) and log.read_bytes().count(b"Application startup complete") >= (workers if workers > 1 else 0):
            server.discover()
            if workers == 1 or len(server.roles) == workers + 1:
                return server
        time.sleep(0.2)
    server.stop()
    raise BenchError(f"{name} did not start within {STARTUP_SECONDS:g}s; see {log}")


def _answers(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
