"""The capture sink: batching, upserts on retry, waiters, bounded queue (a recording store)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.capture_sink import CaptureDropped, CaptureSink


class RecordingStore:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[tuple[list[str], list[str]]] = []

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked")
        self.batches.append(([r["id"] for r in new], [r["id"] for r in changed]))
        return []


def record(capture_id: str, *, complete: bool = True) -> CaptureRecord:
    r = CaptureRecord(id=capture_id, tunnel_name="t", remote_addr="::1", start=0.0, method="GET", uri="/", limit=100)
    r.complete = complete
    r.status_code = 200 if complete else None
    return r


async def test_an_exchange_completed_within_the_interval_is_one_insert() -> None:
    store = RecordingStore()
    sink = CaptureSink(store, flush_interval=0.01)
    pending = record("a", complete=False)
    sink.record(pending)
    pending.complete = True
    sink.record(pending)
    await sink.flush()
    assert store.batches == [(["a"], [])]
    sink.record(pending)  # changed after it was stored: an update
    await sink.flush()
    assert store.batches[-1] == ([], ["a"])
    await sink.close()


async def test_a_failed_batch_is_kept_and_written_on_the_next_try() -> None:
    store = RecordingStore(failures=1)
    sink = CaptureSink(store, flush_interval=0.01)
    first = record("a")
    sink.record(first)
    waiter = asyncio.ensure_future(sink.stored(first))
    with pytest.raises(RuntimeError):
        await sink.flush()
    with pytest.raises(RuntimeError):
        await waiter  # the waiter hears of the failure at once
    await sink.flush()
    assert store.batches == [(["a"], [])]  # still new: inserted (an upsert) on the retry
    await sink.close()


async def test_a_full_queue_drops_new_captures_and_fails_their_waiters() -> None:
    sink = CaptureSink(RecordingStore(), max_pending=1, flush_interval=10)
    sink.record(record("a"))
    dropped = record("b")
    with pytest.raises(CaptureDropped):
        await sink.stored(dropped)
    assert sink.dropped == 1
    await sink.close()


async def test_close_writes_everything_pending() -> None:
    store = RecordingStore()
    sink = CaptureSink(store, flush_interval=10)
    sink.start()
    for name in ("a", "b", "c"):
        sink.record(record(name))
    await sink.close()
    assert sorted(capture_id for new, _ in store.batches for capture_id in new) == ["a", "b", "c"]
