"""The capture sink's frame path: a WebSocket's frames are stored after their capture's row, in
batches of their own, announced as `frames.added`; frames of a dropped capture are dropped."""

from __future__ import annotations

from typing import Any

from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.capture_sink import CaptureSink
from agentapi.engine.websocket_frames import SERVER, FrameRecorder


class FrameStore:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        self.log.append(("captures", [r["id"] for r in new + changed]))
        return []

    def write_frames(self, frames: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        self.log.append(("frames", [(f["capture_id"], f["seq"], f["payload"]) for f in frames]))
        self.log.append(("totals", [(t["capture_id"], t["server_frames"]) for t in totals]))


def websocket_record(capture_id: str) -> CaptureRecord:
    record = CaptureRecord(
        id=capture_id, tunnel_name="t", remote_addr="::1", start=0.0, method="GET", uri="/ws", limit=100
    )
    record.complete = True
    record.status_code = 101
    record.websocket = FrameRecorder(clock=lambda: 5.0)
    return record


async def test_frames_are_written_after_their_capture_and_announced() -> None:
    store = FrameStore()
    announced: list[dict[str, Any]] = []

    async def announce(message: dict[str, Any]) -> None:
        announced.append(message)

    sink = CaptureSink(store, announce, flush_interval=0.01)
    record = websocket_record("a")
    assert record.websocket is not None
    sink.record(record)
    record.websocket.feed(SERVER, b"\x81\x02hi")
    sink.frames(record)  # in the same batch as the capture's first write
    await sink.flush()
    assert store.log == [("captures", ["a"]), ("frames", [("a", 0, b"hi")]), ("totals", [("a", 1)])]
    assert announced[-1] == {"type": "frames.added", "ids": ["a"]}
    record.websocket.end()
    sink.frames(record, final=True)
    await sink.flush()
    assert store.log[-2:] == [("frames", []), ("totals", [("a", 1)])]
    await sink.close()


async def test_frames_of_a_capture_the_full_queue_dropped_are_dropped_too() -> None:
    store = FrameStore()
    sink = CaptureSink(store, flush_interval=0.01, max_pending=1)
    sink.record(websocket_record("first"))
    dropped = websocket_record("second")
    sink.record(dropped)  # the queue is full: never stored
    assert dropped.websocket is not None
    dropped.websocket.feed(SERVER, b"\x81\x01x")
    sink.frames(dropped)
    await sink.flush()
    assert store.log == [("captures", ["first"])]
    assert dropped.websocket.pending == []
    await sink.close()


async def test_a_store_without_a_frame_path_still_stores_captures() -> None:
    class CapturesOnly:
        def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
            return []

    sink = CaptureSink(CapturesOnly(), flush_interval=0.01)
    record = websocket_record("a")
    sink.record(record)
    sink.frames(record)
    await sink.flush()
    await sink.close()
