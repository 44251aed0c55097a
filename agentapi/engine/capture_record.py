"""The in-memory form of one HTTP exchange, filled by the proxy and written by the capture sink."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .policy.trace import TraceEntry
from .websocket_frames import FrameRecorder


@dataclass(slots=True, eq=False)
class CaptureRecord:
    id: str
    tunnel_name: str
    remote_addr: str
    start: float  # epoch seconds
    method: str
    uri: str
    limit: int
    request_raw: bytearray = field(default_factory=bytearray)
    request_size: int = 0
    response_raw: bytearray | None = None
    response_size: int = 0
    status_code: int | None = None
    duration_ns: int = 0
    replay_of: str = ""
    complete: bool = False  # the exchange is over (whatever its outcome); the row is final
    # Whether each message crossed whole; `incomplete_reason` says why not (empty when both did).
    request_complete: bool = True
    response_complete: bool = True
    incomplete_reason: str = ""
    # What the endpoint's Traffic Policy did to this exchange, action by action (empty: no policy).
    policy_trace: list[TraceEntry] = field(default_factory=list)
    # After a 101 to a WebSocket Upgrade: the connection's frames (recorded ones waiting for the
    # sink in `websocket.pending`) and its counters; None for every other exchange.
    websocket: FrameRecorder | None = None
    # Kept by the sink: whether a row exists, whether the sink dropped the capture (queue full),
    # the capture bytes it counts as held for it, when a record in progress is due to be stored
    # (loop time), and who waits for the completed row to be stored.
    saved: bool = False
    dropped: bool = False
    held_bytes: int = 0
    due: float = 0.0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def add_request(self, data: bytes) -> None:
        room = self.limit - len(self.request_raw)
        if room > 0:
            self.request_raw += data[:room] if len(data) > room else data
        self.request_size += len(data)

    def add_response(self, data: bytes) -> None:
        raw = self.response_raw
        if raw is None:
            raw = self.response_raw = bytearray()
        room = self.limit - len(raw)
        if room > 0:
            raw += data[:room] if len(data) > room else data
        self.response_size += len(data)

    def cut_to(self, limit: int) -> None:
        """Keep at most `limit` bytes of each message, of what is held and from now on; the true
        sizes still count every byte, so the capture says it was cut (the capture sink's pressure
        rule)."""
        self.limit = limit
        if len(self.request_raw) > limit:
            del self.request_raw[limit:]
        raw = self.response_raw
        if raw is not None and len(raw) > limit:
            del raw[limit:]

    def restart_response(self) -> None:
        """Forget what the upstream sent: the agent's own error page replaces it."""
        self.response_raw = None
        self.response_size = 0

    def mark_incomplete(self, *, request: bool = False, response: bool = False, reason: str) -> None:
        """Flag a side that did not cross whole; the first reason given is kept."""
        if request:
            self.request_complete = False
        if response:
            self.response_complete = False
        if not self.incomplete_reason:
            self.incomplete_reason = reason

    @property
    def stored_size(self) -> int:
        return len(self.request_raw) + (len(self.response_raw) if self.response_raw is not None else 0)
