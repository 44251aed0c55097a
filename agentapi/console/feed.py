"""What feeds the console's view model, on the event loop: live captures and the running tunnels.

Rules:
- Captures are the capture sink's `captures.stored` messages (docs/architecture.md, steps 8-9),
  heard one of two ways. In process, when the runtime offers it (`subscribe`, the runtime's
  `add_capture_listener`): the announced dict itself, on the loop, no copy. Otherwise as the
  inspector hears them, on the channel layer group `captures` through a channel of the console's
  own; that costs a copy of every batch per listener (Channels' in-memory layer deep-copies each
  message it queues: 15 ms for a batch of 200 rows here, 20-30% more CPU per request at 2000
  requests a second), which is why the in-process way is preferred.
- Membership of a group expires (Channels' `group_expiry`, a day by default), so the console joins
  again every `REJOIN_SECONDS`; a long-running agent keeps its live list.
- The tunnels (Forwarding lines, Connections row) are `runtime.tunnels()`, taken every
  `tunnel_interval` seconds (the metrics tick every 5 s), and at once when a capture names a tunnel
  not seen yet (one started through the API a moment ago).
- Each change calls `on_change()` once; the driver decides when to draw. A broken message or a
  channel layer outage is logged (the console shows it as its notice), waits a second and never
  ends the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .model import ConsoleModel, TunnelLike

log = logging.getLogger(__name__)

CAPTURES_GROUP = "captures"  # agentapi.runtime.CAPTURES_GROUP (kept equal by a test)
REJOIN_SECONDS = 3600.0
TUNNEL_INTERVAL = 1.0
_RETRY_SECONDS = 1.0


class ChannelLayer(Protocol):
    async def new_channel(self) -> str: ...
    async def receive(self, channel: str) -> dict[str, Any]: ...
    async def group_add(self, group: str, channel: str) -> None: ...
    async def group_discard(self, group: str, channel: str) -> None: ...


# add_capture_listener(listener) -> remove: listener(message) runs on the loop for every captures
# message the runtime announces (the message is shared: listeners only read it).
CaptureSubscribe = Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]]


class ConsoleFeed:
    """Keeps `model` current until `close()`: captures through `subscribe` if given, else from
    `layer` (both None: no live list), and the tunnels from `tunnels()` (the runtime's method)."""

    def __init__(
        self,
        model: ConsoleModel,
        tunnels: Callable[[], Awaitable[Sequence[TunnelLike]]],
        layer: ChannelLayer | None,
        on_change: Callable[[], None],
        *,
        tunnel_interval: float = TUNNEL_INTERVAL,
        rejoin_seconds: float = REJOIN_SECONDS,
        subscribe: CaptureSubscribe | None = None,
    ) -> None:
        self._model = model
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self._tunnels = tunnels
        self._layer = layer
        self._on_change = on_change
        self._tunnel_interval = tunnel_interval
        self._rejoin_seconds = rejoin_seconds
        self._channel = ""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Take the tunnels now and join the captures group; then keep both current."""
        await self.refresh_tunnels()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._poll_tunnels(), name="console-tunnels"))
        if self._subscribe is not None:
            self._unsubscribe = self._subscribe(self._hear)
        elif self._layer is not None:
            self._channel = await self._layer.new_channel()
            await self._layer.group_add(CAPTURES_GROUP, self._channel)
            self._tasks.append(loop.create_task(self._receive(), name="console-captures"))
            self._tasks.append(loop.create_task(self._rejoin(), name="console-rejoin"))

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._layer is not None and self._channel:
            with contextlib.suppress(Exception):  # leaving is best effort: the process is stopping
                await self._layer.group_discard(CAPTURES_GROUP, self._channel)
            self._channel = ""

    async def refresh_tunnels(self) -> None:
        before = self._model.changes
        self._model.set_tunnels(await self._tunnels())
        if self._model.changes != before:
            self._on_change()

    def take(self, message: dict[str, Any]) -> None:
        """Apply one group message (the receive loop's step, callable directly in tests)."""
        if self._model.apply(message):
            self._on_change()

    def _hear(self, message: dict[str, Any]) -> None:
        # In process, on the loop, inside the announcement: apply now; rows of a tunnel not seen yet
        # wait for the tunnels to be taken again (a task, so the announcer is never held up).
        if self._names_unknown_tunnel(message):
            task = asyncio.get_running_loop().create_task(self._take_after_refresh(message))
            self._tasks.append(task)
            task.add_done_callback(self._forget)
        else:
            self.take(message)

    async def _take_after_refresh(self, message: dict[str, Any]) -> None:
        try:
            await self.refresh_tunnels()
        except Exception:
            log.exception("console: reading the tunnels failed")
        self.take(message)

    def _forget(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def _receive(self) -> None:
        assert self._layer is not None
        while True:
            try:
                message = await self._layer.receive(self._channel)
                if self._names_unknown_tunnel(message):
                    await self.refresh_tunnels()
                self.take(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: receiving captures failed")
                await asyncio.sleep(_RETRY_SECONDS)

    def _names_unknown_tunnel(self, message: dict[str, Any]) -> bool:
        rows = [*(message.get("created") or ()), *(message.get("updated") or ())]
        return any(not self._model.knows_tunnel(str(row.get("tunnel_name"))) for row in rows)

    async def _poll_tunnels(self) -> None:
        while True:
            await asyncio.sleep(self._tunnel_interval)
            try:
                await self.refresh_tunnels()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: reading the tunnels failed")

    async def _rejoin(self) -> None:
        assert self._layer is not None
        while True:
            await asyncio.sleep(self._rejoin_seconds)
            try:
                await self._layer.group_add(CAPTURES_GROUP, self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: joining the captures group failed")
