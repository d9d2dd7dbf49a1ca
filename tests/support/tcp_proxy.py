"""A TCP proxy on the loopback that can stop passing bytes: a database outage in a box.

`forward` passes bytes both ways; `blackhole` keeps every socket open but passes nothing (packets
silently dropped: the worst outage, where nothing fails, everything waits); `close` also shuts the
listening socket, so new connections are refused.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.forwarding = True
        self.closed = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def blackhole(self) -> None:
        self.forwarding = False

    def forward(self) -> None:
        self.forwarding = True

    def drop_connections(self) -> None:
        """Cut every open connection (as a database restart or an idle timeout in between would);
        new ones are accepted as before."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        while not self.forwarding and not self.closed:  # a new connection during the outage: accepted, never answered
            await asyncio.sleep(0.05)
        if self.closed:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await source.read(65536):
                while not self.forwarding and not self.closed:  # hold the bytes: the network has gone quiet
                    await asyncio.sleep(0.05)
                sink.write(data)
                await sink.drain()
        sink.close()
