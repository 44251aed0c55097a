"""The runtime's periodic work, in-process with short intervals: run past many periods, the agent's
own tunnel rows stay exactly what its engine runs; rows of dead agents go."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from pytest_django.fixtures import SettingsWrapper

from agentapi.models import Tunnel
from agentapi.runtime import AgentRuntime

pytestmark = pytest.mark.django_db(transaction=True)

BEAT = 0.05  # seconds: every wait below spans many periods


@pytest.fixture
def short_beats(settings: SettingsWrapper) -> None:
    settings.AGENT_HEARTBEAT_SECONDS = BEAT
    settings.AGENT_STALE_AFTER_BEATS = 4


@pytest.fixture
async def runtime(short_beats: None) -> AsyncIterator[AgentRuntime]:
    agent = AgentRuntime(inspect_db_size=-1)
    await agent.start()
    yield agent
    await agent.close()


def _names() -> list[str]:
    return list(Tunnel.objects.order_by("name").values_list("name", flat=True))


async def _rows() -> list[str]:
    return await sync_to_async(_names)()


async def _running(runtime: AgentRuntime) -> list[str]:
    return sorted(tunnel.name for tunnel in await runtime.tunnels())


async def test_its_own_tunnels_outlive_many_heartbeats(runtime: AgentRuntime) -> None:
    await runtime.start_tunnel({"proto": "http", "addr": "1"}, "web")
    await runtime.start_tunnel({"proto": "tcp", "addr": "2"}, "db")
    for _ in range(10):
        await asyncio.sleep(BEAT * 3)
        assert await _rows() == await _running(runtime) == ["db", "web"]


async def test_a_stopped_tunnel_stays_gone_and_can_start_again(runtime: AgentRuntime) -> None:
    await runtime.start_tunnel({"proto": "http", "addr": "1"}, "web")
    await asyncio.sleep(BEAT * 3)
    await runtime.stop_tunnel("web")
    await asyncio.sleep(BEAT * 5)
    assert await _rows() == []
    await runtime.start_tunnel({"proto": "http", "addr": "1"}, "web")
    await asyncio.sleep(BEAT * 5)
    assert await _rows() == await _running(runtime) == ["web"]


async def test_starting_and_stopping_while_beating_never_leaves_a_ghost_or_a_gap(runtime: AgentRuntime) -> None:
    for i in range(30):
        await runtime.start_tunnel({"proto": "tcp", "addr": "5"}, f"t{i % 3}")
        await asyncio.sleep(BEAT / 3)
        await runtime.stop_tunnel(f"t{i % 3}")
    await asyncio.sleep(BEAT * 3)
    assert await _rows() == await _running(runtime) == []


async def test_a_row_deleted_behind_its_back_is_written_again(runtime: AgentRuntime) -> None:
    await runtime.start_tunnel({"proto": "http", "addr": "1"}, "web")
    await sync_to_async(Tunnel.objects.all().delete)()
    await asyncio.sleep(BEAT * 4)
    assert await _rows() == ["web"]


async def test_rows_of_dead_agents_go_and_those_of_live_ones_stay(runtime: AgentRuntime) -> None:
    host = socket.gethostname()
    now = timezone.now()

    def seed() -> None:
        # A live agent on another host that keeps beating (the test refreshes it), one on another
        # host that stopped beating, and one on this host whose process is gone.
        Tunnel.objects.create(name="live", tunnel_id="a" * 32, agent_id="elsewhere:1:x", heartbeat=now)
        Tunnel.objects.create(
            name="silent", tunnel_id="b" * 32, agent_id="elsewhere:2:y", heartbeat=now - dt.timedelta(hours=1)
        )
        Tunnel.objects.create(name="dead", tunnel_id="c" * 32, agent_id=f"{host}:999999999:z", heartbeat=now)

    await sync_to_async(seed)()
    await runtime.start_tunnel({"proto": "http", "addr": "1"}, "mine")
    for _ in range(8):
        await sync_to_async(Tunnel.objects.filter(name="live").update)(heartbeat=timezone.now())
        await asyncio.sleep(BEAT)
    assert await _rows() == ["live", "mine"]
