"""The sans-io WebSocket frame reader: bytes of one direction in, frame records out (RFC 6455 5.2)."""

from __future__ import annotations

import struct

from agentapi.engine.websocket_frames import (
    BINARY,
    CLIENT,
    CLOSE,
    CONTINUATION,
    MAX_FRAMES,
    MAX_PAYLOAD,
    MAX_PREFIX,
    PING,
    SERVER,
    TEXT,
    Frame,
    FrameRecorder,
)


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None, rsv1: bool = False) -> bytes:
    """One frame on the wire, built independently of the reader."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([first, mask_bit | n])
    elif n < 1 << 16:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def recorder(
    *, max_frames: int = MAX_FRAMES, max_payload: int = MAX_PAYLOAD, max_prefix: int = MAX_PREFIX
) -> FrameRecorder:
    return FrameRecorder(
        clock=lambda: 1700000000.5, max_frames=max_frames, max_payload=max_payload, max_prefix=max_prefix
    )


def feed_all(rec: FrameRecorder, direction: str, *pieces: bytes) -> list[Frame]:
    for piece in pieces:
        rec.feed(direction, piece)
    return rec.take()


def test_a_text_frame_is_recorded_with_its_time_opcode_size_and_payload() -> None:
    rec = recorder()
    assert rec.feed(SERVER, frame(TEXT, b"hello"))
    [got] = rec.take()
    assert (got.seq, got.direction, got.time, got.opcode, got.fin, got.masked, got.size, got.payload) == (
        0,
        SERVER,
        1700000000.5,
        TEXT,
        True,
        False,
        5,
        b"hello",
    )


def test_a_masked_client_frame_is_unmasked_even_split_inside_the_payload() -> None:
    wire = frame(BINARY, bytes(range(37)), mask=b"\x11\x22\x33\x44")
    rec = recorder()
    [got] = feed_all(rec, CLIENT, wire[:3], wire[3:7], wire[7:13], wire[13:14], wire[14:])
    assert got.masked and got.payload == bytes(range(37))


def test_a_frame_fed_one_byte_at_a_time_is_read_whole() -> None:
    wire = frame(TEXT, b"x" * 300, mask=b"abcd") + frame(TEXT, b"next")
    rec = recorder()
    got = feed_all(rec, CLIENT, *(wire[i : i + 1] for i in range(len(wire))))
    assert [(f.size, f.payload) for f in got] == [(300, b"x" * 300), (4, b"next")]


def test_16_and_64_bit_lengths_give_the_true_size_and_the_reader_stays_in_step() -> None:
    medium = b"m" * 70000  # 16 bits would not do: 64-bit length
    small16 = b"s" * 200
    wire = frame(BINARY, small16) + frame(BINARY, medium) + frame(TEXT, b"after")
    rec = recorder(max_prefix=100)
    got = feed_all(rec, SERVER, wire[:150], wire[150:5000], wire[5000:])
    assert [(f.size, len(f.payload)) for f in got] == [(200, 100), (70000, 100), (5, 5)]
    assert got[2].payload == b"after"


def test_fragments_with_a_ping_between_them_are_each_recorded() -> None:
    wire = (
        frame(TEXT, b"hel", fin=False)
        + frame(PING, b"p")
        + frame(CONTINUATION, b"lo", fin=False)
        + frame(CONTINUATION, b"!", fin=True)
    )
    rec = recorder()
    got = feed_all(rec, SERVER, wire)
    assert [(f.opcode, f.fin, f.payload) for f in got] == [
        (TEXT, False, b"hel"),
        (PING, True, b"p"),
        (CONTINUATION, False, b"lo"),
        (CONTINUATION, True, b"!"),
    ]
    assert rec.totals()["stopped"] == ""


def test_a_close_frame_gives_its_code_and_reason() -> None:
    rec = recorder()
    [got] = feed_all(rec, CLIENT, frame(CLOSE, struct.pack("!H", 1001) + "gone ✓".encode(), mask=b"\x01\x02\x03\x04"))
    assert (got.opcode, got.close_code, got.close_reason) == (CLOSE, 1001, "gone ✓")


def test_an_empty_close_frame_has_no_code() -> None:
    rec = recorder()
    [got] = feed_all(rec, SERVER, frame(CLOSE, b""))
    assert got.close_code is None and got.size == 0


def test_a_close_code_is_kept_after_the_payload_budget_is_spent() -> None:
    rec = recorder(max_payload=10)
    got = feed_all(rec, SERVER, frame(BINARY, b"b" * 50), frame(CLOSE, struct.pack("!H", 1000)))
    assert [len(f.payload) for f in got] == [10, 2]
    assert got[1].close_code == 1000


def test_past_the_frame_budget_frames_are_only_counted() -> None:
    rec = recorder(max_frames=3)
    wire = b"".join(frame(TEXT, b"%d" % i) for i in range(10))
    got = feed_all(rec, SERVER, wire)
    assert [f.payload for f in got] == [b"0", b"1", b"2"]
    totals = rec.totals()
    assert (totals["server_frames"], totals["server_bytes"], totals["recorded"]) == (10, 10, 3)


def test_the_frame_budget_is_shared_by_both_directions() -> None:
    rec = recorder(max_frames=2)
    rec.feed(CLIENT, frame(TEXT, b"a", mask=b"abcd"))
    rec.feed(SERVER, frame(TEXT, b"b"))
    rec.feed(CLIENT, frame(TEXT, b"c", mask=b"abcd"))
    assert [(f.seq, f.direction) for f in rec.take()] == [(0, CLIENT), (1, SERVER)]
    assert rec.totals()["client_frames"] == 2


def test_a_compressed_message_is_flagged() -> None:
    rec = recorder()
    [got] = feed_all(rec, SERVER, frame(TEXT, b"\xf2H\xcd\xc9\xc9\x07\x00", rsv1=True))
    assert got.compressed


def test_a_frame_cut_by_the_connection_end_is_kept_as_far_as_it_came() -> None:
    rec = recorder()
    wire = frame(TEXT, b"abcdefgh")
    assert not rec.feed(SERVER, wire[:5])
    assert rec.end()
    [got] = rec.take()
    assert (got.size, got.payload) == (8, b"abc")


def test_a_reserved_opcode_stops_the_reader_without_raising() -> None:
    rec = recorder()
    got = feed_all(rec, SERVER, frame(TEXT, b"ok") + bytes([0x83, 0x00]) + frame(TEXT, b"lost"))
    assert [f.payload for f in got] == [b"ok"]
    assert rec.totals()["stopped"] == "server: reserved opcode 3"
    assert not rec.feed(SERVER, frame(TEXT, b"still nothing"))


def test_a_long_control_frame_stops_the_reader() -> None:
    rec = recorder()
    rec.feed(CLIENT, bytes([0x89, 126, 0, 200]) + b"p" * 200)
    assert rec.take() == []
    assert "control frame of 200 bytes" in str(rec.totals()["stopped"])


def test_a_continuation_without_a_start_stops_the_reader() -> None:
    rec = recorder()
    rec.feed(SERVER, frame(CONTINUATION, b"x"))
    assert "continuation frame outside" in str(rec.totals()["stopped"])


def test_random_garbage_never_raises() -> None:
    import random

    chance = random.Random(9)
    for _ in range(300):
        rec = recorder(max_frames=50, max_payload=1000)
        blob = bytes(chance.randrange(256) for _ in range(chance.randrange(1, 400)))
        cut = chance.randrange(len(blob) + 1)
        rec.feed(CLIENT, blob[:cut])
        rec.feed(CLIENT, blob[cut:])
        rec.end()
        for got in rec.take():
            assert len(got.payload) <= got.size
