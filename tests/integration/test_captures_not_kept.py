"""Captures the database could not keep up with are counted and shown, never silently missing.

The capture sink drops new captures past its bounds (AGENT_CAPTURE_QUEUE captures, or 64 MiB of
capture bytes waiting) while forwarding goes on. Every answered request is then either in the
list or counted in the storage line's `dropped` ("N not kept: the database could not keep up").
"""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

REQUESTS = 16


def slow_requests_at_once(agent: AgentProcess) -> list[bytes]:
    """REQUESTS slow GETs through the agent's tunnel, all in flight at once; their answers."""
    url = next(iter(agent.public_urls.values()))
    barrier = threading.Barrier(REQUESTS)
    answers: list[bytes] = []

    def fetch(n: int) -> None:
        barrier.wait()
        with urllib.request.urlopen(f"{url}/slow/0.3/{n}", timeout=30) as response:
            answers.append(response.read())

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_every_answered_request_is_kept_or_counted_as_not_kept(tmp_path: Path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path, "http", f"127.0.0.1:{upstream.port}", env={"AGENT_CAPTURE_QUEUE": "1"}).start()
    try:
        assert slow_requests_at_once(agent) == [b"slow"] * REQUESTS  # forwarding never waited on the captures

        listed = agent.api("GET", "/api/requests/http?limit=100").json()["requests"]
        storage = agent.api("GET", "/inspect/storage.json").json()
        assert storage["dropped"] > 0  # one capture may wait at a time: most were not kept
        assert len(listed) + storage["dropped"] == REQUESTS
        assert storage["line"].endswith(f"; {storage['dropped']:,} not kept: the database could not keep up")
    finally:
        agent.stop()


def test_with_workers_each_process_captures_not_kept_are_counted(tmp_path: Path, upstream: Upstream) -> None:
    # A worker's sink drops and cuts too; the main process asks each worker for its counts with
    # every ping (capture_counts, agentapi/workers/wire.py), so the line adds them all up.
    agent = AgentProcess(
        tmp_path, "http", f"127.0.0.1:{upstream.port}", "--workers", "2", env={"AGENT_CAPTURE_QUEUE": "1"}
    ).start()
    try:
        assert slow_requests_at_once(agent) == [b"slow"] * REQUESTS
        workers = agent.api("GET", "/api/tunnels/command_line").json()["metrics"]["workers"]
        assert len([w for w in workers if w["http"]]) == 2  # both processes served requests

        deadline = time.monotonic() + 20  # the workers' counts arrive with the next ping (5 s apart)
        while True:
            listed = agent.api("GET", "/api/requests/http?limit=100").json()["requests"]
            storage = agent.api("GET", "/inspect/storage.json").json()
            if len(listed) + storage["dropped"] == REQUESTS or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(listed) + storage["dropped"] == REQUESTS, (len(listed), storage)
        assert storage["cut"] == 0  # small bodies: nothing was cut
    finally:
        agent.stop()
