"""Captures: persisted across restarts, written on shutdown, bounded by inspect_db_size."""

from __future__ import annotations

import signal
import time

import requests

from tests.integration.test_http_tunnel import captures, wait_for_captures
from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream


def test_captures_survive_a_restart_and_stale_tunnels_do_not(tmp_path, upstream: Upstream) -> None:
    first = AgentProcess(tmp_path / "data").start()
    try:
        tunnel = first.start_tunnel(name="web", proto="http", addr=str(upstream.port))
        requests.get(tunnel["public_url"] + "/kept", timeout=10)
        # Stop at once: the pending capture must be written before the process exits.
    finally:
        assert first.stop(signal.SIGTERM) == 0
    second = AgentProcess(tmp_path / "data").start()
    try:
        [capture] = captures(second)
        assert capture["request"]["uri"] == "/kept"
        assert capture["response"]["status_code"] == 200
        assert second.api("GET", "/api/tunnels").json()["tunnels"] == []
    finally:
        second.stop()


def test_the_oldest_captures_are_evicted_past_inspect_db_size(tmp_path, upstream: Upstream) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text('version: "2"\ninspect_db_size: 30000\n')
    agent = AgentProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        tunnel = agent.start_tunnel(name="web", proto="http", addr=str(upstream.port))
        with requests.Session() as session:
            for index in range(12):
                session.post(f"{tunnel['public_url']}/n/{index}", data=b"x" * 4000, timeout=10)
        deadline = time.monotonic() + 10
        while (kept := wait_for_captures(agent, 1))[0]["request"]["uri"] != "/n/11" and time.monotonic() < deadline:
            time.sleep(0.05)
        paths = [c["request"]["uri"] for c in kept]
        assert paths[0] == "/n/11"  # newest first, newest kept
        assert "/n/0" not in paths
        assert 3 <= len(kept) < 12
    finally:
        agent.stop()


def test_inspect_db_size_minus_one_disables_capture(tmp_path, upstream: Upstream) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text('version: "2"\ninspect_db_size: -1\n')
    agent = AgentProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        tunnel = agent.start_tunnel(name="web", proto="http", addr=str(upstream.port))
        assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 200
        assert captures(agent) == []
    finally:
        agent.stop()


def test_bodies_past_the_capture_limit_are_cut_and_flagged(tmp_path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path / "data", env={"AGENT_CAPTURE_LIMIT": "1000"}).start()
    try:
        tunnel = agent.start_tunnel(name="web", proto="http", addr=str(upstream.port))
        body = b"y" * 5000
        assert requests.post(tunnel["public_url"] + "/echo", data=body, timeout=10).content == body
        [capture] = wait_for_captures(agent, 1)
        assert upstream.received[-1].body == body  # forwarding is never cut
        replay = agent.api("POST", "/api/requests/http", {"id": capture["id"]})
        assert replay.status_code == 400
        assert "1000 of" in replay.json()["details"]["err"]
    finally:
        agent.stop()
