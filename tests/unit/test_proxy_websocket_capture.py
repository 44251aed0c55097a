"""A captured WebSocket's frames are recorded off the pipe: the bytes still cross untouched both
ways, in the pieces they came in; the recorder's budgets hold; the sink hears of new frames."""

from __future__ import annotations

import struct

from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.websocket_frames import BINARY, CLIENT, CLOSE, SERVER, TEXT
from tests.support.proxy_mocks import ProxyHarness, RecordingSink, settle

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
MASK = b"\x37\xfa\x21\x3d"


class FrameSink(RecordingSink):
    """RecordingSink that also hears `frames(record)` calls, as CaptureSink does."""

    def __init__(self) -> None:
        super().__init__()
        self.frame_calls: list[tuple[str, bool]] = []

    def frames(self, record: CaptureRecord, *, final: bool = False) -> None:
        self.frame_calls.append((record.id, final))


def frame(opcode: int, payload: bytes, *, mask: bytes | None = None) -> bytes:
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([0x80 | opcode, bit | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def harness(upgrade: bytes = UPGRADE) -> tuple[ProxyHarness, FrameSink]:
    proxy = ProxyHarness()
    sink = FrameSink()
    proxy.sink = sink
    proxy.context.sink = sink  # type: ignore[assignment]
    return proxy, sink


async def test_the_pipe_passes_the_exact_bytes_both_ways_and_the_frames_are_recorded() -> None:
    proxy, sink = harness()
    client = proxy.connect()
    client.send(UPGRADE)
    await settle()
    service = proxy.service
    service.received()
    hello = frame(TEXT, b'{"hello": "world"}')
    service.answer(SWITCHED + hello)  # a frame in the same read as the 101
    assert client.received() == SWITCHED + hello
    upload = frame(BINARY, bytes(range(200)) * 400, mask=MASK)  # 80,000 bytes: a 64-bit length
    pieces = [upload[:3], upload[3:9000], upload[9000:]]
    for piece in pieces:
        client.send(piece)
        assert service.received() == piece  # untouched, piece by piece
    close = frame(CLOSE, struct.pack("!H", 1000) + b"bye", mask=MASK)
    client.send(close)
    assert service.received() == close
    service.answer(frame(CLOSE, struct.pack("!H", 1000)))
    [record] = sink.records
    recorder = record.websocket
    assert recorder is not None
    frames = recorder.take()
    assert [(f.seq, f.direction, f.opcode, f.size) for f in frames] == [
        (0, SERVER, TEXT, 18),
        (1, CLIENT, BINARY, 80000),
        (2, CLIENT, CLOSE, 5),
        (3, SERVER, CLOSE, 2),
    ]
    assert frames[0].payload == b'{"hello": "world"}'
    assert frames[1].payload == (bytes(range(200)) * 400)[: len(frames[1].payload)]
    assert len(frames[1].payload) == 64 * 1024  # the per-frame prefix
    assert (frames[2].close_code, frames[2].close_reason) == (1000, "bye")
    assert {call for call in sink.frame_calls} == {(record.id, False)}
    service.lose()
    assert client.closed
    assert sink.frame_calls[-1] == (record.id, True)  # final counters once the pipe closed


async def test_past_the_connection_budget_frames_are_only_counted_and_still_flow() -> None:
    proxy, sink = harness()
    client = proxy.connect()
    client.send(UPGRADE)
    await settle()
    proxy.service.received()
    proxy.service.answer(SWITCHED)
    client.received()
    [record] = sink.records
    recorder = record.websocket
    assert recorder is not None
    recorder.take()
    wire = b"".join(frame(TEXT, b"m%d" % i) for i in range(1500))
    proxy.service.answer(wire)
    assert client.received() == wire
    frames = recorder.take()
    assert len(frames) == 1000
    totals = recorder.totals()
    assert (totals["server_frames"], totals["recorded"]) == (1500, 1000)


async def test_a_non_websocket_upgrade_records_no_frames() -> None:
    proxy, sink = harness()
    client = proxy.connect()
    client.send(UPGRADE.replace(b"websocket", b"h2c"))
    await settle()
    proxy.service.received()
    proxy.service.answer(SWITCHED.replace(b"websocket", b"h2c") + frame(TEXT, b"x"))
    [record] = sink.records
    assert record.websocket is None and sink.frame_calls == []


async def test_garbage_after_the_101_stops_recording_not_the_pipe() -> None:
    proxy, sink = harness()
    client = proxy.connect()
    client.send(UPGRADE)
    await settle()
    proxy.service.received()
    proxy.service.answer(SWITCHED)
    client.received()
    junk = bytes([0x8F, 0x05]) + b"junk!" + frame(TEXT, b"later")
    client.send(junk)
    assert proxy.service.received() == junk
    [record] = sink.records
    assert record.websocket is not None
    assert record.websocket.totals()["stopped"] == "client: reserved opcode 15"
    assert record.websocket.take() == []
