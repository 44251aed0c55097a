"""Hands captures from the proxy to the database without ever making the proxy wait.

The proxy calls `record()` when an exchange starts and again when it completes; both only queue
the record (no waiting). Rules:
- A completed record is stored as soon as the writer thread is free, but batches start at least
  `batch_delay` apart: while one batch is being written (or that pause runs) the next
  accumulates, so batches grow with the load, and after a quiet spell a capture is stored and
  announced within a few milliseconds. The announcement follows the batch's commit at once.
- A record not complete yet waits up to `flush_interval` (a long request still appears while it is
  pending): an exchange that completes within it costs one INSERT, never an INSERT and an UPDATE.
- The loop never copies a batch in one go: a completed record no longer changes, so its row and
  its summary are built in the writer thread, sharing the record's body buffers (no copy); only a
  record still in progress is copied on the loop (its bytes would change under the thread).
- Bounded: past `max_pending` queued records or `max_pending_bytes` of capture bytes held (queued
  or being written) new captures are dropped and counted (`dropped`), their waiters told, and
  forwarding goes on; a capture dropped once stays dropped. The update of a row that exists is
  always taken (dropping it would leave a row that claims to be pending forever).
- Before that, under pressure (more than half of `max_pending_bytes` held), a new capture keeps at
  most `pressure_capture_limit` bytes of each message (`CaptureRecord.cut_to`; its true sizes stay,
  so it says it was cut): while large bodies outrun the database the list stays whole, every
  request shown with its head, rather than short of the captures dropped.
- A failed batch (database down, disk full) is queued again and retried after `_RETRY_SECONDS`;
  inserts are upserts, so a batch that did reach the database is harmless to write again.
- The store may block (a worker's store forwards over a pipe): it only ever runs in the one writer
  thread, one batch at a time.

WebSocket frames come later than their capture (the record is complete at the 101): the proxy
calls `frames(record)` when a captured WebSocket recorded new frames (and `final=True` when its pipe
closed). They are taken up to `flush_interval` later (at once when final), after the batch's
captures are stored (a capture's row is always there before its frames), and the writer thread
stores them with the connection's counters through the store's `write_frames`; one `frames.added`
message names the captures that grew. Frames of a capture that was never stored (dropped) are
dropped with it.

A row carries the capture's Traffic Policy trace as plain dicts, and `policy_action`: the action
that answered instead of the service (the trace's terminal entry), what the inspector's "blocked by
policy" filter and list mark read without opening the trace.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .capture_record import CaptureRecord
from .policy.trace import TraceEntry
from .websocket_frames import Frame

log = logging.getLogger(__name__)

Announce = Callable[[dict[str, Any]], Awaitable[None]]

_RETRY_SECONDS = 1.0
_ANNOUNCE_SECONDS = 2.0
_DROPPED = "the capture queue is full: the database is not keeping up"
# The least time between the starts of two batches: each commit costs ~0.2 ms in SQLite however
# few its rows (the leaf pages of the table and its indexes go to the WAL again), so a steady
# trickle is gathered into at most 50 transactions a second.
BATCH_DELAY = 0.02
# Capture bytes the sink may hold before new captures are dropped: the count bound alone let
# 20,000 pending 1 MiB captures take 20 GB.
MAX_PENDING_BYTES = 64 * 1024 * 1024
# What a new capture keeps of each message while more than half of that is held: room for any head
# (llhttp's default bound is 80 KiB, but heads past a few KiB are rare) and the start of the body.
PRESSURE_CAPTURE_LIMIT = 64 * 1024


class CaptureStore(Protocol):
    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        """Store rows in one transaction; return the ids evicted to stay within budget."""


class FrameStore(Protocol):
    def write_frames(self, frames: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        """Store WebSocket frame rows and upsert per-connection counters (rows whose capture is
        gone are skipped)."""


# What the writer thread turns into a row: a completed record itself, or the row of one still
# in progress, snapshot on the loop.
_Pending = CaptureRecord | dict[str, Any]


class CaptureSink:
    """The queue between the proxy and `store` (module docstring for its rules).

    `announce(message)` is awaited on the loop after each stored batch: {"type":
    "captures.stored", "created": [summary...], "updated": [summary...], "evicted": [ids]} and
    {"type": "frames.added", "ids": [capture ids]}. `flush_interval` (seconds): how long a record
    not complete yet, and new WebSocket frames, wait before they are stored; `batch_delay`
    (seconds): the least time between the starts of two batches."""

    def __init__(
        self,
        store: CaptureStore,
        announce: Announce | None = None,
        *,
        max_pending: int = 20000,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        flush_interval: float = 0.05,
        batch_delay: float = BATCH_DELAY,
        pressure_capture_limit: int = PRESSURE_CAPTURE_LIMIT,
    ) -> None:
        self._store = store
        self._announce = announce
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._pressure_bytes = max_pending_bytes // 2
        self._pressure_limit = pressure_capture_limit
        self.cut = 0  # captures cut to `pressure_capture_limit` under pressure
        self._flush_interval = flush_interval
        self._batch_delay = batch_delay
        self._last_batch = float("-inf")  # loop time the run task last took a batch
        # Completed records (and rows that exist and changed): the next batch takes them all.
        self._ready: dict[str, CaptureRecord] = {}
        # Records still in progress, in the order they came (`record.due`: when they must go).
        self._waiting: dict[str, CaptureRecord] = {}
        self._held_bytes = 0  # capture bytes of the records queued or being written
        self._writing: set[str] = set()  # ids of the batch being written
        self._frames: dict[str, CaptureRecord] = {}  # WebSockets with frames or counters to store
        self._frames_due = 0.0  # loop time by which waiting frames are stored
        self._wake = asyncio.Event()
        # Armed at (or before) the earliest deadline of what waits: a request's start then costs
        # no wake-up of the run task (most complete before it fires).
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="capture-writer", initializer=name_os_thread, initargs=("capture-writer",)
        )
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a record's `saved` flag must be set before it is taken again.
        self._flushing = asyncio.Lock()
        self._closing = False
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="capture-sink")
        # The writer thread is made now rather than at the first batch: a thread takes its
        # creator's CPU affinity, so one made now is not bound by a later pinning of the loop's
        # thread alone (`taskset -p CPU PID`): the writer then runs on another core.
        self._executor.submit(int)

    def record(self, record: CaptureRecord) -> None:
        """Queue `record` to be stored (called at the exchange's start and at its end); no waiting."""
        if record.dropped:
            _settle(record, CaptureDropped(_DROPPED))
            return
        capture_id = record.id
        queued = capture_id in self._ready or capture_id in self._waiting
        if (
            self._held_bytes > self._pressure_bytes
            and record.limit > self._pressure_limit
            and not queued
            and not record.saved
            and capture_id not in self._writing
        ):
            record.cut_to(self._pressure_limit)
            self.cut += 1
        size = record.stored_size
        others = self._held_bytes - record.held_bytes
        # A row that exists, or is being written, always takes its update; one capture alone is
        # never too big (the capture limit bounds it).
        if (
            not record.saved
            and capture_id not in self._writing
            and (
                (not queued and len(self._ready) + len(self._waiting) >= self._max_pending)
                or (others and others + size > self._max_pending_bytes)
            )
        ):
            self._drop(record)
            return
        self._held_bytes = others + size
        record.held_bytes = size
        if record.complete:
            if queued:
                self._waiting.pop(capture_id, None)
            self._ready[capture_id] = record
            self._wake.set()
        elif not queued:
            due = record.due = asyncio.get_running_loop().time() + self._flush_interval
            self._waiting[capture_id] = record
            if self._timer is None:
                self._arm(due)

    def _drop(self, record: CaptureRecord) -> None:
        self._ready.pop(record.id, None)
        self._waiting.pop(record.id, None)
        self._held_bytes -= record.held_bytes
        record.held_bytes = 0
        record.dropped = True
        self.dropped += 1
        if self.dropped % 1000 == 1:
            log.warning("capture queue full: %d captures dropped so far", self.dropped)
        _settle(record, CaptureDropped(_DROPPED))

    def frames(self, record: CaptureRecord, *, final: bool = False) -> None:
        """A captured WebSocket recorded new frames (`final`: its pipe closed); no waiting."""
        if not self._frames:
            self._frames_due = asyncio.get_running_loop().time() + self._flush_interval
            if self._timer is None:
                self._arm(self._frames_due)
        if record.id not in self._frames:
            self._frames[record.id] = record
        if final:
            self._frames_due = 0.0
            self._wake.set()

    async def stored(self, record: CaptureRecord) -> None:
        """Wait until the completed record is in the database (replay answers after that).
        Raises CaptureDropped when the queue is full, or the store's error when its batch failed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record.waiters.append(future)
        self.record(record)
        await future

    async def flush(self) -> None:
        """Store what is pending now, records in progress and frames too (the API lists right
        after a request and expects to see it)."""
        await self._flush(everything=True)

    async def close(self) -> None:
        """Store everything pending, then stop the writer thread. A batch being written when
        close is called is waited for (its waiters settled), never abandoned mid-write."""
        self._closing = True
        if self._task is not None:
            async with self._flushing:  # the run task is not inside a write while this is held
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass
            self._task = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._ready or self._waiting or self._frames:
            await self._flush(everything=True)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._wake.clear()
            if not self._ready:
                due = self._next_due()
                if due is None or due > loop.time():
                    timer = self._timer
                    if due is not None and (timer is None or timer.when() > due):
                        if timer is not None:
                            timer.cancel()
                        self._arm(due)
                    await self._wake.wait()
                    continue  # woken: look again (a deadline that moved is no reason to write)
            # At most one batch per `batch_delay`: a steady trickle of requests is not one
            # transaction each. After a quiet spell the first record goes at once.
            pause = self._last_batch + self._batch_delay - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            self._last_batch = loop.time()
            try:
                await self._flush(everything=False)
            except Exception:  # the writer must outlive a bad batch (database down, disk full)
                log.exception("storing captures failed; retrying in %g s", _RETRY_SECONDS)
                await asyncio.sleep(_RETRY_SECONDS)

    def _arm(self, due: float) -> None:
        self._timer = asyncio.get_running_loop().call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._wake.set()

    def _next_due(self) -> float | None:
        """Loop time at which a waiting record or waiting frames must be stored, None for none."""
        due = None
        if self._waiting:
            due = next(iter(self._waiting.values())).due  # the oldest: they queue in order
        if self._frames and (due is None or self._frames_due < due):
            due = self._frames_due
        return due

    async def _flush(self, *, everything: bool) -> None:
        async with self._flushing:
            messages = [await self._flush_batch(everything), await self._flush_frames(everything)]
        # Outside the lock, bounded: a slow channel layer must not hold up storing or listing.
        for message in messages:
            if message is None or self._announce is None:
                continue
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation,
                # which left close() waiting forever for this task.
                async with asyncio.timeout(_ANNOUNCE_SECONDS):
                    await self._announce(message)
            except Exception:  # the channel layer being down must not stop captures
                log.exception("announcing captures failed")

    def _take(self, everything: bool) -> list[CaptureRecord]:
        """The next batch: every completed record, and the records in progress that are due."""
        batch = list(self._ready.values())
        self._ready = {}
        waiting = self._waiting
        if everything:
            batch += waiting.values()
            self._waiting = {}
        elif waiting:
            now = asyncio.get_running_loop().time()
            due: list[str] = []
            for capture_id, record in waiting.items():
                if record.due > now:
                    break  # the rest came later
                due.append(capture_id)
                batch.append(record)
            for capture_id in due:
                del waiting[capture_id]
        return batch

    async def _flush_batch(self, everything: bool) -> dict[str, Any] | None:
        records = self._take(everything)
        if not records:
            return None
        # New or changed is decided here, on the loop, where `saved` is set; rows of records in
        # progress are snapshot now, completed ones in the writer thread.
        new: list[_Pending] = []
        changed: list[_Pending] = []
        for record in records:
            (changed if record.saved else new).append(record if record.complete else _snapshot(record))
        loop = asyncio.get_running_loop()
        self._writing = {record.id for record in records}
        try:
            created, updated, evicted = await loop.run_in_executor(self._executor, self._write, new, changed)
        except Exception as error:
            # Keep the records for the next try; whoever waits hears of the failure now.
            for record in records:
                _settle(record, error)
                self._requeue(record)
            self._wake.set()
            raise
        finally:
            self._writing = set()
            for record in records:
                if record.id not in self._ready and record.id not in self._waiting:
                    self._held_bytes -= record.held_bytes
                    record.held_bytes = 0
        for record in records:
            record.saved = True
            if record.complete:
                _settle(record, None)
        return {"type": "captures.stored", "created": created, "updated": updated, "evicted": evicted}

    def _requeue(self, record: CaptureRecord) -> None:
        """A record of a failed batch goes back in the queue (unless it was queued again meanwhile
        or the queue is full: then it is dropped, as a new one would be)."""
        capture_id = record.id
        if capture_id in self._ready or capture_id in self._waiting:
            return
        if len(self._ready) + len(self._waiting) >= self._max_pending:
            if not record.saved:
                self._drop(record)
            return
        if record.complete:
            self._ready[capture_id] = record
        else:
            record.due = 0.0
            self._waiting[capture_id] = record

    def _write(
        self, new: list[_Pending], changed: list[_Pending]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        """In the writer thread: rows, the store's transaction, then the batch's summaries."""
        new_rows = [_row(item) for item in new]
        changed_rows = [_row(item) for item in changed]
        evicted = self._store.write(new_rows, changed_rows)
        return [_summary(row) for row in new_rows], [_summary(row) for row in changed_rows], evicted

    async def _flush_frames(self, everything: bool) -> dict[str, Any] | None:
        """Store the frames recorded since the last flush, for captures whose row exists."""
        if not self._frames:
            return None
        if not everything and self._frames_due > asyncio.get_running_loop().time():
            return None
        waiting, self._frames = self._frames, {}
        rows: list[dict[str, Any]] = []
        totals: list[dict[str, Any]] = []
        for capture_id, record in waiting.items():
            recorder = record.websocket
            if recorder is None:
                continue
            if not record.saved:
                if not record.dropped and (capture_id in self._ready or capture_id in self._waiting):
                    self._frames[capture_id] = record  # its row is still to be written: next time
                else:
                    recorder.take()  # the capture was dropped: so are its frames
                continue
            rows += [_frame_row(capture_id, frame) for frame in recorder.take()]
            totals.append({"capture_id": capture_id, **recorder.totals()})
        if self._frames:  # held back behind their capture's row
            self._frames_due = asyncio.get_running_loop().time() + self._flush_interval
        write_frames = getattr(self._store, "write_frames", None)
        if not totals or write_frames is None:
            return None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, write_frames, rows, totals)
        return {"type": "frames.added", "ids": [row["capture_id"] for row in totals]}


class CaptureDropped(Exception):
    pass


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` (at most 15 bytes) where the system shows threads (Linux:
    top -H, ps -L, perf, py-spy), so the capture writer is told apart from the event loop;
    elsewhere, or when /proc is not writable, nothing happens (Python 3.11 names only its own
    Thread objects)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def _settle(record: CaptureRecord, error: BaseException | None) -> None:
    for waiter in record.waiters:
        if not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
    record.waiters.clear()


def _row(item: _Pending) -> dict[str, Any]:
    return _snapshot(item) if isinstance(item, CaptureRecord) else item


def _snapshot(record: CaptureRecord) -> dict[str, Any]:
    """The row of `record` (the store's shape). A completed record's body buffers are shared,
    not copied (it no longer changes: 1 MiB copies cost more than writing them); those of a
    record in progress are copied, as the proxy still appends to them."""
    response = record.response_raw
    trace = record.policy_trace
    if record.complete:
        request_raw: bytes | bytearray = record.request_raw
        response_raw: bytes | bytearray | None = response
    else:
        request_raw = bytes(record.request_raw)
        response_raw = bytes(response) if response is not None else None
    return {
        "id": record.id,
        "tunnel_name": record.tunnel_name,
        "remote_addr": record.remote_addr,
        "start": record.start,
        "duration_ns": record.duration_ns,
        "method": record.method,
        "uri": record.uri,
        "request_raw": request_raw,
        "request_size": record.request_size,
        "response_raw": response_raw,
        "response_size": record.response_size if response is not None else None,
        "status_code": record.status_code if record.complete else None,
        "stored_size": record.stored_size,
        "replay_of": record.replay_of,
        "request_complete": record.request_complete,
        "response_complete": record.response_complete,
        "incomplete_reason": record.incomplete_reason,
        # Plain dicts (the store writes them as JSON); the list is copied, the entries are frozen.
        "policy_trace": [entry.as_json() for entry in trace] if trace else [],
        "policy_action": policy_action(trace) if trace else "",
    }


def _frame_row(capture_id: str, frame: Frame) -> dict[str, Any]:
    return {
        "capture_id": capture_id,
        "seq": frame.seq,
        "direction": frame.direction,
        "time": frame.time,
        "opcode": frame.opcode,
        "fin": frame.fin,
        "compressed": frame.compressed,
        "size": frame.size,
        "payload": frame.payload,
        "close_code": frame.close_code,
    }


def policy_action(trace: list[TraceEntry]) -> str:
    """The action that answered the request itself (the trace's terminal entry), "" when none did.

    `trace` is in the order the actions ran; of several terminal entries (one per phase at most)
    the last is the answer the client saw."""
    for entry in reversed(trace):
        if entry.terminal:
            return entry.action
    return ""


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "tunnel_name": row["tunnel_name"],
        "start": row["start"],
        "duration_ns": row["duration_ns"],
        "method": row["method"],
        "uri": row["uri"],
        "status_code": row["status_code"],
        "request_size": row["request_size"],
        "response_size": row["response_size"],
        "remote_addr": row["remote_addr"],
        "request_complete": row["request_complete"],
        "response_complete": row["response_complete"],
        "incomplete_reason": row["incomplete_reason"],
        # The policy action that answered instead of the service ("" when the service did).
        "policy_action": row["policy_action"],
        # The capture this one replays ("" for none): live rows are marked as replays at once.
        "replay_of": row["replay_of"],
        # Cut at the capture limit: the stored bytes are fewer than the true sizes.
        "truncated": row["stored_size"] < row["request_size"] + (row["response_size"] or 0),
    }
