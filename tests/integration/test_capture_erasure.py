"""Captures a person deletes leave the database file, not only the list (agentapi/capture_erasure.py).

The agent's SQLite connections evict with `secure_delete=FAST`, which frees a body's pages without
overwriting them; a person's clear or delete overwrites them. Each test sends a body carrying a
unique marker, finds the marker in the agent's files (so the check can see it), deletes the
capture and looks for the marker again in every file of the database.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream


def database_files(data_dir: Path) -> list[Path]:
    return [path for path in data_dir.glob("agent.sqlite3*") if path.is_file()]


def send_marked_body(agent: AgentProcess) -> tuple[bytes, str]:
    """POST a 200 KB body of a unique marker (the test upstream echoes it); the marker and the
    capture's id once it is stored with its response."""
    marker = b"erase-me-" + uuid.uuid4().hex.encode()
    url = next(iter(agent.public_urls.values()))
    request = urllib.request.Request(f"{url}/echo", data=marker * (200_000 // len(marker)), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = agent.api("GET", "/api/requests/http?limit=5").json()["requests"]
        if listed and listed[0]["response"]:
            return marker, listed[0]["id"]
        time.sleep(0.1)
    raise AssertionError("the capture was not stored")


def holds(data_dir: Path, marker: bytes) -> list[str]:
    return [path.name for path in database_files(data_dir) if marker in path.read_bytes()]


def test_clearing_every_capture_leaves_no_copy_of_their_bodies_in_the_database_files(
    tmp_path: Path, upstream: Upstream
) -> None:
    agent = AgentProcess(tmp_path, "http", f"127.0.0.1:{upstream.port}").start()
    try:
        marker, _ = send_marked_body(agent)
        assert holds(tmp_path, marker)  # stored: the check below can see it
        assert agent.api("DELETE", "/api/requests/http").status_code == 204
        assert agent.api("GET", "/api/requests/http").json()["requests"] == []
        assert holds(tmp_path, marker) == []  # overwritten, and the log's older copies truncated
    finally:
        agent.stop()


def test_a_capture_deleted_in_the_inspector_is_overwritten_in_the_database_file(
    tmp_path: Path, upstream: Upstream
) -> None:
    agent = AgentProcess(tmp_path, "http", f"127.0.0.1:{upstream.port}").start()
    try:
        marker, capture_id = send_marked_body(agent)
        kept, _ = send_marked_body(agent)  # another capture stays
        agent.api("GET", "/inspect/http")  # the page sets the CSRF cookie its script sends back
        token = agent.session.cookies.get("csrftoken")
        answer = agent.api("DELETE", f"/inspect/captures/{capture_id}", headers={"X-CSRFToken": token})
        assert answer.status_code == 204, answer.text
    finally:
        agent.stop()
    # Stopped: SQLite folded its log into the database file. Only the deleted capture is gone.
    assert holds(tmp_path, kept)
    assert holds(tmp_path, marker) == []
