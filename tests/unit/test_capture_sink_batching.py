"""When the capture sink writes: completed records at once (batches at least `batch_delay`
apart), records in progress after `flush_interval`, the next batch gathered while one is being
written, the announcement after the commit; and its bounds (records and bytes held)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.capture_sink import CaptureDropped, CaptureSink


class Store:
    """Records each batch's ids; `gate` (when set) holds a write until it is opened."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.entered = threading.Event()  # a write has begun
        self.batches: list[tuple[list[str], list[str]]] = []
        self.rows: list[dict[str, Any]] = []
        self.events: list[str] = []

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.batches.append(([r["id"] for r in new], [r["id"] for r in changed]))
        self.rows += new + changed
        self.events.append("committed")
        return []


def record(capture_id: str, *, complete: bool = True, body: int = 0) -> CaptureRecord:
    r = CaptureRecord(id=capture_id, tunnel_name="t", remote_addr="::1", start=0.0, method="GET", uri="/", limit=10**6)
    r.add_request(b"GET / HTTP/1.1\r\n\r\n")
    if body:
        r.add_response(b"x" * body)
    r.complete = complete
    r.status_code = 200 if complete else None
    return r


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) for something the sink's task does on its own."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the sink did not get there")


async def test_a_completed_record_is_stored_without_waiting_for_the_interval() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60)
    sink.start()
    sink.record(record("a"))
    await until(lambda: store.batches == [(["a"], [])])
    await sink.close()


async def test_an_exchange_that_completes_within_the_interval_is_one_insert() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60)
    sink.start()
    pending = record("a", complete=False)
    sink.record(pending)
    await asyncio.sleep(0.05)
    assert store.batches == []  # in progress: it waits for the interval
    pending.complete = True
    sink.record(pending)
    await until(lambda: bool(store.batches))
    await sink.close()
    assert store.batches == [(["a"], [])]


async def test_a_long_request_appears_while_pending_then_is_updated() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=0.02)
    sink.start()
    pending = record("a", complete=False)
    sink.record(pending)
    await until(lambda: bool(store.batches))
    assert store.batches == [(["a"], [])] and store.rows[0]["status_code"] is None
    pending.complete, pending.status_code = True, 200
    sink.record(pending)
    await until(lambda: len(store.batches) == 2)
    assert store.batches[1] == ([], ["a"]) and store.rows[1]["status_code"] == 200
    await sink.close()


async def test_records_that_complete_during_a_write_go_in_the_next_batch() -> None:
    gate = threading.Event()
    store = Store(gate)
    sink = CaptureSink(store, flush_interval=60, batch_delay=0)
    sink.start()
    sink.record(record("a"))
    await until(store.entered.is_set)  # "a" is being written: the store holds it
    for name in ("b", "c", "d"):
        sink.record(record(name))
    gate.set()
    await until(lambda: sum(len(new) for new, _ in store.batches) == 4)
    await sink.close()
    assert store.batches == [(["a"], []), (["b", "c", "d"], [])]


async def test_batches_start_at_least_the_batch_delay_apart() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60, batch_delay=60)
    sink.start()
    sink.record(record("a"))  # after a quiet spell: at once
    await until(lambda: bool(store.batches))
    sink.record(record("b"))
    await asyncio.sleep(0.05)
    assert store.batches == [(["a"], [])]  # "b" waits for the delay (or a flush)
    await sink.flush()
    assert store.batches == [(["a"], []), (["b"], [])]
    await sink.close()


async def test_the_batch_is_announced_after_its_commit_with_its_summaries() -> None:
    store = Store()

    async def announce(message: dict[str, Any]) -> None:
        store.events.append(message["type"])
        messages.append(message)

    messages: list[dict[str, Any]] = []
    sink = CaptureSink(store, announce, flush_interval=60)
    sink.record(record("a"))
    await sink.flush()
    assert store.events == ["committed", "captures.stored"]
    [message] = messages
    assert [row["id"] for row in message["created"]] == ["a"] and message["updated"] == []
    assert message["created"][0]["status_code"] == 200
    await sink.close()


async def test_a_completed_record_shares_its_bytes_and_one_in_progress_is_copied() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60)
    done, pending = record("a", body=10), record("b", complete=False, body=10)
    sink.record(done)
    sink.record(pending)
    await sink.flush()
    rows = {row["id"]: row for row in store.rows}
    assert rows["a"]["response_raw"] is done.response_raw  # no copy of a body that no longer changes
    assert rows["b"]["response_raw"] == bytes(pending.response_raw or b"")
    assert rows["b"]["response_raw"] is not pending.response_raw
    await sink.close()


async def test_past_the_byte_bound_new_captures_are_dropped_and_counted() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60, max_pending_bytes=1000)
    sink.record(record("a", body=600))
    dropped = record("b", body=600)
    with pytest.raises(CaptureDropped):
        await sink.stored(dropped)
    assert sink.dropped == 1
    sink.record(dropped)  # dropped once, dropped for good: counted once
    assert sink.dropped == 1
    await sink.flush()
    assert store.batches == [(["a"], [])]
    sink.record(record("c", body=600))  # stored bytes are no longer held
    await sink.flush()
    assert store.batches[-1] == (["c"], [])
    await sink.close()


async def test_under_pressure_a_new_capture_is_cut_instead_of_dropped() -> None:
    # Past half the byte bound a new capture keeps at most `pressure_capture_limit` of each
    # message: it is stored, cut and saying so, where it would otherwise have been dropped.
    store = Store()
    sink = CaptureSink(store, flush_interval=60, max_pending_bytes=1000, pressure_capture_limit=100)
    sink.record(record("a", body=600))
    late = record("b", complete=False)
    sink.record(late)  # the exchange's start, under pressure
    late.add_response(b"y" * 700)
    late.complete, late.status_code = True, 200
    sink.record(late)
    assert (sink.dropped, sink.cut) == (0, 1)
    await sink.flush()
    rows = {row["id"]: row for row in store.rows}
    assert len(rows["b"]["response_raw"]) == 100
    assert rows["b"]["response_size"] == 700  # the true size: the capture says it was cut
    assert rows["b"]["stored_size"] < rows["b"]["request_size"] + rows["b"]["response_size"]
    assert len(rows["a"]["response_raw"]) == 600  # what came before the pressure is whole
    sink.record(record("c", body=600))  # nothing held any more: whole again
    await sink.flush()
    assert len(store.rows[-1]["response_raw"]) == 600
    await sink.close()


async def test_a_capture_that_grows_past_the_byte_bound_is_dropped_when_it_completes() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60, max_pending_bytes=1000)
    sink.record(record("a", body=600))
    growing = record("b", complete=False)
    sink.record(growing)
    growing.add_response(b"x" * 600)
    growing.complete = True
    sink.record(growing)
    assert sink.dropped == 1
    await sink.flush()
    assert store.batches == [(["a"], [])]
    await sink.close()


async def test_the_update_of_a_stored_row_is_never_dropped() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60, max_pending_bytes=1000)
    growing = record("a", complete=False)
    sink.record(growing)
    await sink.flush()  # its row exists, pending
    sink.record(record("b", body=600))
    growing.add_response(b"x" * 600)
    growing.complete = True
    sink.record(growing)
    assert sink.dropped == 0
    await sink.flush()
    assert store.batches[-1] == (["b"], ["a"])
    await sink.close()


async def test_one_capture_bigger_than_the_bound_is_still_stored() -> None:
    store = Store()
    sink = CaptureSink(store, flush_interval=60, max_pending_bytes=100)
    sink.record(record("a", body=600))
    await sink.flush()
    assert store.batches == [(["a"], [])] and sink.dropped == 0
    await sink.close()


async def test_close_waits_for_the_batch_being_written() -> None:
    gate = threading.Event()
    store = Store(gate)
    sink = CaptureSink(store, flush_interval=60)
    sink.start()
    first = record("a")
    waiter = asyncio.ensure_future(sink.stored(first))
    await until(store.entered.is_set)
    sink.record(record("b"))
    closing = asyncio.ensure_future(sink.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # "a" is still being written
    gate.set()
    await closing
    await waiter  # settled: stored, not abandoned
    assert first.saved and store.batches == [(["a"], []), (["b"], [])]


async def test_the_writer_thread_is_named_where_the_system_shows_threads() -> None:
    # top -H, perf and `make sched-trace` tell the capture writer from the event loop by it.
    import os
    from pathlib import Path

    sink = CaptureSink(Store())
    sink.start()
    try:
        sink.record(record("a"))
        await sink.flush()  # a batch written: the writer thread ran, its initializer first
        names = [(task / "comm").read_text().strip() for task in Path(f"/proc/{os.getpid()}/task").iterdir()]
        assert "capture-writer" in names
    finally:
        await sink.close()
