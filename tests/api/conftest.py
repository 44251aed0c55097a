"""One agent for the whole package, reset after each test: every test starts with no tunnels and no
captures.

Starting an agent costs about a second; resetting it through its own API costs milliseconds. Tests
that need an agent with other settings (a config file, a time zone) start their own. The upstream is
shared the same way (shutting one down waits out its half-second poll), its record cleared per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, start_upstream


@pytest.fixture(scope="package")
def shared_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("agent")).start()
    yield process
    process.stop()


@pytest.fixture
def agent(shared_agent: AgentProcess) -> Iterator[AgentProcess]:
    yield shared_agent
    for tunnel in shared_agent.api("GET", "/api/tunnels").json()["tunnels"]:
        shared_agent.api("DELETE", tunnel["uri"])
    shared_agent.api("DELETE", "/api/requests/http")
    # A tunnel the reset cannot stop would leak into the next test: fail here, where it was made.
    assert shared_agent.api("GET", "/api/tunnels").json()["tunnels"] == []


@pytest.fixture(scope="package")
def shared_upstream() -> Iterator[Upstream]:
    server = start_upstream()
    yield server
    server.close()


@pytest.fixture
def upstream(shared_upstream: Upstream) -> Upstream:
    shared_upstream.received.clear()
    return shared_upstream
