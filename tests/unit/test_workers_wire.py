"""The framed request/reply channel between the main process and a worker, over a socketpair."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from agentapi.engine.engine import TunnelStartError
from agentapi.workers.wire import BlockingCaller, Channel, ChannelClosed, RemoteError


async def _pair(handler_a: Any, handler_b: Any) -> tuple[Channel, Channel, list[asyncio.Task[None]]]:
    left, right = socket.socketpair()
    channels = []
    for sock, handler in ((left, handler_a), (right, handler_b)):
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        channels.append(Channel(reader, writer, handler, errors={"TunnelStartError": TunnelStartError}))
    tasks = [asyncio.create_task(channel.serve()) for channel in channels]
    return channels[0], channels[1], tasks


async def test_calls_go_both_ways_at_once_and_errors_come_back_as_their_class() -> None:
    release = asyncio.Event()
    notes: list[Any] = []

    async def worker(kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "slow":
            await release.wait()
            return "slow done"
        if kind == "echo":
            return args
        if kind == "refuse":
            raise TunnelStartError("port taken")
        raise KeyError(kind)

    async def main(kind: str, args: tuple[Any, ...]) -> Any:
        notes.append((kind, args))
        return len(args[0])

    to_worker, to_main, tasks = await _pair(main, worker)
    slow = asyncio.create_task(to_worker.call("slow"))
    # A slow answer holds up nothing else: calls are answered concurrently.
    assert await to_worker.call("echo", {"big": b"x" * 300_000}, 2) == ({"big": b"x" * 300_000}, 2)
    assert await to_main.call("write", [1, 2, 3]) == 3
    await to_main.note("announce", {"type": "captures.stored"})
    with pytest.raises(TunnelStartError, match="port taken"):
        await to_worker.call("refuse")
    with pytest.raises(RemoteError):
        await to_worker.call("nonsense")
    release.set()
    assert await slow == "slow done"
    assert ("announce", ({"type": "captures.stored"},)) in notes

    to_worker.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_a_pending_call_fails_when_the_other_side_goes_away() -> None:
    async def never(kind: str, args: tuple[Any, ...]) -> Any:
        await asyncio.Event().wait()

    to_worker, to_main, tasks = await _pair(never, never)
    pending = asyncio.create_task(to_worker.call("metrics"))
    await asyncio.sleep(0.01)
    to_main.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(ChannelClosed):
        await to_worker.call("metrics")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_blocking_caller_in_a_thread_is_answered_while_the_callers_loop_is_blocked() -> None:
    # A worker's capture writer calls from its thread; its own loop may be blocked meanwhile
    # (CaptureSink.close waits for the writer thread): the answer must not need that loop.
    left, right = socket.socketpair()
    stored: list[Any] = []

    async def main(kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "refuse":
            raise TunnelStartError("no")
        stored.append(args)
        return ["evicted-id"]

    reader, writer = await asyncio.open_unix_connection(sock=right)
    channel = Channel(reader, writer, main)
    serving = asyncio.create_task(channel.serve())
    caller = BlockingCaller(left, errors={"TunnelStartError": TunnelStartError})

    assert await asyncio.to_thread(caller.call, "write", [{"id": "a"}], []) == ["evicted-id"]
    assert stored == [([{"id": "a"}], [])]
    with pytest.raises(TunnelStartError):
        await asyncio.to_thread(caller.call, "refuse")
    channel.close()
    await asyncio.wait_for(serving, 5)
    with pytest.raises(ChannelClosed):
        await asyncio.to_thread(caller.call, "write", [], [])
    left.close()
