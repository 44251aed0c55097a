"""What a worker answers to the main process's requests (wire.py lists them), without a process."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agentapi.workers.worker_main import Worker


def worker(*, sink: Any) -> Worker:
    made = Worker(1, captures=sink is not None)
    made.engine = SimpleNamespace(tunnels=list)  # type: ignore[assignment]
    made.sink = sink
    return made


async def test_dropped_is_the_count_of_captures_its_sink_did_not_keep() -> None:
    # The supervisor asks it with each ping (WorkerSupervisor.captures_dropped); unanswered, the
    # storage line never counted a worker's captures not kept.
    assert await worker(sink=SimpleNamespace(dropped=3)).handle("dropped", ()) == 3


async def test_dropped_is_zero_without_captures() -> None:
    assert await worker(sink=None).handle("dropped", ()) == 0
