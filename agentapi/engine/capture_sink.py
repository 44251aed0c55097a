"""Hands captures from the proxy to the database without ever making the proxy wait.

The proxy calls `record()` when an exchange starts and again when it completes; both only mark
the record dirty (bounded: past `max_pending` new captures are dropped and counted, forwarding goes
on). A loop task gathers dirty records for `flush_interval`, snapshots them on the loop and lets
one writer thread store them in one transaction, so an exchange that completes within the interval
costs one INSERT. Each stored batch is announced (one message for the batch) for the inspector.

WebSocket frames come later than their capture (the record is complete at the 101): the proxy
calls `frames(record)` when a captured WebSocket recorded new frames (and `final=True` when its pipe
closed). The same loop task takes them after the batch's captures are stored (a capture's row is
always there before its frames), and the writer thread stores them with the connection's counters
through the store's `write_frames`; one `frames.added` message names the captures that grew. Frames
of a capture that was never stored (the queue was full) are dropped with it.

A row carries the capture's Traffic Policy trace as plain dicts, and `policy_action`: the action
that answered instead of the service (the trace's terminal entry), what the inspector's "blocked by
policy" filter and list mark read without opening the trace.
"""

from __future__ import annotations

import asyncio
import logging
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


class CaptureStore(Protocol):
    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        """Store rows in one transaction; return the ids evicted to stay within budget."""


class FrameStore(Protocol):
    def write_frames(self, frames: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        """Store WebSocket frame rows and upsert per-connection counters (rows whose capture is
        gone are skipped)."""


class CaptureSink:
    def __init__(
        self,
        store: CaptureStore,
        announce: Announce | None = None,
        *,
        max_pending: int = 20000,
        flush_interval: float = 0.05,
    ) -> None:
        self._store = store
        self._announce = announce
        self._max_pending = max_pending
        self._flush_interval = flush_interval
        self._dirty: dict[str, CaptureRecord] = {}
        self._frames: dict[str, CaptureRecord] = {}  # WebSockets with frames or counters to store
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-writer")
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a record's `saved` flag must be set before it is snapshot again.
        self._flushing = asyncio.Lock()
        self._closing = False
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="capture-sink")

    def record(self, record: CaptureRecord) -> None:
        if record.id not in self._dirty:
            if len(self._dirty) >= self._max_pending and not record.saved:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning("capture queue full: %d captures dropped so far", self.dropped)
                _settle(record, CaptureDropped("the capture queue is full: the database is not keeping up"))
                return
            self._dirty[record.id] = record
        self._wake.set()

    def frames(self, record: CaptureRecord, *, final: bool = False) -> None:
        """A captured WebSocket recorded new frames (`final`: its pipe closed); no waiting."""
        if record.id not in self._frames:
            self._frames[record.id] = record
            self._wake.set()
        elif final:
            self._wake.set()

    async def stored(self, record: CaptureRecord) -> None:
        """Wait until the completed record is in the database (replay answers after that)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record.waiters.append(future)
        self.record(record)
        await future

    async def flush(self) -> None:
        """Store what is pending now (the API lists right after a request and expects to see it)."""
        await self._flush()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._dirty or self._frames:
            await self._flush()
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._flush_interval)
            try:
                await self._flush()
            except Exception:  # the writer must outlive a bad batch (database down, disk full)
                log.exception("storing captures failed; retrying in %g s", _RETRY_SECONDS)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _flush(self) -> None:
        async with self._flushing:
            messages = [await self._flush_batch(), await self._flush_frames()]
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

    async def _flush_frames(self) -> dict[str, Any] | None:
        """Store the frames recorded since the last flush, for captures whose row exists."""
        if not self._frames:
            return None
        waiting, self._frames = self._frames, {}
        rows: list[dict[str, Any]] = []
        totals: list[dict[str, Any]] = []
        for capture_id, record in waiting.items():
            recorder = record.websocket
            if recorder is None:
                continue
            if not record.saved:
                if capture_id in self._dirty:
                    self._frames[capture_id] = record  # its row is still to be written: next time
                else:
                    recorder.take()  # the capture was dropped: so are its frames
                continue
            rows += [_frame_row(capture_id, frame) for frame in recorder.take()]
            totals.append({"capture_id": capture_id, **recorder.totals()})
        write_frames = getattr(self._store, "write_frames", None)
        if not totals or write_frames is None:
            return None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, write_frames, rows, totals)
        return {"type": "frames.added", "ids": [row["capture_id"] for row in totals]}

    async def _flush_batch(self) -> dict[str, Any] | None:
        batch, self._dirty = self._dirty, {}
        if not batch:
            return None
        records = list(batch.values())
        new = [_snapshot(r) for r in records if not r.saved]
        changed = [_snapshot(r) for r in records if r.saved]
        loop = asyncio.get_running_loop()
        try:
            evicted = await loop.run_in_executor(self._executor, self._store.write, new, changed)
        except Exception as error:
            # Keep the records for the next try (inserts are upserts, so a batch that did reach
            # the database is harmless to write again); whoever waits hears of the failure now.
            for record in records:
                _settle(record, error)
                if record.id not in self._dirty and len(self._dirty) < self._max_pending:
                    self._dirty[record.id] = record
            self._wake.set()
            raise
        for record in records:
            record.saved = True
            if record.complete:
                _settle(record, None)
        return {
            "type": "captures.stored",
            "created": [_summary(row) for row in new],
            "updated": [_summary(row) for row in changed],
            "evicted": evicted,
        }


class CaptureDropped(Exception):
    pass


def _settle(record: CaptureRecord, error: BaseException | None) -> None:
    for waiter in record.waiters:
        if not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
    record.waiters.clear()


def _snapshot(record: CaptureRecord) -> dict[str, Any]:
    response = record.response_raw
    trace = record.policy_trace
    return {
        "id": record.id,
        "tunnel_name": record.tunnel_name,
        "remote_addr": record.remote_addr,
        "start": record.start,
        "duration_ns": record.duration_ns,
        "method": record.method,
        "uri": record.uri,
        "request_raw": bytes(record.request_raw),
        "request_size": record.request_size,
        "response_raw": bytes(response) if response is not None else None,
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
