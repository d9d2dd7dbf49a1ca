"""The log handler the server runs with: inside an event loop, INFO lines leave in batches a short
delay later; warnings and errors, and every line outside a loop, leave at once and in order."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from app.observability import BatchingStreamHandler, SingleLineFormatter


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


Logged = tuple[logging.Logger, CountingStream, BatchingStreamHandler]


@pytest.fixture
def logged() -> Iterator[Logged]:
    stream = CountingStream()
    handler = BatchingStreamHandler(stream, delay=0.05)
    handler.setFormatter(SingleLineFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.batching")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.handlers[:] = [handler]
    yield log, stream, handler
    log.handlers[:] = []
    log.propagate = True


async def test_info_lines_in_a_running_loop_leave_together_after_the_delay(logged: Logged) -> None:
    log, stream, _ = logged
    for n in range(100):
        log.info("GET /Users/%d 200", n)
    assert stream.getvalue() == ""
    await asyncio.sleep(0.2)
    assert stream.getvalue().splitlines() == [f"INFO GET /Users/{n} 200" for n in range(100)]
    assert stream.writes == 1


async def test_a_warning_leaves_at_once_after_the_lines_before_it(logged: Logged) -> None:
    log, stream, _ = logged
    log.info("first")
    log.warning("the database did not answer")
    assert stream.getvalue().splitlines() == ["INFO first", "WARNING the database did not answer"]


async def test_a_full_batch_leaves_before_the_delay(logged: Logged) -> None:
    log, stream, handler = logged
    handler.batch_chars = 1000
    for n in range(100):
        log.info("line %03d of a long burst", n)
    assert len(stream.getvalue()) >= 1000 and stream.writes < 100


def test_lines_outside_an_event_loop_leave_at_once(logged: Logged) -> None:
    log, stream, _ = logged
    log.info("from a command")
    assert stream.getvalue() == "INFO from a command\n"


def test_lines_left_by_a_closed_loop_leave_with_the_next_loop_or_at_exit(logged: Logged) -> None:
    log, stream, handler = logged

    async def one_line(text: str) -> None:
        log.info(text)

    asyncio.run(one_line("from a loop that closed at once"))
    assert stream.getvalue() == ""  # its flush never ran
    asyncio.run(one_line("from the next loop"))  # schedules a flush there, and waits for none
    assert stream.getvalue() == ""

    async def later() -> None:
        log.info("third")
        await asyncio.sleep(0.2)

    asyncio.run(later())
    assert stream.getvalue().splitlines() == ["INFO from a loop that closed at once", "INFO from the next loop", "INFO third"]
    asyncio.run(one_line("from the last loop"))
    assert stream.getvalue().splitlines()[-1] == "INFO third"
    handler.flush()  # what logging's shutdown does for every handler at exit
    assert stream.getvalue().splitlines()[-1] == "INFO from the last loop"


def test_a_stream_that_cannot_be_written_stops_no_caller(logged: Logged, capfd: pytest.CaptureFixture[str]) -> None:
    log, stream, _ = logged

    def refuse(text: str) -> int:
        raise OSError(28, "No space left on device")

    stream.write = refuse  # type: ignore[method-assign]
    log.warning("the disk is full")  # raises nothing
    assert "No space left on device" in capfd.readouterr().err
