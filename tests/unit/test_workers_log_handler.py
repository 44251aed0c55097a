"""A worker's log lines on their way to the main process: bounded when the main process reads slowly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agentapi.workers.worker_main import MAX_LOG_NOTES_QUEUED, ChannelLogHandler


class StuckChannel:
    """A channel whose notes wait until `release` is set, as when the main process reads no more."""

    def __init__(self) -> None:
        self.closed = False
        self.release = asyncio.Event()
        self.notes: list[tuple[int, str, str]] = []
        self.stop_at: int | None = None  # stuck again once this many notes are read

    async def note(self, kind: str, *args: Any) -> None:
        assert kind == "log"
        await self.release.wait()
        self.notes.append(args)
        if len(self.notes) == self.stop_at:
            self.release.clear()


def record(number: int) -> logging.LogRecord:
    return logging.LogRecord("agentapi.engine", logging.WARNING, __file__, 1, "line %d", (number,), None)


async def settle() -> None:
    """Run the loop until the handler's callbacks and sender have done what they can."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_channel_that_never_drains_holds_at_most_the_cap_and_the_drop_is_counted() -> None:
    channel = StuckChannel()
    handler = ChannelLogHandler(channel, asyncio.get_running_loop())  # type: ignore[arg-type]
    tasks_before = len(asyncio.all_tasks())
    lines = MAX_LOG_NOTES_QUEUED * 5
    for number in range(lines):
        handler.emit(record(number))
    await settle()
    # One sender, not a task a line; the lines waiting are bounded.
    assert len(asyncio.all_tasks()) - tasks_before <= 1
    assert len(handler._queue) <= MAX_LOG_NOTES_QUEUED

    channel.release.set()
    await settle()
    texts = [text for _, _, text in channel.notes]
    assert texts[:MAX_LOG_NOTES_QUEUED] == [f"line {number}" for number in range(MAX_LOG_NOTES_QUEUED)]
    dropped = lines - MAX_LOG_NOTES_QUEUED
    assert texts[MAX_LOG_NOTES_QUEUED:] == [
        f"{dropped} log lines dropped (this worker logged faster than the main process read them)"
    ]
    assert channel.notes[-1][:2] == (logging.WARNING, "agentapi.workers")


async def test_lines_flow_again_once_the_channel_drains_with_the_count_before_them() -> None:
    channel = StuckChannel()
    handler = ChannelLogHandler(channel, asyncio.get_running_loop())  # type: ignore[arg-type]
    for number in range(MAX_LOG_NOTES_QUEUED + 3):
        handler.emit(record(number))
    await settle()
    # The main process reads half the backlog, then a new line comes.
    channel.stop_at = MAX_LOG_NOTES_QUEUED // 2
    channel.release.set()
    for _ in range(MAX_LOG_NOTES_QUEUED):
        await asyncio.sleep(0)
    assert len(channel.notes) == MAX_LOG_NOTES_QUEUED // 2
    handler.emit(record(-1))
    await settle()
    channel.release.set()
    await settle()
    texts = [text for _, _, text in channel.notes]
    assert texts[-2:] == [
        "3 log lines dropped (this worker logged faster than the main process read them)",
        "line -1",
    ]
    assert len(texts) == MAX_LOG_NOTES_QUEUED + 2
    assert not handler._queue and handler._sender is None
