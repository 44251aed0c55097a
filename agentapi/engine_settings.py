"""The engine's limits and timeouts from the settings, for every process that runs an Engine.

The agent's main process (runtime.py) and each `--workers` engine process (workers/worker_main.py)
make their Engine with the same limits: a setting added here reaches both.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def engine_limits() -> dict[str, Any]:
    """Engine keyword arguments from the settings: capture_limit and response_head_limit (bytes),
    upstream_timeout, head_timeout and idle_timeout (seconds)."""
    return {
        "capture_limit": settings.AGENT_CAPTURE_LIMIT,
        "upstream_timeout": settings.AGENT_UPSTREAM_TIMEOUT,
        "head_timeout": settings.AGENT_HEAD_TIMEOUT,
        "idle_timeout": settings.AGENT_IDLE_TIMEOUT,
        "response_head_limit": settings.AGENT_RESPONSE_HEAD_LIMIT,
    }
