"""Captures the database could not keep up with are counted and shown, never silently missing.

The capture sink drops new captures past its bounds (AGENT_CAPTURE_QUEUE captures, or 64 MiB of
capture bytes waiting) while forwarding goes on. Every answered request is then either in the
list or counted in the storage line's `dropped` ("N not kept: the database could not keep up").
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess

REQUESTS = 16


class SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(0.3)  # every request is in flight at once
        body = b"slow answer"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_service() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_every_answered_request_is_kept_or_counted_as_not_kept(tmp_path: Path, slow_service: int) -> None:
    agent = AgentProcess(tmp_path, "http", f"127.0.0.1:{slow_service}", env={"AGENT_CAPTURE_QUEUE": "1"}).start()
    try:
        url = next(iter(agent.public_urls.values()))
        barrier = threading.Barrier(REQUESTS)
        answers: list[bytes] = []

        def fetch(n: int) -> None:
            barrier.wait()
            with urllib.request.urlopen(f"{url}/r{n}", timeout=30) as response:
                answers.append(response.read())

        threads = [threading.Thread(target=fetch, args=(n,)) for n in range(REQUESTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert answers == [b"slow answer"] * REQUESTS  # forwarding never waited on the captures

        listed = agent.api("GET", "/api/requests/http?limit=100").json()["requests"]
        storage = agent.api("GET", "/inspect/storage.json").json()
        assert storage["dropped"] > 0  # one capture may wait at a time: most were not kept
        assert len(listed) + storage["dropped"] == REQUESTS
        assert storage["line"].endswith(f"; {storage['dropped']:,} not kept: the database could not keep up")
    finally:
        agent.stop()
