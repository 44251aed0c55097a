"""What the status page and the inspector show of each tunnel: its config and live metrics.

Read from the in-process engine (the source of truth for what runs), on the event loop so a metrics
snapshot never races the proxy. A web process without an engine falls back to the Tunnel rows,
without metrics.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from agentapi.engine.engine import RunningTunnel
from agentapi.models import Tunnel
from agentapi.runtime import current_runtime


def tunnel_info(tunnel: RunningTunnel) -> dict[str, Any]:
    return {
        "name": tunnel.name,
        "public_url": tunnel.public_url,
        "proto": tunnel.spec.proto,
        "addr": tunnel.spec.addr,
        "inspect": tunnel.spec.inspect,
        "metrics": tunnel.metrics.snapshot(),
    }


async def running_tunnels() -> list[dict[str, Any]] | None:
    """Every running tunnel with its metrics; None when no engine runs in this process."""
    runtime = current_runtime()
    if runtime is None:
        return None
    return [tunnel_info(tunnel) for tunnel in runtime.engine.tunnels()]


def tunnels_for_page() -> list[dict[str, Any]]:
    """For a sync view: the engine's tunnels, or the mirror rows when the engine is elsewhere."""
    if current_runtime() is not None:
        running = async_to_sync(running_tunnels)()
        if running is not None:
            return sorted(running, key=lambda tunnel: tunnel["name"])
    return [
        {
            "name": row.name,
            "public_url": row.public_url,
            "proto": row.proto,
            "addr": row.addr,
            "inspect": row.inspect,
            "metrics": None,
        }
        for row in Tunnel.objects.order_by("name")
    ]
