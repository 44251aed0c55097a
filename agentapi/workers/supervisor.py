"""The main process's side of `--workers N`: starts the N-1 worker processes, fans tunnel changes
out to them, stores their captures, gathers their metrics, restarts one that dies.

Rules (the runtime calls these under its own lock, after its own engine did the same):
- A tunnel is started only when every live worker has it: `start_tunnel` sends the definition and
  the port the main process bound (with SO_REUSEPORT) to each worker; a refusal stops it in the
  workers that took it and raises (the runtime then stops it in its own engine). A worker that is
  down meanwhile gets it when it is restarted (`orders` are replayed, in the order given).
- `stop_tunnel` closes it in every worker; `swap_policy` swaps the Traffic Policy in each.
- Captures: a worker's sink calls `write`/`write_frames` over its store channel; they run here on one
  thread of their own through `SerialStore`, whose lock the main sink's writer takes too, so the
  store (not thread-safe, keeping the running byte total) has one writer at a time. A worker's
  `announce` goes to the runtime's announce: the inspector, the console and the channel layer
  see every process's captures.
- Death: a worker whose channel ends while the agent runs is logged and started again with the
  running tunnels (its open connections were lost, no others); retried with a growing pause
  (0.5 s to 10 s) if it cannot start, or if it died within 10 s of its start (a crash loop). A
  tunnel a restarted worker refuses is logged and left to the processes that run it. A worker
  that does not answer a ping in PING_TIMEOUT (hung, stopped) is killed, then started again. `close()` asks each worker to close its listeners and
  flush its captures (stored here), then ends the channel; one that does not exit in time is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentapi.engine.capture_sink import CaptureStore
from agentapi.engine.engine import TunnelExists, TunnelStartError
from agentapi.engine.tunnel_spec import TunnelConfigError

from .metrics_merge import State
from .wire import Channel, ChannelClosed, RemoteError

log = logging.getLogger(__name__)

Announce = Callable[[dict[str, Any]], Awaitable[None]]

# django.setup() and the imports take about a second on an idle machine; much longer when loaded.
START_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0
METRICS_TIMEOUT = 2.0
ANNOUNCE_TIMEOUT = 2.0  # as engine/capture_sink.py's
EXIT_TIMEOUT = 10.0
# A worker that dies within STEADY_AFTER of its start waits before the next: RESTART_PAUSE, doubled
# each time it happens again, at most RESTART_PAUSE_MAX. One that lived longer starts at once.
STEADY_AFTER = 10.0
# Every PING_INTERVAL each worker is asked for its pid; one that has not answered in PING_TIMEOUT
# (its loop blocked, the process stopped) is killed and started again: the kernel keeps giving a
# hung worker its share of the connections, and every flush before a list would wait for it.
PING_INTERVAL = 5.0
PING_TIMEOUT = 10.0
RESTART_PAUSE = 0.5
RESTART_PAUSE_MAX = 10.0
ERRORS: dict[str, type[Exception]] = {cls.__name__: cls for cls in (TunnelConfigError, TunnelStartError, TunnelExists)}


@dataclass(frozen=True)
class TunnelOrder:
    """What a worker needs to run a tunnel as the main process does: the definition and name as
    given to parse_definition, which of its specs (`spec_name`), and the port bound (0: none)."""

    definition: dict[str, Any]
    name: str
    spec_name: str
    port: int

    @property
    def args(self) -> tuple[Any, ...]:
        return (self.definition, self.name, self.spec_name, self.port)


class SerialStore:
    """A capture store (engine/capture_sink.CaptureStore + FrameStore) behind one lock, so the
    main sink's writer thread and the workers' writes take turns."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        with self._lock:
            evicted: list[str] = self._store.write(new, changed)
            return evicted

    def write_frames(self, frames: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        with self._lock:
            self._store.write_frames(frames, totals)


@dataclass(eq=False)
class WorkerProcess:
    index: int  # 1..N-1 (the main process is 0)
    pid: int
    proc: asyncio.subprocess.Process
    channel: Channel  # control: both ways, on the loops
    serving: asyncio.Task[None]
    store_channel: Channel  # the worker's capture writer's calls
    started_at: float = field(default_factory=time.monotonic)
    pause: float = 0.0  # the pause before this start (0: the first, or after a steady run)
    captures_dropped: int = 0  # as the worker last said (its sink's count, since it started)
    captures_cut: int = 0  # likewise: captures its sink kept in part (a message cut under pressure)


class WorkerSupervisor:
    def __init__(self, count: int, *, store: CaptureStore | None, announce: Announce) -> None:
        """`count` worker processes (the agent's --workers minus the main process). `store`: the
        SerialStore their captures go to, None for no captures (inspect_db_size -1)."""
        self.count = count
        self._store = store
        self._announce = announce
        self._workers: dict[int, WorkerProcess] = {}
        self.orders: dict[str, TunnelOrder] = {}  # by spec name, in start order
        self._lock = asyncio.Lock()
        self._closing = False
        self._watchers: set[asyncio.Task[None]] = set()
        self._store_tasks: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-captures")
        self._watchdog: asyncio.Task[None] | None = None
        self.restarts = 0
        self._dropped_before = 0  # captures dropped by worker processes that have exited
        self._cut_before = 0  # and cut by them

    @property
    def captures_dropped(self) -> int:
        """Captures the workers' sinks did not keep (their bounds: the main process's store was
        not keeping up), as of their last answers (every PING_INTERVAL), exited workers included."""
        return self._dropped_before + sum(worker.captures_dropped for worker in self._workers.values())

    @property
    def captures_cut(self) -> int:
        """Captures the workers' sinks kept in part (each message cut to the sink's pressure
        limit while the main process's store was behind), as of their last answers."""
        return self._cut_before + sum(worker.captures_cut for worker in self._workers.values())

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids, by index."""
        return [self._workers[index].pid for index in sorted(self._workers)]

    async def start(self) -> None:
        """Start every worker and wait until each answers. Raises RuntimeError."""
        async with self._lock:
            for index in range(1, self.count + 1):
                self._workers[index] = await self._spawn(index)
        self._watchdog = asyncio.get_running_loop().create_task(self._ping_forever(), name="workers-watchdog")

    async def _spawn(self, index: int) -> WorkerProcess:
        from django.conf import settings

        base = str(Path(settings.BASE_DIR))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (base, env.get("PYTHONPATH", "")) if p)
        parent, child = socket.socketpair()
        store_parent, store_child = socket.socketpair()
        config = json.dumps(
            {
                "index": index,
                "captures": self._store is not None,
                "log_level": logging.getLogger("agentapi").getEffectiveLevel(),
            }
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentapi.workers.worker_main",
                str(child.fileno()),
                str(store_child.fileno()),
                config,
                pass_fds=(child.fileno(), store_child.fileno()),
                env=env,
                cwd=base,
            )
        except BaseException:
            parent.close()
            store_parent.close()
            raise
        finally:
            child.close()
            store_child.close()
        holder: list[WorkerProcess] = []

        async def handle(kind: str, args: tuple[Any, ...]) -> Any:
            return await self._handle(holder[0] if holder else None, kind, args)

        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
        channel = Channel(reader, writer, handle, errors=ERRORS)
        store_reader, store_writer = await asyncio.open_unix_connection(sock=store_parent, limit=1 << 20)
        store_channel = Channel(store_reader, store_writer, handle)
        loop = asyncio.get_running_loop()
        serving = loop.create_task(channel.serve(), name=f"worker-{index}")
        store_serving = loop.create_task(store_channel.serve(), name=f"worker-{index}-store")
        try:
            pid = await channel.call("ping", timeout=START_TIMEOUT)
        except (ChannelClosed, TimeoutError, RemoteError) as error:
            channel.close()
            store_channel.close()
            await _end(proc)
            raise RuntimeError(f"worker {index} did not start: {error or type(error).__name__}") from None
        except BaseException:  # cancelled (the agent is closing): leave nothing running
            channel.close()
            store_channel.close()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        worker = WorkerProcess(
            index=index, pid=pid, proc=proc, channel=channel, serving=serving, store_channel=store_channel
        )
        # The store channel ends with the process; its task ends with it.
        self._store_tasks.add(store_serving)
        store_serving.add_done_callback(self._store_tasks.discard)
        holder.append(worker)
        watcher = asyncio.get_running_loop().create_task(self._watch(worker), name=f"worker-{index}-watch")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return worker

    async def _handle(self, worker: WorkerProcess | None, kind: str, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        if kind == "write" and self._store is not None:
            return await loop.run_in_executor(self._executor, self._store.write, *args)
        if kind == "write_frames" and self._store is not None:
            write_frames = getattr(self._store, "write_frames", None)
            if write_frames is not None:
                await loop.run_in_executor(self._executor, write_frames, *args)
            return None
        if kind == "log":
            level, name, text = args
            logging.getLogger(name).log(level, "worker %s (pid %s): %s", worker.index if worker else "?",
                                        worker.pid if worker else "?", text)  # fmt: skip
            return None
        if kind == "announce":
            # Bounded as the sink bounds its own: a slow channel layer must not pile up tasks here.
            try:
                async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                    await self._announce(args[0])
            except TimeoutError:
                log.warning("announcing a worker's captures took over %g s", ANNOUNCE_TIMEOUT)
            return None
        raise ValueError(f"unknown request {kind!r} from worker {worker.index if worker else '?'}")

    # --- tunnels ------------------------------------------------------------------------------
    async def start_tunnel(self, order: TunnelOrder) -> None:
        """Run `order` in every worker. Raises TunnelStartError, TunnelConfigError, TunnelExists
        (a worker refused it; the workers that took it have stopped it)."""
        async with self._lock:
            self.orders[order.spec_name] = order  # a worker restarted meanwhile takes it too
            done: list[WorkerProcess] = []
            try:
                for worker in list(self._workers.values()):
                    try:
                        await worker.channel.call("start", *order.args, timeout=CALL_TIMEOUT)
                    except ChannelClosed:
                        continue  # it died: its restart replays the orders, this one included
                    except (TimeoutError, RemoteError) as error:
                        raise TunnelStartError(f"worker {worker.index} could not start the tunnel: {error}") from None
                    done.append(worker)
            except BaseException:
                self.orders.pop(order.spec_name, None)
                for worker in done:
                    with contextlib.suppress(Exception):
                        await worker.channel.call("stop", order.spec_name, timeout=CALL_TIMEOUT)
                raise

    async def stop_tunnel(self, spec_name: str) -> None:
        """Close the tunnel in every worker (those that do not run it say so; no error)."""
        async with self._lock:
            self.orders.pop(spec_name, None)
            for worker in list(self._workers.values()):
                try:
                    await worker.channel.call("stop", spec_name, timeout=CALL_TIMEOUT)
                except (ChannelClosed, TimeoutError, RemoteError) as error:
                    log.warning("worker %d: stopping %s failed: %s", worker.index, spec_name, error)

    async def swap_policy(self, order: TunnelOrder) -> None:
        """Swap the tunnel's Traffic Policy in every worker (the main process already did, so its
        actions prepared; a worker that fails is logged and restarted with the new definition)."""
        async with self._lock:
            self.orders[order.spec_name] = order
            for worker in list(self._workers.values()):
                try:
                    swapped = await worker.channel.call("swap", *order.args, timeout=CALL_TIMEOUT)
                except ChannelClosed:
                    continue
                except Exception as error:
                    swapped = error
                if swapped is not True:
                    log.warning(
                        "worker %d: policy swap of %s failed (%s); restarting it", worker.index, order.name, swapped
                    )
                    worker.proc.kill()

    async def flush(self) -> None:
        """Every worker's pending captures stored (here) before this returns; a worker that is down
        or does not answer in CALL_TIMEOUT is passed over (logged)."""
        workers = list(self._workers.values())
        answers = await asyncio.gather(
            *(worker.channel.call("flush", timeout=CALL_TIMEOUT) for worker in workers), return_exceptions=True
        )
        for worker, answer in zip(workers, answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, ChannelClosed):
                log.warning("worker %d: flushing captures failed: %s", worker.index, answer)

    # --- metrics ------------------------------------------------------------------------------
    async def metrics(self) -> list[tuple[int, dict[str, State]]]:
        """(pid, {tunnel name: metrics_merge.state}) of each live worker; one that does not answer
        within METRICS_TIMEOUT is left out."""
        workers = list(self._workers.values())
        answers = await asyncio.gather(
            *(worker.channel.call("metrics", timeout=METRICS_TIMEOUT) for worker in workers), return_exceptions=True
        )
        return [
            (worker.pid, answer) for worker, answer in zip(workers, answers, strict=True) if isinstance(answer, dict)
        ]

    # --- lifetime -----------------------------------------------------------------------------
    async def _watch(self, worker: WorkerProcess) -> None:
        await asyncio.wait([worker.serving])  # not `await`: cancelling the watcher must not end the channel
        worker.store_channel.close()
        status = await _end(worker.proc)
        self._dropped_before += worker.captures_dropped  # its successor counts from zero
        self._cut_before += worker.captures_cut
        worker.captures_dropped = worker.captures_cut = 0
        if self._closing:
            return
        log.warning(
            "worker %d (pid %d) exited with status %s; starting it again with %d tunnels",
            worker.index,
            worker.pid,
            status,
            len(self.orders),
        )
        # A worker that dies soon after it started (a crash that comes back) waits longer each
        # time, so a crash loop costs a process start every RESTART_PAUSE_MAX, not a core.
        lived = time.monotonic() - worker.started_at
        pause = 0.0 if lived >= STEADY_AFTER else min(max(worker.pause * 2, RESTART_PAUSE), RESTART_PAUSE_MAX)
        if pause:
            log.warning("worker %d lived %.1f s: waiting %g s before starting it", worker.index, lived, pause)
        while not self._closing:
            await asyncio.sleep(pause)
            async with self._lock:
                if self._closing or self._workers.get(worker.index) is not worker:
                    return
                try:
                    fresh = await self._spawn(worker.index)
                except Exception as error:
                    log.warning("worker %d could not start: %s", worker.index, error)
                else:
                    fresh.pause = pause
                    self._workers[worker.index] = fresh
                    await self._replay_orders(fresh)
                    self.restarts += 1
                    log.warning("worker %d started again (pid %d)", worker.index, fresh.pid)
                    return
            pause = min(max(pause * 2, RESTART_PAUSE), RESTART_PAUSE_MAX)

    async def _replay_orders(self, worker: WorkerProcess) -> None:
        """Start the running tunnels in a restarted worker. One it refuses (its crt/key file went
        away since the main process loaded it, say) is logged and left to the processes that run
        it: refusing the whole worker would only start it again, and again, for ever."""
        for order in list(self.orders.values()):
            try:
                await worker.channel.call("start", *order.args, timeout=CALL_TIMEOUT)
            except ChannelClosed:
                return  # it died again: its watcher starts it again
            except TimeoutError:
                log.warning("worker %d did not start tunnel %s in time; ending it", worker.index, order.spec_name)
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()  # its watcher starts it again
                return
            except Exception as error:
                log.warning(
                    "worker %d cannot run tunnel %s (%s); the other processes serve it",
                    worker.index,
                    order.spec_name,
                    error,
                )

    async def _ping_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(PING_INTERVAL)
            workers = [worker for worker in self._workers.values() if not worker.channel.closed]
            answers = await asyncio.gather(
                *(worker.channel.call("ping", timeout=PING_TIMEOUT) for worker in workers), return_exceptions=True
            )
            # The drop counts only of those that answered: a hung worker is ended PING_TIMEOUT
            # after its ping, not after a second wait.
            answered = [w for w, answer in zip(workers, answers, strict=True) if not isinstance(answer, BaseException)]
            counts = await asyncio.gather(
                *(worker.channel.call("capture_counts", timeout=PING_TIMEOUT) for worker in answered),
                return_exceptions=True,
            )
            for worker, count in zip(answered, counts, strict=True):
                if isinstance(count, dict):
                    worker.captures_dropped = count["dropped"]
                    worker.captures_cut = count["cut"]
            for worker, answer in zip(workers, answers, strict=True):
                if isinstance(answer, TimeoutError) and not self._closing:
                    log.warning(
                        "worker %d (pid %d) did not answer for %g s; ending it", worker.index, worker.pid, PING_TIMEOUT
                    )
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.kill()  # its watcher starts it again

    async def close(self) -> None:
        """Close every worker: listeners, then their pending captures (stored here), then exit."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for watcher in list(self._watchers):  # a restart under way gives the lock back now
            watcher.cancel()
        async with self._lock:
            workers = list(self._workers.values())
            await asyncio.gather(*(self._close_one(worker) for worker in workers))
            self._workers.clear()
        self._executor.shutdown(wait=True)

    async def _close_one(self, worker: WorkerProcess) -> None:
        try:
            await worker.channel.call("close", timeout=CALL_TIMEOUT)
        except (ChannelClosed, TimeoutError, RemoteError) as error:
            log.warning("worker %d did not close in order: %s", worker.index, error)
        worker.channel.close()
        worker.store_channel.close()
        await _end(worker.proc)


async def _end(proc: asyncio.subprocess.Process) -> int | None:
    """Wait for the process to exit; kill it after EXIT_TIMEOUT. Its exit status."""
    try:
        async with asyncio.timeout(EXIT_TIMEOUT):
            return await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()
