"""Back-pressure between a public connection and its upstream: who paused reading on whom, and the
promise that every pause is undone (the role of uvicorn's protocols/http/flow_control.py).

Rules:
- Reading from the client is paused for reasons, bits in `reasons`:
  UPSTREAM_FULL: the upstream's write buffer is full (its transport's pause_writing);
  WAITING: a request waits its turn, its upstream is being dialled, or bytes after an Upgrade
  wait for the service's answer (the read that buffers bytes pauses, so buffers grow by at most
  one read before reading stops).
  The transport is paused with the first reason and resumed when the last one is lifted; lifting a
  reason that is not set does nothing, so a resume never undoes someone else's pause.
- The other way: while the client's write buffer is full (its transport's pause_writing), reading
  from the current exchange's upstream is paused; that upstream is `paused_upstream`. An upstream
  attached while the client is still full is paused at once.
- Pairing: every upstream is `detach`ed from the connection before it goes back to the pool or
  closes, whatever happened in between: if this connection paused it, it is resumed, and
  UPSTREAM_FULL is lifted (the full upstream is no longer this connection's). So a pooled upstream
  is never left paused, and a client is never left paused by an upstream it no longer has.
- Nothing is paused or resumed once the connection is gone (`transport` None).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .upstream import UpstreamConnection

UPSTREAM_FULL = 1
WAITING = 2


class FlowControl:
    """The pause state of one public connection (created with it, transport set when it opens)."""

    __slots__ = ("paused_upstream", "reasons", "transport", "write_blocked")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reasons = 0
        self.write_blocked = False  # the client's write buffer is full
        self.paused_upstream: UpstreamConnection | None = None

    # --- reading from the client ------------------------------------------------------------
    def pause(self, reason: int) -> None:
        if not self.reasons and self.transport is not None:
            self.transport.pause_reading()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        if not self.reasons & reason:
            return
        self.reasons &= ~reason
        if not self.reasons and self.transport is not None:
            self.transport.resume_reading()

    def upstream_full(self, full: bool) -> None:
        if full:
            self.pause(UPSTREAM_FULL)
        else:
            self.resume(UPSTREAM_FULL)

    # --- reading from the upstream ----------------------------------------------------------
    def client_full(self, upstream: UpstreamConnection | None) -> None:
        """The client's write buffer filled up: stop reading from the upstream that feeds it."""
        self.write_blocked = True
        if upstream is not None and self.paused_upstream is None:
            self.paused_upstream = upstream
            upstream.pause_reading()

    def client_drained(self) -> None:
        self.write_blocked = False
        self._release()

    def attach(self, upstream: UpstreamConnection) -> None:
        """A new upstream for this connection: paused at once if the client is still full."""
        if self.write_blocked and self.paused_upstream is None:
            self.paused_upstream = upstream
            upstream.pause_reading()

    def detach(self, upstream: UpstreamConnection) -> None:
        """The upstream leaves this connection: undo any pause either side put on the other."""
        if self.paused_upstream is upstream:
            self._release()
        if self.reasons & UPSTREAM_FULL:  # every response ends here: skip the call when unset
            self.resume(UPSTREAM_FULL)

    def _release(self) -> None:
        upstream, self.paused_upstream = self.paused_upstream, None
        if upstream is not None:
            upstream.resume_reading()
