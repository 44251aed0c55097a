"""The channel between the main process and one worker: framed, pickled, request/reply.

Two stream sockets per worker (socketpairs made by the supervisor; the worker gets its ends as
inherited file descriptors): the control channel, served on each side's loop (`Channel`), and the
store channel, on which the worker's capture writer thread makes blocking calls (`BlockingCaller`)
that the main process answers on its loop. Capture writes never need the worker's loop: its sink
may block that loop in close() waiting for the writer thread, which must still get its answer.
Every frame, on both, is a 4-byte big-endian length then a pickle of one tuple:

    ("call", id, kind, args)      a request; the other side answers with exactly one reply
    ("note", 0, kind, args)       no answer expected
    ("reply", id, True, value)    the call's result
    ("reply", id, False, (error class name, text))   the call raised

Pickle is safe here: the only peer is our own child (or parent) process, never the network.
Each side handles incoming calls concurrently (one task each), so a slow capture write never holds
up a metrics request. When the socket ends, every pending call fails with `ChannelClosed`.

Main -> worker:  start(definition, name, spec_name, port), stop(name), swap(definition, name,
                 spec_name, port), metrics() -> {tunnel: metrics_merge.state}, ping() -> pid,
                 capture_counts() -> {"dropped": captures its sink did not keep, "cut": captures
                 it kept in part under pressure}, flush() (its pending captures
                 stored, then the reply), close() (listeners closed, captures flushed, then the
                 reply).
Worker -> main:  note announce(message), note log(level, logger name, text) on the control
                 channel; on the store channel
                 write(new, changed) -> evicted ids, write_frames(rows, totals) (the capture
                 store's protocol, engine/capture_sink.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[str, tuple[Any, ...]], Awaitable[Any]]

_HEADER = struct.Struct(">I")
# A capture batch can be large (bodies up to AGENT_CAPTURE_LIMIT each), never unbounded: the sink's
# queue bounds it. This only refuses a corrupt length.
MAX_FRAME = 1 << 31


class ChannelClosed(ConnectionError):
    """The other process is gone (or the channel was closed) before answering."""


class RemoteError(Exception):
    """The other side's handler raised an error this side has no class for."""


class Channel:
    """Request/reply over one stream. `handler(kind, args)` answers the other side's calls;
    `errors` maps error class names to the classes to raise here (others become RemoteError)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        *,
        errors: Mapping[str, type[Exception]] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._errors = dict(errors or {})
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self.closed = False

    async def call(self, kind: str, *args: Any, timeout: float | None = None) -> Any:
        """Ask the other side and wait for its answer. Raises ChannelClosed, TimeoutError, the
        mapped error class or RemoteError."""
        if self.closed:
            raise ChannelClosed(f"{kind}: the channel is closed")
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            await self._send(("call", call_id, kind, args))
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(call_id, None)

    async def note(self, kind: str, *args: Any) -> None:
        """Tell the other side, no answer. Raises ChannelClosed."""
        if self.closed:
            raise ChannelClosed(f"{kind}: the channel is closed")
        await self._send(("note", 0, kind, args))

    async def _send(self, message: tuple[Any, ...]) -> None:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        async with self._write_lock:  # frames never interleave
            try:
                self._writer.write(_HEADER.pack(len(payload)))
                self._writer.write(payload)
                await self._writer.drain()
            except (ConnectionError, RuntimeError) as error:  # RuntimeError: transport closed
                raise ChannelClosed(str(error)) from None

    async def serve(self) -> None:
        """Read frames until the other side ends the stream; then fail every pending call."""
        try:
            while True:
                try:
                    header = await self._reader.readexactly(_HEADER.size)
                    (length,) = _HEADER.unpack(header)
                    if length > MAX_FRAME:
                        log.error("worker channel: frame of %d bytes refused", length)
                        return
                    message = pickle.loads(await self._reader.readexactly(length))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                kind = message[0]
                if kind == "reply":
                    _, call_id, ok, value = message
                    future = self._pending.get(call_id)
                    if future is not None and not future.done():
                        if ok:
                            future.set_result(value)
                        else:
                            name, text = value
                            future.set_exception(self._errors.get(name, RemoteError)(text))
                else:
                    task = asyncio.get_running_loop().create_task(self._answer(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            self.close()

    async def _answer(self, message: tuple[Any, ...]) -> None:
        kind, call_id, name, args = message
        try:
            value = await self._handler(name, args)
        except Exception as error:
            if kind == "note":
                log.exception("worker channel: note %s failed", name)
                return
            reply: tuple[Any, ...] = ("reply", call_id, False, (type(error).__name__, str(error)))
        else:
            if kind == "note":
                return
            reply = ("reply", call_id, True, value)
        try:
            await self._send(reply)
        except ChannelClosed:
            pass  # the caller is gone: nobody to answer

    def close(self) -> None:
        """End the stream; pending calls fail with ChannelClosed."""
        if self.closed:
            return
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed("the other process is gone"))
        self._pending.clear()
        self._writer.close()


class BlockingCaller:
    """Calls on a blocking socket, from one thread at a time (a lock keeps call and reply paired):
    the same frames as `Channel`, answered by a `Channel` on the other side. Raises ChannelClosed
    when the other side is gone, the mapped error class or RemoteError when its handler raised."""

    def __init__(self, sock: socket.socket, *, errors: Mapping[str, type[Exception]] | None = None) -> None:
        self._sock = sock
        self._errors = dict(errors or {})
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, kind: str, *args: Any) -> Any:
        with self._lock:
            call_id = next(self._ids)
            payload = pickle.dumps(("call", call_id, kind, args), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                self._sock.sendall(_HEADER.pack(len(payload)) + payload)
                (length,) = _HEADER.unpack(self._read(_HEADER.size))
                reply = pickle.loads(self._read(length))
            except OSError as error:
                raise ChannelClosed(str(error)) from None
        _, reply_id, ok, value = reply
        if reply_id != call_id:  # never: one call at a time
            raise ChannelClosed(f"reply {reply_id} to call {call_id}")
        if ok:
            return value
        name, text = value
        raise self._errors.get(name, RemoteError)(text)

    def _read(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise ChannelClosed("the other process is gone")
            chunks += chunk
        return bytes(chunks)
