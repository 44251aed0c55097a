"""A tunnel made through the API lives as long as the agent runs it, through many heartbeats (the
shared agent beats every half second, see tests/support/agent_process.py)."""

from __future__ import annotations

import time

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream


def test_a_tunnel_outlives_several_heartbeats(agent: AgentProcess, upstream: Upstream) -> None:
    created = agent.start_tunnel(name="long-lived", proto="http", addr=str(upstream.port))
    for _ in range(8):
        time.sleep(0.5)  # eight heartbeats in all: the rows are checked, not only the timing
        assert [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]] == ["long-lived"]
        assert agent.api("GET", "/api/tunnels/long-lived").status_code == 200
        assert agent.api("GET", "/api/endpoints/long-lived").status_code == 200
    assert agent.session.get(created["public_url"] + "/still-here", timeout=10).status_code == 200
    assert agent.api("DELETE", "/api/tunnels/long-lived").status_code == 204
    time.sleep(1.0)
    assert agent.api("GET", "/api/tunnels").json()["tunnels"] == []
    assert (
        agent.api(
            "POST", "/api/tunnels", {"name": "long-lived", "proto": "http", "addr": str(upstream.port)}
        ).status_code
        == 201
    )
