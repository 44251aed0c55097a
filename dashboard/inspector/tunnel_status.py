"""What the status page and the inspector show of each tunnel: its config, its Traffic Policy
(the document as given plus the rules of deprecated keys, as text; "" when none) and live metrics;
for the status page also the metrics of the last minutes and the storage line (status_page_boot).

Read from the runtime facade (its engine is the source of truth for what runs), which takes every
snapshot on the event loop so it never races the proxy. A web process without a runtime falls back
to the Tunnel rows, without metrics.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.urls import reverse

from agentapi.models import Tunnel
from agentapi.runtime import TunnelInfo, current_runtime
from agentapi.serializers import shown_policy

from .storage_use import storage_use


def tunnel_info(tunnel: TunnelInfo) -> dict[str, Any]:
    """The shape the pages and the WebSocket show a tunnel in."""
    return {
        "name": tunnel.name,
        "public_url": tunnel.public_url,
        "proto": tunnel.proto,
        "addr": tunnel.addr,
        "inspect": tunnel.inspect,
        "metrics": tunnel.metrics,
        "traffic_policy": tunnel.traffic_policy,
    }


async def running_tunnel(name: str) -> dict[str, Any] | None:
    """One running tunnel with its metrics; None when it does not run in this process."""
    runtime = current_runtime()
    tunnel = await runtime.tunnel(name) if runtime is not None else None
    return tunnel_info(tunnel) if tunnel is not None else None


async def running_tunnels() -> list[dict[str, Any]] | None:
    """Every running tunnel with its metrics; None when no engine runs in this process."""
    runtime = current_runtime()
    if runtime is None:
        return None
    return [tunnel_info(tunnel) for tunnel in await runtime.tunnels()]


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
            # As the API shows it (the deprecated keys' rules are known only where the tunnel runs).
            "traffic_policy": shown_policy(row.definition),
        }
        for row in Tunnel.objects.order_by("name")
    ]


def status_page_boot() -> dict[str, Any]:
    """What the status page's script starts from besides the tunnels: each tunnel's metrics over
    the last minutes (the runtime's ring, so the charts do not start empty), the storage line
    (storage_use.py) and the URLs of the capture tools it links to."""
    runtime = current_runtime()
    return {
        "history": async_to_sync(runtime.metrics_history)() if runtime is not None else {},
        "storage": storage_use().as_json(),
        "tool_urls": {
            "storage": reverse("inspector-storage"),
            "import_har": reverse("inspector-import-har"),
            "export_har": reverse("inspector-export-har"),
        },
    }
