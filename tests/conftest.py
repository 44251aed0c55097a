from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, start_upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = start_upstream()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    """A running agent with no tunnels, its own data directory and an ephemeral web port."""
    process = AgentProcess(tmp_path / "agent").start()
    yield process
    process.stop()


@pytest.fixture
def http_tunnel(agent: AgentProcess, upstream: Upstream) -> dict:
    """An inspected HTTP tunnel from the agent to the upstream."""
    return agent.start_tunnel(name="web", proto="http", addr=str(upstream.port))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests last: Playwright's sync API keeps an event loop running in the main thread for
    # the session, which async tests collected after them would trip over.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
