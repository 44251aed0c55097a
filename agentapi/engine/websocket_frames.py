"""WebSocket frames of an upgraded connection, read from the bytes the pipe relays (sans-io).

`FrameReader` is fed the raw bytes of one direction, in whatever pieces the socket gave, and turns
them into `Frame` records; `FrameRecorder` keeps one reader per direction and the per-connection
budgets. Nothing here ever touches the bytes the pipe forwards: the proxy writes them on first and
hands the recorder the same object to look at.

Rules (RFC 6455 section 5.2, "Base Framing Protocol"):
- A frame is a 2-byte header (FIN, RSV1-3, 4-bit opcode; MASK, 7-bit length), then a 16-bit length
  when the 7 bits say 126 or a 64-bit one when they say 127 (its top bit must be 0), then the 4-byte
  masking key when MASK is set, then the payload. A header may arrive split over reads: only the
  header bytes are buffered (14 at most); payload bytes are skipped by counting.
- Masked payloads (client to server, section 5.3) are unmasked in the copied prefix only:
  octet i is XORed with key[i % 4], the position carried across reads.
- Opcodes (section 5.2, 11.8): 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong; 3-7 and
  11-15 are reserved. Control frames (8-15, section 5.5) carry at most 125 bytes and are never
  fragmented; they may come between the fragments of a message (section 5.4).
- A close frame's payload (section 5.5.1) is an optional 2-byte code then UTF-8 reason text; the
  code and reason are kept whatever the payload budget.
- RSV1 set means the message is compressed (permessage-deflate, RFC 7692): recorded as
  `compressed`; the prefix is kept as it crossed.
- Bytes that break these rules (a reserved opcode, a long or fragmented control frame, a 64-bit
  length with its top bit set) stop the reader: it records nothing more for that direction and
  says why (`stopped`). It never raises: the pipe goes on untouched.

Budgets (per connection, both directions together): at most `max_frames` frame records and
`max_payload` bytes of payload prefixes (each prefix at most `max_prefix`); past them frames are only
counted (`frames_seen`, `bytes_seen`). The work per read is O(frame headers in it) plus copying at
most the budgeted prefix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLIENT = "client"  # client to server (masked on the wire)
SERVER = "server"  # server to client

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
OPCODE_NAMES = {
    CONTINUATION: "continuation",
    TEXT: "text",
    BINARY: "binary",
    CLOSE: "close",
    PING: "ping",
    PONG: "pong",
}

MAX_FRAMES = 1000
MAX_PAYLOAD = 256 * 1024
MAX_PREFIX = 64 * 1024
_MAX_CONTROL = 125  # RFC 6455 5.5


@dataclass(slots=True)
class Frame:
    """One frame as it crossed. `time`: epoch seconds when its header was read; `size`: the true
    payload length in bytes; `payload`: its first bytes, unmasked (fewer than `size` when the
    budget cut it, or the connection ended mid-frame); `close_code`/`close_reason` for a close
    frame that carried them."""

    seq: int
    direction: str
    time: float
    opcode: int
    fin: bool
    masked: bool
    compressed: bool
    size: int
    payload: bytes = b""
    close_code: int | None = None
    close_reason: str = ""


class _Budget:
    """What is left of the connection's allowance, shared by both directions."""

    __slots__ = ("frames", "payload", "prefix")

    def __init__(self, frames: int, payload: int, prefix: int) -> None:
        self.frames = frames
        self.payload = payload
        self.prefix = prefix


class FrameReader:
    """Reads one direction's frames. `feed(data)` returns the recorded frames whose prefix became
    final in `data` (all of it that the budget keeps crossed, or the frame ended); frames past the
    budget are only counted."""

    __slots__ = (
        "_budget",
        "_buffer",
        "_clock",
        "_current",
        "_key",
        "_next_seq",
        "_position",
        "_ready",
        "_remaining",
        "_want",
        "bytes_seen",
        "direction",
        "fragmented",
        "frames_seen",
        "stopped",
    )

    def __init__(
        self, direction: str, budget: _Budget, next_seq: Callable[[], int], clock: Callable[[], float]
    ) -> None:
        self.direction = direction
        self._budget = budget
        self._next_seq = next_seq
        self._clock = clock
        self._buffer = b""  # a header not yet whole
        self._remaining = 0  # payload bytes of the current frame still to come
        self._current: Frame | None = None  # the frame whose prefix is still being copied
        self._want = 0  # prefix bytes still to copy into `_current`
        self._key = b""  # its masking key
        self._position = 0  # payload offset of the next byte (for the mask)
        self._ready: list[Frame] = []  # frames whose prefix became final during this feed
        self.frames_seen = 0
        self.bytes_seen = 0  # payload bytes, all frames
        self.fragmented = False  # inside a fragmented data message
        self.stopped = ""  # why reading stopped ("" while it goes on)

    def feed(self, data: bytes) -> list[Frame]:
        """Read `data` (the next bytes of this direction). Never raises on bad bytes: stops."""
        if self.stopped:
            return []
        frames: list[Frame] = []
        self._ready = frames
        at = 0
        end = len(data)
        while at < end:
            if self._remaining:
                take = min(self._remaining, end - at)
                if self._want:
                    self._copy(data[at : at + min(take, self._want)])
                self._remaining -= take
                self._position += take
                at += take
                if not self._remaining:
                    self._frame_done()
                continue
            # A header: complete what a previous read left, else parse it in place.
            if self._buffer:
                need = self._header_size(self._buffer)
                while need is None or len(self._buffer) < need:
                    if at >= end:
                        return frames
                    self._buffer += data[at : at + 1]
                    at += 1
                    need = self._header_size(self._buffer)
                header, self._buffer = self._buffer, b""
            else:
                # Inline for speed: this runs once per frame.
                if end - at < 2:
                    self._buffer = data[at:end]
                    return frames
                second = data[at + 1]
                short = second & 0x7F
                need = (4 if second & 0x80 else 0) + (4 if short == 126 else 10 if short == 127 else 2)
                if end - at < need:
                    self._buffer = data[at:end]
                    return frames
                header = data[at : at + need]
                at += need
            if not self._start(header):
                return frames
        return frames

    @staticmethod
    def _header_size(head: bytes | memoryview) -> int | None:
        """The full header's length once its first two bytes are known (None before)."""
        if len(head) < 2:
            return None
        second = head[1]
        length = second & 0x7F
        return 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if second & 0x80 else 0)

    def _start(self, header: bytes) -> bool:
        """Begin the frame of this header; False when it breaks the framing rules (stopped)."""
        first, second = header[0], header[1]
        opcode = first & 0x0F
        fin = bool(first & 0x80)
        masked = bool(second & 0x80)
        length = second & 0x7F
        at = 2
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
            at = 4
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
            at = 10
            if length >> 63:
                return self._stop("a 64-bit payload length with its most significant bit set")
        if opcode not in OPCODE_NAMES:
            return self._stop(f"reserved opcode {opcode}")
        if opcode >= CLOSE:
            if length > _MAX_CONTROL:
                return self._stop(f"a control frame of {length} bytes (at most 125)")
            if not fin:
                return self._stop("a fragmented control frame")
        elif opcode == CONTINUATION:
            if not self.fragmented:
                return self._stop("a continuation frame outside a fragmented message")
            self.fragmented = not fin
        else:
            if self.fragmented:
                return self._stop("a new data frame inside a fragmented message")
            self.fragmented = not fin
        self._key = header[at : at + 4] if masked else b""
        self._position = 0
        self._remaining = length
        self.frames_seen += 1
        self.bytes_seen += length
        budget = self._budget
        if budget.frames <= 0:
            self._current, self._want = None, 0
        else:
            budget.frames -= 1
            # A close frame's code and reason are kept whatever is left of the payload budget.
            want = length if opcode == CLOSE else min(length, budget.prefix, budget.payload)
            budget.payload -= min(want, budget.payload)
            frame = Frame(
                self._next_seq(), self.direction, self._clock(), opcode, fin, masked, bool(header[0] & 0x40), length
            )
            self._current, self._want = frame, want
            if not want and opcode != CLOSE:
                self._ready.append(frame)
                self._current = None
        if not length:
            self._frame_done()
        return True

    def _copy(self, chunk: bytes) -> None:
        frame = self._current
        assert frame is not None
        if self._key:
            chunk = _unmask(chunk, self._key, self._position)
        frame.payload += chunk
        self._want -= len(chunk)
        if not self._want and frame.opcode != CLOSE:
            self._ready.append(frame)
            self._current = None

    def _frame_done(self) -> None:
        frame = self._current
        if frame is not None:
            if frame.opcode == CLOSE and len(frame.payload) >= 2:
                frame.close_code = int.from_bytes(frame.payload[:2], "big")
                frame.close_reason = frame.payload[2:].decode("utf-8", "replace")
            self._ready.append(frame)
        self._current, self._want = None, 0

    def flush(self) -> list[Frame]:
        """The connection ended: the frame still arriving, as far as it came (else nothing)."""
        frame, self._current, self._want = self._current, None, 0
        return [frame] if frame is not None else []

    def _stop(self, why: str) -> bool:
        self.stopped = why
        self._current, self._want, self._remaining, self._buffer = None, 0, 0, b""
        return False


def _unmask(chunk: bytes, key: bytes, position: int) -> bytes:
    """XOR `chunk` (payload bytes from offset `position`) with the 4-byte key, as whole integers."""
    shift = position % 4
    key = key[shift:] + key[:shift]
    n = len(chunk)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(chunk, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


@dataclass(slots=True, eq=False)
class FrameRecorder:
    """The frames of one upgraded connection, both directions, within the connection's budgets.

    `feed(direction, data)` returns True when it recorded frames not yet taken; `take()` hands over
    the frames recorded since the last take (the sink stores them). The counters cover every frame,
    recorded or not."""

    clock: Callable[[], float] = time.time
    max_frames: int = MAX_FRAMES
    max_payload: int = MAX_PAYLOAD
    max_prefix: int = MAX_PREFIX
    pending: list[Frame] = field(default_factory=list, init=False)
    _seq: int = field(default=0, init=False)
    _readers: dict[str, FrameReader] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        budget = _Budget(self.max_frames, self.max_payload, self.max_prefix)
        for direction in (CLIENT, SERVER):
            self._readers[direction] = FrameReader(direction, budget, self._next_seq, self.clock)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def feed(self, direction: str, data: bytes) -> bool:
        """Read bytes that crossed in `direction` (CLIENT or SERVER). True: new frames to take."""
        frames = self._readers[direction].feed(data)
        if not frames:
            return False
        self.pending += frames
        return True

    def end(self) -> bool:
        """The connection closed: frames cut mid-payload are recorded as far as they came. True:
        new frames to take."""
        for reader in self._readers.values():
            self.pending += reader.flush()
        return bool(self.pending)

    def take(self) -> list[Frame]:
        """The frames recorded since the last take (each whole as far as the budget keeps it)."""
        frames, self.pending = self.pending, []
        return frames

    def totals(self) -> dict[str, object]:
        """Counters for the whole connection: frames and payload bytes each way, how many frames
        were recorded, and why reading stopped in a direction ("" when it did not)."""
        client, server = self._readers[CLIENT], self._readers[SERVER]
        return {
            "client_frames": client.frames_seen,
            "server_frames": server.frames_seen,
            "client_bytes": client.bytes_seen,
            "server_bytes": server.bytes_seen,
            "recorded": self._seq,
            "stopped": "; ".join(f"{r.direction}: {r.stopped}" for r in (client, server) if r.stopped),
        }
