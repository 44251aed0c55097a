"""The inspector's one WebSocket: live capture deltas, tunnel changes and metrics, server to browser.

Messages sent (JSON objects, `type` first):
  capture.created   {"capture": summary}       a new exchange (status_code null while pending)
  capture.updated   {"capture": summary}       the same exchange, completed or grown
  captures.evicted  {"ids": [...]}             removed to stay within inspect_db_size
  captures.cleared  {}                         every capture deleted
  frames.added      {"ids": [...]}             captured WebSockets whose frames grew (the detail
                                               refetches /api/requests/http/<id>/websocket?after=)
  tunnel.started / tunnel.stopped {"name", "tunnel": info or null}
  metrics.updated   {"time", "tunnels": [info]}  every METRICS_INTERVAL seconds, where info is
                    {name, public_url, proto, addr, inspect, metrics, traffic_policy} (metrics as
                    the API has them; traffic_policy the policy it runs as text, "" when none)
A summary is what the capture sink announces, in the shape of agentapi.captures.summary (the list
pages' rows): id, tunnel_name, start (epoch seconds), duration_ns, method, uri, status_code, sizes,
remote_addr, whether it is whole and `policy_action` (the Traffic Policy action that answered
instead of the service, "" when none). The consumer passes it on as it came. Bodies are never pushed:
the browser fetches a capture's detail when it is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from agentapi.runtime import CAPTURES_GROUP, TUNNELS_GROUP

from .tunnel_status import running_tunnel, running_tunnels

log = logging.getLogger(__name__)

METRICS_INTERVAL = 1.0


class InspectorConsumer(AsyncJsonWebsocketConsumer):
    groups = [CAPTURES_GROUP, TUNNELS_GROUP]
    metrics_interval = METRICS_INTERVAL

    async def connect(self) -> None:
        await self.accept()
        self._metrics_task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._push_metrics(), name="inspector-metrics"
        )

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "_metrics_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._metrics_task = None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    # --- channel layer events -----------------------------------------------------------------
    async def captures_stored(self, event: dict[str, Any]) -> None:
        for capture in event.get("created") or []:
            await self.send_json({"type": "capture.created", "capture": capture})
        for capture in event.get("updated") or []:
            await self.send_json({"type": "capture.updated", "capture": capture})
        if event.get("evicted"):
            await self.send_json({"type": "captures.evicted", "ids": list(event["evicted"])})

    async def frames_added(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "frames.added", "ids": list(event.get("ids") or [])})

    async def captures_cleared(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "captures.cleared"})

    async def tunnel_started(self, event: dict[str, Any]) -> None:
        tunnel = await running_tunnel(str(event.get("name")))
        await self.send_json({"type": "tunnel.started", "name": event.get("name"), "tunnel": tunnel})

    async def tunnel_stopped(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "tunnel.stopped", "name": event.get("name"), "tunnel": None})

    # --- metrics ------------------------------------------------------------------------------
    async def _push_metrics(self) -> None:
        while True:
            try:
                tunnels = await running_tunnels()
                if tunnels is not None:
                    await self.send_json(
                        {
                            "type": "metrics.updated",
                            "time": time.time(),
                            "tunnels": tunnels,
                        }
                    )
            except asyncio.CancelledError:
                raise
            except Exception:  # a closed socket or a bad snapshot must not kill the loop silently
                log.exception("pushing metrics failed")
                return
            await asyncio.sleep(self.metrics_interval)
