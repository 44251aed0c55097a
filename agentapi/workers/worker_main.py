"""A worker process of `--workers N`: one Engine on its own uvloop loop, driven by the main process.

Started by the supervisor as `python -m agentapi.workers.worker_main FD STORE_FD CONFIG_JSON`
with FD and STORE_FD its ends of the control and store channels (wire.py) and CONFIG_JSON
{"index": i, "captures": bool, "log_level": the main process's agentapi level}. Its log
records go to the main process's log (`ChannelLogHandler`), named for the worker there. It calls
django.setup() for settings only (the same environment as the main process): it opens no database
connection and uses no channel layer. Its CaptureSink's store and announcements go over the
channel to the main process, whose store writes them (one writer for the database and its
running byte total) and whose runtime announces them.

Rules:
- Tunnels: each `start` parses the definition again here (a spec holds compiled CEL and cannot be
  pickled) and binds the main process's address with SO_REUSEPORT (a port-0 tunnel got its port
  there). A file:// tunnel runs its own file server in each worker. Rate-limit and circuit-breaker
  state is per process (each has its own loaded policy), so a limit of R per window lets up to
  R x N through across N processes.
- Lifetime: it exits when the channel ends (the main process is gone, whatever killed it: no
  orphans). SIGINT is ignored (Ctrl-C reaches the whole process group; the main process stops the
  workers in order). `close` from the main process, or SIGTERM sent to this process alone: the
  listeners close, every pending capture is written through the main process, then it exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections import deque
from dataclasses import replace
from typing import Any

from agentapi.engine.capture_sink import CaptureSink
from agentapi.engine.engine import Engine, TunnelExists, TunnelStartError
from agentapi.engine.tunnel_spec import TunnelConfigError, TunnelSpec, parse_definition
from agentapi.engine_settings import engine_limits

from . import metrics_merge
from .wire import BlockingCaller, Channel

log = logging.getLogger("agentapi.workers")


class ForwardingStore:
    """The capture store protocol (engine/capture_sink.CaptureStore and FrameStore) over the store
    channel (wire.py). Runs in the sink's writer thread: each call blocks that thread until the
    main process has stored the batch, never needing this process's loop (raising ChannelClosed
    when the main process is gone; the sink keeps the batch and retries)."""

    def __init__(self, caller: BlockingCaller) -> None:
        self._caller = caller

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        evicted: list[str] = self._caller.call("write", new, changed)
        return evicted

    def write_frames(self, frames: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        self._caller.call("write_frames", frames, totals)


# Log lines waiting for the channel, at most. A worker can log faster than the main process reads
# (a down service at a high request rate logs a 502 per request): past this the lines are counted,
# not kept, and one note says how many were dropped, so a slow reader cannot grow this process.
MAX_LOG_NOTES_QUEUED = 1000


class ChannelLogHandler(logging.Handler):
    """This worker's log records, passed to the main process's log (wherever --log points it) as
    notes, in order, by one sender task; before the channel is up, or after it ends, they go to
    stderr.

    At most MAX_LOG_NOTES_QUEUED lines wait for the channel; lines past that are dropped and
    counted, and a warning "N log lines dropped" takes their place once the queue is down to half
    (or empty), so the main log says that, and how many, lines are missing.
    """

    def __init__(self, channel: Channel, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._channel = channel
        self._loop = loop
        self._queue: deque[tuple[int, str, str]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            self._loop.call_soon_threadsafe(self._send, record.levelno, record.name, text)
        except RuntimeError:  # the loop is closed
            sys.stderr.write(f"{record.name}: {record.getMessage()}\n")
        except Exception:
            self.handleError(record)

    def _send(self, level: int, name: str, text: str) -> None:
        if self._channel.closed:
            sys.stderr.write(f"{name}: {text}\n")
            return
        # Down to half before the count goes out: one note per overflow, not one every other line.
        if self._dropped and len(self._queue) <= MAX_LOG_NOTES_QUEUED // 2:
            self._queue.append(self._dropped_note())
        if len(self._queue) >= MAX_LOG_NOTES_QUEUED:
            self._dropped += 1
            return
        self._queue.append((level, name, text))
        if self._sender is None:
            self._sender = self._loop.create_task(self._send_queued())

    def _dropped_note(self) -> tuple[int, str, str]:
        dropped, self._dropped = self._dropped, 0
        text = f"{dropped} log lines dropped (this worker logged faster than the main process read them)"
        return logging.WARNING, log.name, text

    async def _send_queued(self) -> None:
        try:
            while self._queue or self._dropped:
                level, name, text = self._queue.popleft() if self._queue else self._dropped_note()
                try:
                    await self._channel.note("log", level, name, text)
                except ConnectionError:  # ChannelClosed: the main process is gone
                    sys.stderr.write(f"{name}: {text}\n")
        finally:
            self._sender = None


class Worker:
    def __init__(self, index: int, captures: bool) -> None:
        self.index = index
        self.captures = captures
        self.engine: Engine | None = None
        self.sink: CaptureSink | None = None
        self.channel: Channel | None = None
        self._closed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._by_request = False
        self.public_host = ""

    async def run(self, fd: int, store_fd: int) -> None:
        from django.conf import settings

        from agentapi.tls_identity import https_context

        loop = asyncio.get_running_loop()
        sock = socket.socket(fileno=fd)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
        self.channel = channel = Channel(reader, writer, self.handle)
        logging.getLogger().handlers = [ChannelLogHandler(channel, loop)]
        # The main process parsed each definition first and logged its notices (deprecated keys).
        logging.getLogger("agentapi.engine.tunnel_spec").setLevel(logging.ERROR)
        self.public_host = settings.AGENT_PUBLIC_HOST
        if self.captures:
            caller = BlockingCaller(socket.socket(fileno=store_fd))
            self.sink = CaptureSink(ForwardingStore(caller), self._announce, max_pending=settings.AGENT_CAPTURE_QUEUE)
        self.engine = Engine(
            sink=self.sink,
            reuse_port=True,
            port_owner=False,  # the main process bound it first
            **engine_limits(),
        )
        self.engine.https_context = await asyncio.to_thread(https_context)
        if self.sink is not None:
            self.sink.start()
        self.engine.start()
        loop.add_signal_handler(signal.SIGTERM, self._close_soon)
        serving = loop.create_task(channel.serve())
        closed = loop.create_task(self._closed.wait())
        await asyncio.wait([serving, closed], return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if serving.done():
            # The main process is gone (or closed us after `close`): nobody to store captures for.
            if self._closing is None:
                await self.engine.close()
            return
        if not self._by_request:  # SIGTERM to this process alone: done, tell the main process
            channel.close()
        await serving  # after `close` the main process ends the channel once it has the reply

    async def _announce(self, message: dict[str, Any]) -> None:
        assert self.channel is not None
        await self.channel.note("announce", message)

    def _close_soon(self) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        """Listeners first, then every pending capture (stored through the main process)."""
        assert self.engine is not None
        await self.engine.close()
        if self.sink is not None:
            try:
                await self.sink.close()
            except Exception:  # the main process went away mid-flush: these captures go with it
                log.exception("worker %d: flushing captures failed", self.index)
        self._closed.set()

    async def handle(self, kind: str, args: tuple[Any, ...]) -> Any:
        """Answer one request of the main process (wire.py lists them)."""
        engine = self.engine
        assert engine is not None
        if kind == "ping":
            return os.getpid()
        if kind == "metrics":
            return {tunnel.name: metrics_merge.state(tunnel.metrics) for tunnel in engine.tunnels()}
        if kind == "capture_counts":  # asked with each ping: the storage line adds every process's
            sink = self.sink
            return {"dropped": sink.dropped, "cut": sink.cut} if sink is not None else {"dropped": 0, "cut": 0}
        if kind == "flush":
            if self.sink is not None:
                await self.sink.flush()
            return None
        if kind == "start":
            await engine.start_tunnel(_spec(*args, public_host=self.public_host))
            return None
        if kind == "swap":
            return await engine.swap_policy(_spec(*args, public_host=self.public_host)) is not None
        if kind == "stop":
            try:
                await engine.stop_tunnel(args[0])
            except KeyError:
                return False
            return True
        if kind == "close":
            self._by_request = True
            self._close_soon()
            assert self._closing is not None
            await asyncio.shield(self._closing)
            return None
        raise ValueError(f"unknown request {kind!r}")


def _spec(definition: dict[str, Any], name: str, spec_name: str, port: int, *, public_host: str) -> TunnelSpec:
    """The spec the main process runs as `spec_name`, on the port it bound. Raises TunnelConfigError."""
    chosen: TunnelSpec | None = None
    for spec in parse_definition(definition, name=name, public_host=public_host):
        if spec.name == spec_name and chosen is None:
            chosen = spec
        elif spec.policy is not None:
            spec.policy.close()
    if chosen is None:
        raise TunnelConfigError(f"the definition has no tunnel {spec_name!r}")
    return replace(chosen, listen_port=port) if port else chosen


# Errors the main process maps back to its own classes (wire.Channel's `errors`).
ERRORS: dict[str, type[Exception]] = {cls.__name__: cls for cls in (TunnelConfigError, TunnelStartError, TunnelExists)}


def main(argv: list[str]) -> None:
    fd, store_fd, config = int(argv[1]), int(argv[2]), json.loads(argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()
    # stderr (Django's LOGGING) until the channel is up; then the main process's log, at its
    # level for the agent's own loggers (as management/commands/agent.py sets it there).
    logging.getLogger("agentapi").setLevel(int(config.get("log_level", logging.WARNING)))
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(Worker(int(config["index"]), bool(config["captures"])).run(fd, store_fd))
    # No waiting on the capture writer thread: with the main process gone it may be blocked on an
    # answer that never comes, and a worker must never outlive the agent.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
