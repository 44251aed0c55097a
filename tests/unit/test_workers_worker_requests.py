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


async def test_capture_counts_are_the_captures_its_sink_did_not_keep_or_kept_in_part() -> None:
    # The supervisor asks with each ping (WorkerSupervisor.captures_dropped/captures_cut);
    # unanswered, the storage line never counted a worker's captures not kept.
    counts = await worker(sink=SimpleNamespace(dropped=3, cut=5)).handle("capture_counts", ())
    assert counts == {"dropped": 3, "cut": 5}


async def test_capture_counts_are_zero_without_captures() -> None:
    assert await worker(sink=None).handle("capture_counts", ()) == {"dropped": 0, "cut": 0}
